"""Request and response models: they validate input and document the API in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


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
    status: str


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
