"""File names in the vault: validation, uniqueness keys, grouping and content signatures.

Pure functions with no I/O, so every service (upload, rename, import) applies the same rules.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from camvault.errors import BadContent, InvalidName, InvalidType

DEFAULT_EXTENSIONS: tuple[str, ...] = (".mcam", ".emcam", ".vnc", ".nc", ".link")
DEFAULT_LFS_EXTENSIONS: tuple[str, ...] = (".mcam", ".emcam", ".vnc")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
DEFAULT_SIGNATURES: dict[str, bytes] = {".mcam": HDF5_SIGNATURE}

MAX_NAME_BYTES = 255
MISC_GROUP = "Misc"

# Characters Windows refuses in a file name; "/" and "\" are reported separately as paths.
_FORBIDDEN_CHARS = frozenset(':*?"<>|')
_SEPARATORS = frozenset("/\\")
# Control (Cc), format (Cf: bidi overrides, zero-width marks, BOM), line/paragraph
# separators, private use, surrogates and unassigned code points: all invisible or
# ambiguous, so a name holding one could pose as another name on screen.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
# Windows maps these to devices whatever the extension ("NUL.tar.gz" too); the superscript
# digit variants are listed in Microsoft's naming documentation as well.
_RESERVED_STEMS = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{digit}" for dev in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)
_SIGNATURE_DESCRIPTIONS = {HDF5_SIGNATURE: "Mastercam (HDF5)"}


@dataclass(frozen=True)
class NameRules:
    """The shop's naming rules: allowed extensions and an optional full-match regex."""

    allowed_extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    pattern: str | None = None

    def __post_init__(self) -> None:
        # A broken regex is a settings error; failing here keeps it out of validate_name.
        if self.pattern is not None:
            re.compile(self.pattern)


def validate_name(name: str, rules: NameRules) -> str:
    """Return `name` unchanged if it is a valid vault file name under `rules`.

    Raises InvalidName (what is wrong, in plain words) or InvalidType (extension not allowed).
    """
    if not name:
        raise InvalidName("the file name is empty")
    for char in name:
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise InvalidName(f"the file name contains the invisible character {_describe(char)}")
    for char in name:
        if char in _SEPARATORS:
            raise InvalidName(
                f'the file name must be a single name, not a path (it contains "{char}")'
            )
        if char in _FORBIDDEN_CHARS:
            raise InvalidName(
                f'the file name contains the character "{char}", which is not allowed'
            )
    if name in (".", ".."):
        raise InvalidName(f'"{name}" is not a file name')
    if name[0] == "." or name[-1] == ".":
        raise InvalidName("the file name must not start or end with a dot")
    # Beyond ASCII space, other blanks (no-break space, ideographic space) are just as
    # invisible at the edges of a name.
    if name[0].isspace() or name[-1].isspace():
        raise InvalidName("the file name must not start or end with a space")
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise InvalidName(
            f"the file name is too long ({size} bytes in UTF-8; at most {MAX_NAME_BYTES})"
        )
    # Rejecting non-NFC input (rather than normalizing it) means the stored name is always
    # exactly what the client sent, and two spellings of one name can never coexist.
    if not unicodedata.is_normalized("NFC", name):
        raise InvalidName(
            "the file name is not in Unicode normal form C (NFC); "
            "it uses decomposed accents or similar, please retype it"
        )
    stem = name.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _RESERVED_STEMS:
        raise InvalidName(f'"{stem}" is a reserved device name on Windows')
    extension = extension_of(name)
    allowed = _normalized_extensions(rules.allowed_extensions)
    if extension not in allowed:
        allowed_list = ", ".join(allowed) if allowed else "none"
        what = f"files of type {extension}" if extension else "files without an extension"
        raise InvalidType(f"{what} are not allowed (allowed types: {allowed_list})")
    if rules.pattern is not None and re.fullmatch(rules.pattern, name) is None:
        raise InvalidName(f"the file name does not match the shop's naming pattern {rules.pattern}")
    return name


def name_key(name: str) -> str:
    """Key under which names are unique: case-insensitive and canonical-equivalence-insensitive."""
    # casefold() can decompose (e.g. U+0130), so normalize again to keep the key canonical.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def extension_of(name: str) -> str:
    """The lowercased extension after the last dot, with the dot; "" if there is none."""
    _, dot, extension = name.rpartition(".")
    return f".{extension.lower()}" if dot else ""


@dataclass(frozen=True)
class GroupRule:
    """How part numbers group: a name starting with ``digits`` ASCII digits belongs to the
    subgroup of those digits and to the group of their first ``keep`` digits padded with X
    (defaults: "1234567_A1.mcam" -> group "12XXXXX", subgroup "1234567"); others are Misc."""

    digits: int = 7
    keep: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= 20 or not 0 <= self.keep <= self.digits:
            raise ValueError("a group rule needs 1-20 digits and keeps 0 to that many")

    def group_of(self, name: str) -> tuple[str, str | None]:
        head = name[: self.digits]
        # isascii() first: str.isdigit() also accepts other scripts' digits and superscripts.
        if len(head) == self.digits and head.isascii() and head.isdigit():
            return head[: self.keep] + "X" * (self.digits - self.keep), head
        return MISC_GROUP, None


DEFAULT_GROUP_RULE = GroupRule()


def group_of(name: str, rule: GroupRule = DEFAULT_GROUP_RULE) -> tuple[str, str | None]:
    """Group and subgroup of a name under ``rule`` (by default the shop's part numbers:
    "1234567_A1.mcam" -> ("12XXXXX", "1234567"); longer digit runs group by the first seven)."""
    return rule.group_of(name)


def check_signature(name: str, head: bytes, signatures: Mapping[str, bytes]) -> None:
    """Raise BadContent if `name`'s extension requires a signature that `head` lacks."""
    extension = extension_of(name)
    required = next(
        (sig for ext, sig in signatures.items() if ext.lower() == extension and extension),
        None,
    )
    if required is None or head.startswith(required):
        return
    description = _SIGNATURE_DESCRIPTIONS.get(required)
    if description is not None:
        raise BadContent(f"{extension} files must be {description} files; this one is not")
    raise BadContent(
        f"{extension} files must start with the bytes {required.hex(' ')}; this one does not"
    )


def normalize_extension(extension: str) -> str:
    """One spelling for an extension ("MCAM", " .Mcam" -> ".mcam"), wherever it comes from."""
    ext = extension.strip().lower()
    return ext if ext.startswith(".") else f".{ext}"


def _normalized_extensions(extensions: tuple[str, ...]) -> tuple[str, ...]:
    # Settings may spell extensions as "MCAM" or ".Mcam"; compare on one form.
    return tuple(normalize_extension(e) for e in extensions)


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    label = unicodedata.name(char, "")
    return f"{code} ({label})" if label else code
