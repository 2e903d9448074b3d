"""The domain's exceptions: each carries a stable error code and an HTTP status.

Services raise these; the API turns them into the one JSON error shape
``{"error": {"code": ..., "message": ...}}`` in a single place (``api/errors.py``).
"""

from __future__ import annotations


class CamvaultError(Exception):
    """Base of every error the API reports to a client."""

    code = "error"
    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(CamvaultError):
    code = "bad_request"
    status = 400


class WrongPassword(BadRequest):
    """The current password given to change it was not right (not a 401: the session is
    fine, only the form is wrong)."""

    code = "wrong_password"


class InvalidName(BadRequest):
    code = "invalid_name"


class InvalidType(BadRequest):
    code = "invalid_type"


class BadContent(BadRequest):
    code = "bad_content"


class EmptyFile(BadRequest):
    code = "empty"


class InvalidMirrorUrl(BadRequest):
    code = "invalid_mirror_url"


class MirrorKeyMissing(BadRequest):
    """A token was given but no key to encrypt it at rest is configured."""

    code = "mirror_key_missing"


class Unauthorized(CamvaultError):
    code = "unauthorized"
    status = 401


class Forbidden(CamvaultError):
    code = "forbidden"
    status = 403


class NotFound(CamvaultError):
    code = "not_found"
    status = 404


class Conflict(CamvaultError):
    code = "conflict"
    status = 409


class Exists(Conflict):
    code = "exists"


class LockedByOther(Conflict):
    code = "locked"


class NotLocked(Conflict):
    """The operation needs the file to be checked out by someone else."""

    code = "not_locked"


class IsLink(Conflict):
    """A .link entry cannot do what only a real file can (check out, check in)."""

    code = "is_link"


class HasLinks(Conflict):
    """A master file with links pointing to it cannot be deleted."""

    code = "has_links"


class LastAdmin(Conflict):
    """The change would leave the vault without an active admin."""

    code = "last_admin"


class NotLockHolder(Conflict):
    code = "not_lock_holder"


class TooLarge(CamvaultError):
    code = "too_large"
    status = 413


class RequestTimeout(CamvaultError):
    """The client sent its request body too slowly (see ``body_timeout``)."""

    code = "request_timeout"
    status = 408


class RangeNotSatisfiable(CamvaultError):
    code = "range_not_satisfiable"
    status = 416


class RateLimited(CamvaultError):
    code = "rate_limited"
    status = 429


class Unavailable(CamvaultError):
    """The database is busy or unreachable for a moment; nothing was changed, retry later."""

    code = "unavailable"
    status = 503


class InsufficientStorage(CamvaultError):
    """The server's disk (or the database's) is full; nothing was saved."""

    code = "insufficient_storage"
    status = 507


class SchemaTooNew(CamvaultError):
    """The database was migrated by a newer camvault; this one must not use it."""

    code = "schema_too_new"
    status = 503


class StorageError(CamvaultError):
    """The vault's storage (git, disk) refused a write; nothing was acknowledged."""

    code = "storage_error"
    status = 500


class GitProgramFailed(StorageError):
    """The git program failed; the message is its own output (no user-chosen names)."""


class BackupError(CamvaultError):
    """A backup cannot be written or restored (damaged, incomplete, newer, target in use)."""

    code = "backup_error"
    status = 400
