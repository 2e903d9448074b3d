"""Request and response models: they validate input and document the API in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


class Credentials(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    username: str
    role: str


class AccountOut(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: datetime


class AccountIn(BaseModel):
    username: str = Field(max_length=64)
    role: Literal["admin", "user"] = "user"
    password: str = Field(max_length=1024)


class AccountPatch(BaseModel):
    role: Literal["admin", "user"] | None = None
    disabled: bool | None = Field(
        default=None, description="Disabling ends every session and closes the user's sockets."
    )
    password: str | None = Field(
        default=None, max_length=1024, description="A new password; ends the user's sessions."
    )


class PasswordChangeIn(BaseModel):
    current: str = Field(max_length=1024)
    new: str = Field(max_length=1024)


class LoginOut(BaseModel):
    user: UserOut
    token: str = Field(
        description="Bearer token for non-browser clients; same session as the cookie."
    )


class Health(BaseModel):
    status: str = Field(description="ok, or unavailable when a part below is not ok")
    database: str = Field(description="ok, or unavailable")
    vault: str = Field(description="ok, or unavailable (the git repository or its storage)")


class LockOut(BaseModel):
    user: str
    since: str
    message: str


class FileRecord(BaseModel):
    filename: str
    group: str
    subgroup: str | None
    size: int
    sha256: str
    version: int
    revision: str
    description: str
    modified_at: str
    modified_by: str
    lock: LockOut | None
    link_target: str | None = Field(
        description="For a .link entry, the master file it stands for (else null)"
    )


class FileList(BaseModel):
    seq: int = Field(description="The event-log position this list reflects.")
    groups: dict[str, list[FileRecord]]


class VersionOut(BaseModel):
    version: int
    revision: str
    action: str
    size: int
    sha256: str
    author: str
    message: str
    created_at: str
    commit: str


class CheckoutIn(BaseModel):
    message: str = Field(default="", max_length=4000, description="Why you are taking the file.")


class RevertIn(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1)
    message: str = Field(default="", max_length=4000)


class LinkIn(BaseModel):
    name: str = Field(max_length=255, description="The link's name, ending in .link")
    target: str = Field(max_length=255, description="The master file it stands for")
    description: str = Field(default="", max_length=1000)
    message: str = Field(default="", max_length=4000)


class UnlockRequestIn(BaseModel):
    message: str = Field(default="", max_length=4000, description="Shown to the holder.")


class UnlockRequestOut(BaseModel):
    holder: str
    filename: str


class BreakLockIn(BaseModel):
    reason: str = Field(max_length=4000, description="Shown to the holder; required.")


def multipart_body(*, with_description: bool, checkin: bool) -> dict[str, object]:
    """OpenAPI for the streamed multipart endpoints (the body is parsed by hand)."""
    properties: dict[str, object] = {
        "file": {"type": "string", "format": "binary"},
        "message": {"type": "string", "maxLength": 4000},
    }
    if with_description:
        properties["description"] = {"type": "string", "maxLength": 1000}
    if checkin:
        properties["keep_locked"] = {"type": "boolean", "default": False}
        properties["major"] = {"type": "boolean", "default": False}
    required = ["file", "message"] if checkin else ["file"]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": properties, "required": required}
                }
            },
        }
    }


class AuditEntry(BaseModel):
    seq: int
    at: str
    actor: str | None
    type: str
    filename: str | None
    version: int | None
    message: str = Field(description="The user's message, or the reason (break lock)")
    details: dict[str, object]


class AuditPage(BaseModel):
    events: list[AuditEntry]
    next_before: int | None = Field(description="Pass as 'before' for the next (older) page")


class GroupRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digits: int = Field(ge=1, le=20, description="Leading digits that make a part number")
    keep: int = Field(ge=0, le=20, description="Digits of it that name the group (rest: X)")


class ShopSettingsOut(BaseModel):
    allowed_extensions: list[str]
    content_signatures: dict[str, str | None]
    name_pattern: str | None
    max_upload_mb: float
    stale_lock_hours: float
    group_rule: GroupRuleIn
    session_hours: float
    ws_allowed_origins: list[str]


class ShopSettingsPatch(BaseModel):
    """Any subset of the shop settings; keys left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    # Left out means "keep"; null is no value for these (the document must not offer it,
    # the server refuses it), except for name_pattern, where null means no pattern. The
    # bounds sit inside the type so the document shows them on the value, not the union.
    allowed_extensions: (
        Annotated[list[str], Field(min_length=1, max_length=50)] | SkipJsonSchema[None]
    ) = None
    content_signatures: dict[str, str | None] | SkipJsonSchema[None] = Field(
        default=None, description="Extension -> hex bytes files must start with; null = off"
    )
    name_pattern: str | None = Field(
        default=None,
        max_length=500,
        description="Regex every new name must match; '' or null = none",
    )
    max_upload_mb: Annotated[float, Field(gt=0, le=1024 * 1024)] | SkipJsonSchema[None] = None
    stale_lock_hours: Annotated[float, Field(gt=0, le=24 * 365)] | SkipJsonSchema[None] = None
    group_rule: GroupRuleIn | SkipJsonSchema[None] = None
    session_hours: Annotated[float, Field(gt=0, le=24 * 365)] | SkipJsonSchema[None] = None
    ws_allowed_origins: Annotated[list[str], Field(max_length=50)] | SkipJsonSchema[None] = None


class FailingName(BaseModel):
    filename: str
    reason: str


class SettingsEffects(BaseModel):
    failing_names: list[FailingName] = Field(
        description="Existing files whose names the new rules would refuse for a new upload "
        "(they stay in the vault); at most 1,000"
    )
    failing_count: int


class ShopSettingsAnswer(BaseModel):
    settings: ShopSettingsOut
    defaults: ShopSettingsOut | None = None
    effects: SettingsEffects | None = None
    saved: bool = Field(default=False, description="False for a dry run")


class UserCheckins(BaseModel):
    user: str
    counts: list[int] = Field(description="Check-ins per day, one number per entry of 'days'")
    total: int


class ActiveFile(BaseModel):
    filename: str
    events: int = Field(description="File events (uploads, checkouts, check-ins...) in the window")
    checkins: int
    last_at: str


class DashboardOut(BaseModel):
    seq: int = Field(description="The event-log position these numbers reflect")
    generated_at: str
    timezone: str
    days: list[str] = Field(description="The last 30 days (ISO dates, oldest first, today last)")
    checkins: list[UserCheckins] = Field(description="Per user, busiest first")
    checkins_total: int
    active_files: list[ActiveFile] = Field(description="Most file events first, at most 10")
