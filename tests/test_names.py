"""Names: validation rules, uniqueness keys, grouping and content signatures."""

from __future__ import annotations

import ntpath
import posixpath
import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from camvault.errors import BadContent, InvalidName, InvalidType
from camvault.names import (
    DEFAULT_EXTENSIONS,
    DEFAULT_SIGNATURES,
    HDF5_SIGNATURE,
    NameRules,
    check_signature,
    extension_of,
    group_of,
    name_key,
    validate_name,
)

RULES = NameRules()


@pytest.mark.parametrize(
    "name",
    [
        "1234567_A1.mcam",
        "a.MCAM",
        "part.emcam",
        "program.NC",
        "setup sheet.vnc",
        "shortcut.link",
        "Fräse Teil 7.mcam",
        "部品.nc",
        "a..mcam",
        "CONSOLE.mcam",
        "COM10.mcam",
        "x" * 250 + ".mcam",
        "é" * 125 + ".mcam",
    ],
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_name(name, RULES) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("evil\u202egnp.mcam", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("a\u200bb.mcam", "U+200B (ZERO WIDTH SPACE)"),
        ("\ufeffa.mcam", "U+FEFF"),
        ("a\u2066b.mcam", "U+2066"),
        ("a\x00b.mcam", "U+0000"),
        ("a\nb.mcam", "U+000A"),
        ("a\x7fb.mcam", "U+007F"),
        ("a\u2028b.mcam", "U+2028"),
        ("a\u2029b.mcam", "U+2029"),
        ("a\ue000b.mcam", "U+E000"),
        ("a\ud800b.mcam", "U+D800"),
        ("a\U000e0001b.mcam", "U+E0001"),
        ("a\U0010fffeb.mcam", "U+10FFFE"),
        ("../x.mcam", "single name, not a path"),
        ("dir/x.mcam", "single name, not a path"),
        ("dir\\x.mcam", "single name, not a path"),
        ("C:x.mcam", '":"'),
        ("a*.mcam", '"*"'),
        ("a?.mcam", '"?"'),
        ('a".mcam', '"""'),
        ("a<.mcam", '"<"'),
        ("a>.mcam", '">"'),
        ("a|.mcam", '"|"'),
        (".", "not a file name"),
        ("..", "not a file name"),
        (".mcam", "start or end with a dot"),
        ("a.mcam.", "start or end with a dot"),
        (" a.mcam", "start or end with a space"),
        ("a.mcam ", "start or end with a space"),
        ("\u00a0a.mcam", "start or end with a space"),
        ("x" * 251 + ".mcam", "256 bytes"),
        ("é" * 126 + ".mcam", "257 bytes"),
        ("e\u0301.mcam", "NFC"),
        ("CON.mcam", "reserved"),
        ("con", "reserved"),
        ("Con", "reserved"),
        ("nul.tar.mcam", "reserved"),
        ("CON .mcam", "reserved"),
        ("aux.nc", "reserved"),
        ("prn.vnc", "reserved"),
        ("com1.mcam", "reserved"),
        ("COM9.nc", "reserved"),
        ("lpt1.mcam", "reserved"),
        ("LPT9.mcam", "reserved"),
        ("COM\u00b9.mcam", "reserved"),
        ("lpt\u00b3.mcam", "reserved"),
    ],
)
def test_invalid_names_are_refused_with_a_reason(name: str, fragment: str) -> None:
    with pytest.raises(InvalidName) as caught:
        validate_name(name, RULES)
    assert fragment in caught.value.message
    assert caught.value.code == "invalid_name"


@pytest.mark.parametrize("name", ["a.txt", "a.mcam.bak", "a", "report.pdf", "a.mcam2"])
def test_names_with_a_disallowed_extension_are_refused_listing_the_allowed_ones(name: str) -> None:
    with pytest.raises(InvalidType) as caught:
        validate_name(name, RULES)
    for extension in DEFAULT_EXTENSIONS:
        assert extension in caught.value.message


def test_a_name_with_no_extension_is_refused_as_a_type() -> None:
    with pytest.raises(InvalidType, match="without an extension"):
        validate_name("README", RULES)


def test_allowed_extensions_are_compared_case_insensitively() -> None:
    rules = NameRules(allowed_extensions=(".MCAM", "nc"))
    assert validate_name("a.mcam", rules) == "a.mcam"
    assert validate_name("a.Nc", rules) == "a.Nc"
    with pytest.raises(InvalidType):
        validate_name("a.vnc", rules)


def test_the_shop_pattern_must_match_the_whole_name() -> None:
    rules = NameRules(pattern=r"\d{7}_[A-Z]\d\.mcam")
    assert validate_name("1234567_A1.mcam", rules) == "1234567_A1.mcam"
    with pytest.raises(InvalidName) as caught:
        validate_name("1234567_A1x.mcam", rules)
    assert rules.pattern is not None
    assert rules.pattern in caught.value.message


def test_the_shop_pattern_is_applied_after_the_fixed_rules() -> None:
    rules = NameRules(pattern=".*")
    with pytest.raises(InvalidName, match="reserved"):
        validate_name("CON.mcam", rules)
    with pytest.raises(InvalidType):
        validate_name("a.txt", rules)


def test_rules_with_a_broken_pattern_cannot_be_built() -> None:
    with pytest.raises(re.error):
        NameRules(pattern="(unclosed")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("A.MCAM", "a.mcam"),
        ("Straße.nc", "strasse.nc"),
        ("e\u0301.mcam", "\u00e9.mcam"),
        ("\u00c9.mcam", "\u00e9.mcam"),
    ],
)
def test_name_key_ignores_case_and_normalization(name: str, key: str) -> None:
    assert name_key(name) == key


def test_names_differing_only_in_case_share_a_key() -> None:
    assert name_key("1234567_A1.mcam") == name_key("1234567_a1.MCAM")
    assert name_key("a.mcam") != name_key("b.mcam")


@pytest.mark.parametrize(
    ("name", "extension"),
    [
        ("a.MCAM", ".mcam"),
        ("a.tar.NC", ".nc"),
        ("noext", ""),
        ("trailing.", "."),
        ("", ""),
    ],
)
def test_extension_of_takes_the_last_dot_lowercased(name: str, extension: str) -> None:
    assert extension_of(name) == extension


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("1234567_A1.mcam", ("12XXXXX", "1234567")),
        ("1234567.mcam", ("12XXXXX", "1234567")),
        ("9900001 rev B.nc", ("99XXXXX", "9900001")),
        ("12345678_A1.mcam", ("12XXXXX", "1234567")),
        ("123456_A1.mcam", ("Misc", None)),
        ("123456", ("Misc", None)),
        ("new.vnc", ("Misc", None)),
        ("A1234567.mcam", ("Misc", None)),
        ("١٢٣٤٥٦٧.mcam", ("Misc", None)),
        ("123\u00b94567.mcam", ("Misc", None)),
        ("", ("Misc", None)),
    ],
)
def test_names_starting_with_seven_ascii_digits_are_grouped_by_part_number(
    name: str, group: tuple[str, str | None]
) -> None:
    assert group_of(name) == group


def test_mcam_content_must_start_with_the_hdf5_signature() -> None:
    check_signature("a.mcam", HDF5_SIGNATURE + b"rest", DEFAULT_SIGNATURES)
    check_signature("a.MCAM", HDF5_SIGNATURE, DEFAULT_SIGNATURES)
    with pytest.raises(BadContent) as caught:
        check_signature("a.mcam", b"PK\x03\x04 a zip file", DEFAULT_SIGNATURES)
    assert caught.value.message == ".mcam files must be Mastercam (HDF5) files; this one is not"


def test_content_shorter_than_the_signature_is_refused() -> None:
    with pytest.raises(BadContent):
        check_signature("a.mcam", HDF5_SIGNATURE[:4], DEFAULT_SIGNATURES)


def test_types_without_a_signature_accept_any_content() -> None:
    check_signature("a.nc", b"G0 X0 Y0", DEFAULT_SIGNATURES)
    check_signature("a.emcam", b"", DEFAULT_SIGNATURES)


def test_an_unknown_signature_is_described_by_its_bytes() -> None:
    with pytest.raises(BadContent, match="start with the bytes 50 4b"):
        check_signature("a.zip", b"xx", {".ZIP": b"PK"})


# Property tests.

_EXTENSIONS = st.sampled_from([*DEFAULT_EXTENSIONS, ".MCAM", ".txt", "", "."])
# Mostly plausible names, with every kind of character mixed in now and then.
_NAMES = st.one_of(
    st.text(),
    st.builds(lambda stem, ext: stem + ext, st.text(), _EXTENSIONS),
    st.builds(
        lambda stem, ext: stem + ext,
        st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1),
        _EXTENSIONS,
    ),
)
_SAFE_STEMS = st.text(
    st.characters(
        categories=("L", "N", "Pd", "Pc"),
        exclude_characters="\u00b9\u00b2\u00b3",
    ),
    min_size=1,
    max_size=40,
).map(lambda stem: unicodedata.normalize("NFC", stem))


@given(_NAMES)
def test_validate_name_raises_only_invalid_name_or_invalid_type(name: str) -> None:
    try:
        validate_name(name, RULES)
    except (InvalidName, InvalidType):
        pass


@given(_NAMES)
def test_an_accepted_name_is_one_path_segment(name: str) -> None:
    try:
        accepted = validate_name(name, RULES)
    except (InvalidName, InvalidType):
        return
    assert accepted == name
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert posixpath.basename(name) == name and ntpath.basename(name) == name
    assert PurePosixPath(name).parts == (name,)
    assert PureWindowsPath(name).parts == (name,)
    assert len(name.encode("utf-8")) <= 255
    assert unicodedata.is_normalized("NFC", name)


@given(_SAFE_STEMS, st.sampled_from(DEFAULT_EXTENSIONS))
def test_a_valid_name_round_trips(stem: str, extension: str) -> None:
    assume(not re.fullmatch(r"CON|PRN|AUX|NUL|(COM|LPT)[0-9]", stem.upper()))
    name = stem + extension
    assert validate_name(name, RULES) == name
    assert name.encode("utf-8").decode("utf-8") == name
    assert unicodedata.normalize("NFC", name) == name
    assert name_key(name_key(name)) == name_key(name)


def test_accepted_names_round_trip_through_the_filesystem(tmp_path: Path) -> None:
    names = ["1234567_A1.mcam", "Fräse Teil 7.mcam", "部品.nc", "a..mcam", "x" * 250 + ".mcam"]
    for name in names:
        (tmp_path / validate_name(name, RULES)).write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


@given(st.text())
def test_group_of_is_total(name: str) -> None:
    group, subgroup = group_of(name)
    if subgroup is None:
        assert group == "Misc"
    else:
        assert re.fullmatch(r"[0-9]{2}XXXXX", group)
        assert re.fullmatch(r"[0-9]{7}", subgroup)
        assert name.startswith(subgroup) and group[:2] == subgroup[:2]
