"""Properties of names (camvault/names.py) over generated input: what validation accepts is
always a safe single file name, the uniqueness key is stable, and grouping follows the
part-number rule for any rule a shop may set. Complements the examples in tests/test_names.py.
"""

from __future__ import annotations

import ntpath
import posixpath
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camvault.errors import InvalidName, InvalidType
from camvault.names import (
    DEFAULT_EXTENSIONS,
    MAX_NAME_BYTES,
    MISC_GROUP,
    GroupRule,
    NameRules,
    extension_of,
    name_key,
    normalize_extension,
    validate_name,
)

RULES = NameRules()
# Characters that make a name dangerous or ambiguous: paths, Windows' refusals, controls,
# bidi overrides and isolates, zero-width and other invisible marks, odd blanks, dots.
HOSTILE = (
    '/\\:*?"<>|\x00\x01\x1f\x7f\x85\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d'
    "\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff\ue000\u00a0\u3000 ."
)
_EXTENSIONS = st.sampled_from([*DEFAULT_EXTENSIONS, ".MCAM", ".Nc", ".txt", ".", ""])
_PLAIN = st.text(st.characters(codec="utf-8"), max_size=30)
# A plausible name with hostile characters spliced in at random places.
_SPLICED = st.builds(
    lambda parts, ext: "".join(parts) + ext,
    st.lists(st.one_of(_PLAIN, st.sampled_from(HOSTILE), st.sampled_from(["CON", "nul", "LPT1"]))),
    _EXTENSIONS,
)
# Names that often pass: printable stems (spaces and dots inside) with a real extension.
_LIKELY = st.builds(
    lambda stem, ext: unicodedata.normalize("NFC", stem) + ext,
    st.text(st.characters(exclude_categories=["C", "Zl", "Zp"]), min_size=1, max_size=40),
    st.sampled_from([*DEFAULT_EXTENSIONS, ".MCAM", ".Nc"]),
)
NAMES = st.one_of(
    st.text(), st.builds(lambda s, e: s + e, _PLAIN, _EXTENSIONS), _SPLICED, _LIKELY, _LIKELY
)
ALLOWED = st.lists(st.sampled_from([*DEFAULT_EXTENSIONS, "MCAM", ".txt", "pdf"]), min_size=1)
RULE_SETS = st.builds(lambda exts: NameRules(allowed_extensions=tuple(exts)), ALLOWED)
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"}


def accepted(name: str, rules: NameRules = RULES) -> bool:
    try:
        validate_name(name, rules)
    except (InvalidName, InvalidType):
        return False
    return True


@given(NAMES, RULE_SETS)
def test_an_accepted_name_comes_back_unchanged(name: str, rules: NameRules) -> None:
    try:
        result = validate_name(name, rules)
    except (InvalidName, InvalidType):
        return
    assert result == name
    assert validate_name(result, rules) == result


# About one generated name in seven passes validation: more examples, so hundreds do.
@settings(max_examples=500)
@given(NAMES)
def test_an_accepted_name_is_one_harmless_path_segment(name: str) -> None:
    if not accepted(name):
        return
    assert not set(name) & set('/\\:*?"<>|')
    assert all(unicodedata.category(c) not in _INVISIBLE for c in name)
    assert name not in (".", "..") and name[0] != "." and name[-1] != "."
    assert not name[0].isspace() and not name[-1].isspace()
    assert posixpath.basename(name) == name == ntpath.basename(name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert unicodedata.is_normalized("NFC", name)
    assert name.split(".", 1)[0].rstrip(" ").upper() not in {"CON", "PRN", "AUX", "NUL"}


@settings(max_examples=500)
@given(NAMES, RULE_SETS)
def test_an_accepted_name_has_an_allowed_extension(name: str, rules: NameRules) -> None:
    if not accepted(name, rules):
        return
    allowed = {normalize_extension(e) for e in rules.allowed_extensions}
    assert extension_of(name) in allowed
    assert name.lower().endswith(extension_of(name))


@given(_PLAIN, st.sampled_from(HOSTILE.replace(" ", "").replace(".", "")), _PLAIN)
def test_a_name_with_a_hostile_character_anywhere_is_refused(
    head: str, hostile: str, tail: str
) -> None:
    with pytest.raises(InvalidName):
        validate_name(f"{head}{hostile}{tail}.mcam", RULES)


@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_the_name_key_is_a_fixed_point(name: str) -> None:
    key = name_key(name)
    assert name_key(key) == key
    assert unicodedata.is_normalized("NFC", key)


@given(NAMES)
def test_names_differing_in_case_or_normal_form_share_a_key(name: str) -> None:
    key = name_key(name)
    assert name_key(name.swapcase() if name.isascii() else name) == key
    assert name_key(name.upper().lower() if name.isascii() else name) == key
    assert name_key(unicodedata.normalize("NFD", name)) == key
    assert name_key(unicodedata.normalize("NFC", name)) == key


RULES_OF_GROUPING = st.integers(1, 20).flatmap(
    lambda digits: st.builds(GroupRule, st.just(digits), st.integers(0, digits))
)


@given(RULES_OF_GROUPING, st.text(st.sampled_from("0123456789"), max_size=25), NAMES)
def test_grouping_follows_the_part_number_rule(rule: GroupRule, digits: str, rest: str) -> None:
    name = digits + rest
    group, subgroup = rule.group_of(name)
    head = name[: rule.digits]
    if len(head) == rule.digits and head.isascii() and head.isdigit():
        assert subgroup == head
        assert group == head[: rule.keep] + "X" * (rule.digits - rule.keep)
    else:
        assert (group, subgroup) == (MISC_GROUP, None)


@given(RULES_OF_GROUPING, NAMES, NAMES)
def test_names_with_one_subgroup_share_its_group(rule: GroupRule, one: str, other: str) -> None:
    group, subgroup = rule.group_of(one)
    if subgroup is None:
        return
    assert rule.group_of(subgroup + other) == (group, subgroup)
    # Letter case never moves a file: part numbers are digits.
    assert rule.group_of(one.upper()) == (group, subgroup)
    assert rule.group_of(one.lower()) == (group, subgroup)


@given(st.integers(-5, 30), st.integers(-5, 30))
def test_a_group_rule_exists_only_within_its_bounds(digits: int, keep: int) -> None:
    valid = 1 <= digits <= 20 and 0 <= keep <= digits
    try:
        GroupRule(digits, keep)
    except ValueError:
        assert not valid
    else:
        assert valid
