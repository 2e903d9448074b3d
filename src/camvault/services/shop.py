"""Shop settings: the rules an admin changes at runtime, stored in the database.

The settings file and environment give the defaults; a value the admin sets through the API
is a row in ``shop_settings`` and wins. A change is one write transaction: the rows, a
regrouping of the file index when the group rule changed, and one ``config.changed`` event.
This process swaps its in-memory copy after the commit; every other instance (and this one,
for changes made elsewhere) reloads when its hub reads that event from the log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, delete, insert, select, update

from camvault.errors import BadRequest
from camvault.events.log import EventType, append
from camvault.names import (
    DEFAULT_SIGNATURES,
    GroupRule,
    NameRules,
    extension_of,
    normalize_extension,
)
from camvault.settings import MIB, Settings
from camvault.store.db import Database
from camvault.store.models import files, shop_settings

MAX_PATTERN = 500
_EXTENSION = re.compile(r"\.[a-z0-9][a-z0-9_-]{0,15}")
_HEX = re.compile(r"(?:[0-9a-f]{2}){1,64}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
# Keys a plain user may read (the page needs them to check names and sizes before sending).
PUBLIC_KEYS = (
    "allowed_extensions",
    "name_pattern",
    "max_upload_mb",
    "stale_lock_hours",
    "group_rule",
)


def _extension(item: object) -> str:
    """A shop setting's extension in its one spelling; ValueError names a malformed one."""
    ext = normalize_extension(str(item))
    if not _EXTENSION.fullmatch(ext):
        raise ValueError(f"{item!r} is not an extension like .mcam")
    return ext


class GroupRuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    digits: int = Field(default=7, ge=1, le=20, description="Leading digits of a part number")
    keep: int = Field(default=2, ge=0, le=20, description="Digits that name the group")


class ShopConfig(BaseModel):
    """The effective shop settings (validated; immutable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_extensions: tuple[str, ...] = Field(min_length=1, max_length=50)
    content_signatures: dict[str, str | None] = Field(
        description="Per extension, the hex bytes a file must start with; null switches the "
        "check off for that extension"
    )
    name_pattern: str | None = Field(default=None, max_length=MAX_PATTERN)
    max_upload_mb: float = Field(gt=0, le=1024 * 1024)
    stale_lock_hours: float = Field(gt=0, le=24 * 365)
    group_rule: GroupRuleModel = GroupRuleModel()
    session_hours: float = Field(gt=0, le=24 * 365)
    ws_allowed_origins: tuple[str, ...] = Field(default=(), max_length=50)

    @field_validator("allowed_extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        out = []
        for item in value:
            ext = _extension(item)
            if ext not in out:
                out.append(ext)
        return tuple(out)

    @field_validator("content_signatures", mode="before")
    @classmethod
    def _signatures(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out: dict[str, str | None] = {}
        for key, signature in value.items():
            ext = _extension(key)
            if signature is not None:
                signature = str(signature).replace(" ", "").lower()
                if not _HEX.fullmatch(signature):
                    raise ValueError(
                        f"the signature of {ext} must be 1-64 bytes written in hex, or null"
                    )
            out[ext] = signature
        return out

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"the name pattern is not a valid regular expression: {exc}") from None
        return value

    @field_validator("group_rule")
    @classmethod
    def _rule(cls, value: GroupRuleModel) -> GroupRuleModel:
        if value.keep > value.digits:
            raise ValueError("the group rule cannot keep more digits than a part number has")
        return value

    @field_validator("ws_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        out = []
        for item in value:
            origin = str(item).strip().rstrip("/")
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{item!r} is not an origin like https://camvault.shop.local")
            out.append(origin.lower())
        return tuple(out)

    # --- what the rest of camvault needs --------------------------------------------------

    @property
    def rules(self) -> NameRules:
        return NameRules(allowed_extensions=self.allowed_extensions, pattern=self.name_pattern)

    @property
    def signatures(self) -> dict[str, bytes]:
        return {ext: bytes.fromhex(sig) for ext, sig in self.content_signatures.items() if sig}

    @property
    def grouping(self) -> GroupRule:
        return GroupRule(self.group_rule.digits, self.group_rule.keep)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)

    def public(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return {
            **{key: data[key] for key in PUBLIC_KEYS},
            "max_upload_bytes": self.max_upload_bytes,
        }


def defaults(settings: Settings) -> dict[str, Any]:
    """The shop settings as the settings file and environment give them."""
    return {
        "allowed_extensions": settings.allowed_extensions,
        "content_signatures": {ext: sig.hex() for ext, sig in DEFAULT_SIGNATURES.items()},
        "name_pattern": settings.name_pattern,
        "max_upload_mb": settings.max_upload_bytes / MIB,
        "stale_lock_hours": settings.stale_lock_hours,
        "group_rule": {"digits": 7, "keep": 2},
        "session_hours": settings.session_hours,
        "ws_allowed_origins": settings.allowed_origins,
    }


def stored(conn: Connection) -> dict[str, Any]:
    """The values an admin set (rows of ``shop_settings``)."""
    rows = conn.execute(select(shop_settings.c.key, shop_settings.c.value)).all()
    return {row.key: row.value for row in rows if row.key in ShopConfig.model_fields}


def stored_group_rule(conn: Connection) -> GroupRule:
    """The group rule in force in this transaction (rebuilds and recoveries group with it)."""
    value = conn.execute(
        select(shop_settings.c.value).where(shop_settings.c.key == "group_rule")
    ).scalar_one_or_none()
    if not isinstance(value, dict):
        return GroupRule()
    return GroupRule(int(value.get("digits", 7)), int(value.get("keep", 2)))


def _build(values: Mapping[str, Any]) -> ShopConfig:
    try:
        return ShopConfig.model_validate(dict(values))
    except ValidationError as exc:
        raise BadRequest(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid settings"


class ShopSettings:
    """The current shop settings of this process, and the one way to change them."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._current = _build(defaults(settings))
        # Called with the new settings whenever they change (in the changing thread).
        self.listeners: list[Callable[[ShopConfig], None]] = []

    @property
    def current(self) -> ShopConfig:
        return self._current

    def _set(self, config: ShopConfig) -> None:
        self._current = config
        for listener in self.listeners:
            listener(config)

    def load(self) -> ShopConfig:
        """Read the stored values (at startup, and when the log says they changed)."""
        with self.db.read() as conn:
            values = stored(conn)
        self._set(self._merge(values))
        return self._current

    def _merge(self, values: Mapping[str, Any]) -> ShopConfig:
        merged = {**defaults(self.settings), **values}
        try:
            return ShopConfig.model_validate(merged)
        except ValidationError:
            # A stored value this version cannot read: keep the defaults for those keys
            # rather than refuse to start; the admin sees the defaults and can fix them.
            good = {}
            for key, value in values.items():
                try:
                    ShopConfig.model_validate({**defaults(self.settings), key: value})
                except ValidationError:
                    continue
                good[key] = value
            return _build({**defaults(self.settings), **good})

    def preview(self, patch: Mapping[str, Any]) -> tuple[ShopConfig, dict[str, Any]]:
        """The settings a patch would give, and what it would do to existing files."""
        with self.db.read() as conn:
            new = self._patched(stored(conn), patch)
            names = conn.execute(select(files.c.filename).where(files.c.deleted.is_(False)))
            return new, self._effects(new, [row.filename for row in names])

    def update(self, actor: str, patch: Mapping[str, Any]) -> tuple[ShopConfig, dict[str, Any]]:
        """Apply a partial update (blocking): validated, stored, logged, in one transaction."""
        with self.db.write() as conn:
            values = stored(conn)
            before = self._merge(values)
            new = self._patched(values, patch)
            changed = sorted(key for key in patch if getattr(new, key) != getattr(before, key))
            names = [
                r.filename
                for r in conn.execute(select(files.c.filename).where(files.c.deleted.is_(False)))
            ]
            effects = self._effects(new, names)
            if not changed:
                return new, effects
            dumped = new.model_dump(mode="json")
            for key in changed:
                conn.execute(delete(shop_settings).where(shop_settings.c.key == key))
                conn.execute(insert(shop_settings).values(key=key, value=dumped[key]))
            regrouped = "group_rule" in changed
            if regrouped:
                _regroup(conn, new.grouping)
            append(
                conn,
                EventType.CONFIG_CHANGED,
                actor=actor,
                data={
                    "settings": new.public(),
                    "changed": changed,
                    "values": {key: dumped[key] for key in changed},
                    "regrouped": regrouped,
                },
            )
        self._set(new)
        return new, effects

    def _patched(self, values: Mapping[str, Any], patch: Mapping[str, Any]) -> ShopConfig:
        unknown = sorted(set(patch) - set(ShopConfig.model_fields))
        if unknown:
            raise BadRequest(f"unknown setting {', '.join(unknown)}")
        return _build({**defaults(self.settings), **values, **patch})

    @staticmethod
    def _effects(new: ShopConfig, names: list[str]) -> dict[str, Any]:
        """Existing names the new rules would refuse for a new upload (they stay in the
        vault; only new files must follow the rules), and files that change group."""
        failing = []
        compiled = re.compile(new.name_pattern) if new.name_pattern else None
        for name in names:
            if extension_of(name) not in new.allowed_extensions:
                failing.append({"filename": name, "reason": "extension not allowed"})
            elif compiled is not None and compiled.fullmatch(name) is None:
                failing.append({"filename": name, "reason": "does not match the name pattern"})
        return {"failing_names": failing[:1000], "failing_count": len(failing)}


def _regroup(conn: Connection, rule: GroupRule) -> int:
    """Re-derive every file's group and subgroup under a new rule (same transaction)."""
    rows = conn.execute(select(files.c.id, files.c.filename, files.c.group_name, files.c.subgroup))
    moved = 0
    for row in rows.all():
        group, subgroup = rule.group_of(row.filename)
        if (group, subgroup) != (row.group_name, row.subgroup):
            conn.execute(
                update(files)
                .where(files.c.id == row.id)
                .values(group_name=group, subgroup=subgroup)
            )
            moved += 1
    return moved
