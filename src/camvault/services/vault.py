"""The vault's domain operations: upload, checkout, check-in, cancel, revert, break, delete.

Each write follows one path: validate -> content fsync'd into the content store -> git
commit (compare-and-swap on ``main``) -> ONE database transaction holding the new state and
its event. The git commit happens inside the exclusive write transaction, so git and the
database move together; if the process dies between the two, ``catch_up`` replays the
missing commits from git (the history of record) on the next write or at startup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from anyio import to_thread
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from camvault.errors import (
    BadContent,
    BadRequest,
    EmptyFile,
    Exists,
    Forbidden,
    HasLinks,
    InvalidType,
    IsLink,
    LockedByOther,
    NotFound,
    NotLocked,
    NotLockHolder,
    RateLimited,
    TooLarge,
)
from camvault.events.log import EventType, append, get_meta, set_meta
from camvault.faults import checkpoint
from camvault.history.lfs import ContentStore
from camvault.history.repo import CommitInfo, VaultRepo
from camvault.names import (
    NameRules,
    check_signature,
    extension_of,
    name_key,
    validate_name,
)
from camvault.services.auth import User
from camvault.services.recovery import catch_up, index_commit
from camvault.services.shop import ShopSettings
from camvault.services.snapshot import SnapshotCache
from camvault.services.uploads import (
    ReceivedUpload,
    megabytes,
    receive_multipart,
    spool_to_tmp,
)
from camvault.services.writer import Writer
from camvault.settings import Settings
from camvault.store.db import Database
from camvault.store.models import events, files, locks
from camvault.store.queries import (
    file_row,
    iso,
    record_from_row,
    record_of,
    version_row,
    version_rows,
)

MAX_MESSAGE = 4000
MAX_LINK_BYTES = 1024
MAX_DESCRIPTION = 1000

# One request per asker and file per minute: enough to be heard, too little to nag.
UNLOCK_REQUEST_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class Content:
    """A version's bytes, ready to stream: the content-store path, size and sha256."""

    path: Path
    filename: str
    size: int
    sha256: str
    version: int


def is_link(name: str) -> bool:
    """A .link entry aliases a master file (its content is the master's name)."""
    return extension_of(name) == ".link"


def clean_text(value: str, what: str, limit: int = MAX_MESSAGE) -> str:
    """A user's message, reason or description: trimmed, bounded, no control characters
    (line breaks and tabs are fine). NUL and friends would break git and PostgreSQL."""
    value = value.strip()
    if len(value) > limit:
        raise BadRequest(f"{what} may have at most {limit} characters")
    bad = next((c for c in value if ord(c) < 32 and c not in "\n\r\t" or c == "\x7f"), None)
    if bad is not None:
        raise BadRequest(f"{what} contains the control character U+{ord(bad):04X}")
    return value


def _text(fields: dict[str, str], key: str, limit: int) -> str:
    return clean_text(fields.get(key, ""), key, limit)


def _flag(fields: dict[str, str], key: str) -> bool:
    value = fields.get(key, "false").strip().lower()
    if value in {"1", "true", "on", "yes"}:
        return True
    if value in {"", "0", "false", "off", "no"}:
        return False
    raise BadRequest(f"{key} must be true or false")


def next_revision(current: str | None, *, major: bool) -> str:
    """Revision labels: 1.0 for a new file, minor + 1 per version, major -> next major.0."""
    if current is None:
        return "1.0"
    major_n, minor_n = (int(part) for part in current.split(".", 1))
    return f"{major_n + 1}.0" if major else f"{major_n}.{minor_n + 1}"


# Built once (a statement caches its own cache key): lock operations are the hot path.
_TAKE_LOCK = insert(locks)
_RELEASE_LOCK = delete(locks).where(locks.c.file_id == bindparam("file_id"))


class VaultService:
    """The operations the API calls. Blocking work runs in threads through the one writer."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        repo: VaultRepo,
        store: ContentStore,
        writer: Writer,
        tmp_dir: Path,
        shop: ShopSettings,
    ) -> None:
        self.settings = settings
        self.shop = shop
        self.tmp_dir = tmp_dir
        self.db = db
        self.repo = repo
        self.store = store
        self.writer = writer
        self.snapshots = SnapshotCache(db)

    # --- rules ----------------------------------------------------------------------------

    @property
    def rules(self) -> NameRules:
        return self.shop.current.rules

    def public_config(self) -> dict[str, Any]:
        """The settings every signed-in client may see (the page adapts to them)."""
        return self.shop.current.public()

    async def check_names(self, names: list[str]) -> list[dict[str, Any]]:
        """Would these names be accepted for new files? Same rules as upload, nothing written."""

        def check() -> list[dict[str, Any]]:
            results = []
            with self.db.read() as conn:
                for name in names:
                    try:
                        validate_name(name, self.rules)
                        if file_row(conn, name_key(name)) is not None:
                            raise Exists(
                                f"a file named {name!r} already exists (names ignore case)"
                            )
                    except (BadRequest, Exists) as exc:
                        results.append(
                            {"name": name, "ok": False, "code": exc.code, "message": exc.message}
                        )
                    else:
                        results.append({"name": name, "ok": True, "code": None, "message": None})
            return results

        return await to_thread.run_sync(check)

    def check_new_file(self, name: str, head: bytes, size: int) -> str:
        """The checks a new file's name and content pass, uploaded or imported; returns the
        name. ``head`` is the content's first bytes (at least the longest signature)."""
        name = validate_name(name, self.rules)
        if size == 0:
            raise EmptyFile("the file is empty")
        if size > self.shop.current.max_upload_bytes:
            limit = megabytes(self.shop.current.max_upload_bytes)
            raise TooLarge(f"the file is larger than the limit of {limit}")
        check_signature(name, head, self.shop.current.signatures)
        if is_link(name) and size > MAX_LINK_BYTES:
            raise BadContent(f"a .link file holds only the name of its master file ({name})")
        return name

    def is_lfs(self, filename: str) -> bool:
        return self.repo.wants_lfs(filename)

    def _require_file(self, conn: Connection, name: str) -> Any:
        row = file_row(conn, name_key(name))
        if row is None:
            raise NotFound(f"no file named {name!r}")
        return row

    # --- reads ----------------------------------------------------------------------------

    async def list_files(self) -> tuple[int, bytes]:
        """The grouped list as JSON bytes and the seq it reflects (cached per seq)."""
        return await to_thread.run_sync(self.snapshots.get)

    async def get_file(self, name: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            with self.db.read() as conn:
                return record_from_row(self._require_file(conn, name))

        return await to_thread.run_sync(read)

    async def list_versions(self, name: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self.db.read() as conn:
                return version_rows(conn, self._require_file(conn, name).id)

        return await to_thread.run_sync(read)

    async def content(self, name: str, version: int | None) -> Content:
        def read() -> Content:
            with self.db.read() as conn:
                row = self._require_file(conn, name)
                if row.link_target is not None:
                    # A link downloads its master (any version asked for is the master's).
                    row = self._require_master(conn, row)
                if version is None or version == row.version:
                    sha, size, number = row.sha256, row.size, row.version
                else:
                    found = version_row(conn, row.id, version)
                    if found is None:
                        raise NotFound(f"{row.filename} has no version {version}")
                    sha, size, number = found.sha256, found.size, found.version
            return Content(self.store.path_for(sha), row.filename, size, sha, number)

        return await to_thread.run_sync(read)

    # --- uploads and check-ins --------------------------------------------------------------

    async def _receive(
        self, chunks: AsyncIterator[bytes], content_type: str, precheck: Any
    ) -> ReceivedUpload:
        return await receive_multipart(
            chunks,
            content_type,
            tmp_dir=self.tmp_dir,
            max_bytes=self.shop.current.max_upload_bytes,
            on_file_start=precheck,
        )

    def stage_content(self, filename: str, upload: ReceivedUpload) -> str | None:
        """Put the bytes where the commit needs them; returns the git blob id for plain files.

        Content is content-addressed, so staging before the commit is harmless if the
        commit then fails: an unreferenced object, never a partial version.
        """
        blob_id = (
            None
            if self.is_lfs(filename)
            else self.repo.create_blob_from_file(upload.tmp_path, self.tmp_dir)
        )
        self.store.adopt(upload.tmp_path, upload.sha256)
        return blob_id

    async def upload(
        self, user: User, chunks: AsyncIterator[bytes], content_type: str
    ) -> dict[str, Any]:
        """A new file: version 1 (or the next version of a file deleted earlier)."""

        async def precheck(filename: str | None, _fields: dict[str, str]) -> None:
            name = validate_name(filename or "", self.rules)
            await to_thread.run_sync(self._check_name_free, name)

        upload = await self._receive(chunks, content_type, precheck)
        try:
            name = self.check_new_file(upload.filename or "", upload.head, upload.size)
            description = _text(upload.fields, "description", MAX_DESCRIPTION)
            message = _text(upload.fields, "message", MAX_MESSAGE) or f"Add {name}"
            blob_id = await to_thread.run_sync(self.stage_content, name, upload)
            return await self.writer.run(
                self.commit_upload, user, name, upload, blob_id, description, message
            )
        finally:
            upload.discard()

    def _check_name_free(self, name: str) -> None:
        with self.db.read() as conn:
            if file_row(conn, name_key(name)) is not None:
                raise Exists(f"a file named {name!r} already exists (names ignore case)")

    def commit_upload(
        self,
        user: User,
        name: str,
        upload: ReceivedUpload,
        blob_id: str | None,
        description: str,
        message: str,
        action: str = "upload",
    ) -> dict[str, Any]:
        """The write transaction of an upload (or an import: ``action="import"``); blocking.

        Raises Exists if a live file has the name by now."""
        with self.db.write() as conn:
            self.catch_up(conn)
            existing = file_row(conn, name_key(name), include_deleted=True)
            if existing is not None and not self._is_deleted(conn, existing.id):
                # Refused after this transaction commits, so what catch_up replayed (say
                # the same file, committed to git by an import killed before its database
                # commit) is kept for the caller to see, not rolled back with the refusal.
                taken = Exists(
                    f"a file named {existing.filename!r} already exists (names ignore case)"
                )
            else:
                taken = None
                record = self._add_file(
                    conn, user, name, upload, blob_id, description, message, action, existing
                )
        if taken is not None:
            raise taken
        return record

    def _add_file(
        self,
        conn: Connection,
        user: User,
        name: str,
        upload: ReceivedUpload,
        blob_id: str | None,
        description: str,
        message: str,
        action: str,
        existing: Any,
    ) -> dict[str, Any]:
        version = 1 if existing is None else existing.version + 1
        revision = "1.0" if existing is None else next_revision(existing.revision, major=True)
        # Checked in this transaction: the master cannot vanish between check and commit.
        link_target = self._link_target(conn, name, upload) if is_link(name) else None
        record = self.commit_version(
            conn,
            author=user.username,
            name=name,
            action=action,
            link_target=link_target,
            version=version,
            revision=revision,
            sha256=upload.sha256,
            size=upload.size,
            blob_id=blob_id,
            message=message,
            description=description,
            file_id=None if existing is None else existing.id,
        )
        append(
            conn,
            EventType.FILE_UPLOADED,
            actor=user.username,
            filename=name,
            version=version,
            data={"file": record, "message": message, "action": action},
        )
        return record

    async def checkin(
        self, user: User, name: str, chunks: AsyncIterator[bytes], content_type: str
    ) -> dict[str, Any]:
        """A new version from the lock holder; the lock is released unless keep_locked."""
        await to_thread.run_sync(self._check_holder, user, name)

        async def precheck(_filename: str | None, _fields: dict[str, str]) -> None:
            return None

        upload = await self._receive(chunks, content_type, precheck)
        try:
            checkpoint("checkin.spooled")
            row = await self.get_file(name)
            filename = row["filename"]
            check_signature(filename, upload.head, self.shop.current.signatures)
            message = _text(upload.fields, "message", MAX_MESSAGE)
            if not message:
                raise BadRequest("a check-in needs a message saying what changed")
            keep = _flag(upload.fields, "keep_locked")
            major = _flag(upload.fields, "major")
            description = (
                _text(upload.fields, "description", MAX_DESCRIPTION)
                if "description" in upload.fields
                else None
            )
            blob_id = await to_thread.run_sync(self.stage_content, filename, upload)
            checkpoint("checkin.staged")
            record = await self.writer.run(
                self._commit_checkin,
                user,
                filename,
                upload,
                blob_id,
                message,
                keep,
                major,
                description,
            )
            checkpoint("checkin.responding")
            return record
        finally:
            upload.discard()

    def _check_holder(self, user: User, name: str) -> Any:
        with self.db.read() as conn:
            return self._require_holder(conn, user, name)

    def _require_holder(self, conn: Connection, user: User, name: str) -> Any:
        row = self._require_file(conn, name)
        if row.lock_user is None:
            raise NotLockHolder(f"{row.filename} is not checked out; check it out first")
        if row.lock_user != user.username:
            raise NotLockHolder(
                f"{row.filename} is checked out by {row.lock_user} since "
                f"{iso(row.lock_since)}, not by you"
            )
        return row

    def _commit_checkin(
        self,
        user: User,
        name: str,
        upload: ReceivedUpload,
        blob_id: str | None,
        message: str,
        keep: bool,
        major: bool,
        description: str | None,
    ) -> dict[str, Any]:
        with self.db.write() as conn:
            self.catch_up(conn)
            row = self._require_holder(conn, user, name)
            version = row.version + 1
            record = self.commit_version(
                conn,
                author=user.username,
                name=row.filename,
                action="checkin",
                version=version,
                revision=next_revision(row.revision, major=major),
                sha256=upload.sha256,
                size=upload.size,
                blob_id=blob_id,
                message=message,
                description=row.description if description is None else description,
                file_id=row.id,
                release_lock=not keep,
            )
            append(
                conn,
                EventType.FILE_CHECKED_IN,
                actor=user.username,
                filename=row.filename,
                version=version,
                data={"file": record, "message": message, "kept_lock": keep},
            )
            checkpoint("checkin.db_written")
        checkpoint("checkin.db_committed")
        return record

    def commit_version(
        self,
        conn: Connection,
        *,
        author: str,
        name: str,
        action: str,
        version: int,
        revision: str,
        sha256: str,
        size: int,
        blob_id: str | None,
        message: str,
        description: str,
        file_id: int | None,
        release_lock: bool = False,
        when: datetime | None = None,
        email: str | None = None,
        source: str | None = None,
        link_target: str | None = None,
    ) -> dict[str, Any]:
        """Git commit, then the file index and version rows, in the caller's transaction.

        ``when``, ``email`` and ``source`` are for imported history (see history/repo.py)."""
        # Whole seconds, as git records them: the index rebuilt from git is then identical.
        now = datetime.now(UTC).replace(microsecond=0) if when is None else when
        head = get_meta(conn, "git_head")
        commit = self.repo.commit_change(
            filename=name,
            action=action,
            version=version,
            revision=revision,
            sha256=sha256,
            size=size,
            lfs=self.is_lfs(name),
            blob_id=blob_id,
            author=author,
            message=message,
            when=now,
            expected_head=head,
            keep_lock=action == "checkin" and not release_lock,
            email=email,
            source=source,
            link_target=link_target,
        )
        # If this transaction fails, main goes back too: a failure answered as "nothing was
        # saved" must not turn into a version at the next write's catch_up.
        self.db.on_rollback(conn, partial(self.repo.reset_main, commit, head))
        checkpoint(f"{action}.main_moved")
        info = CommitInfo(
            commit=commit, parent=None, filename=name, action=action, version=version,
            revision=revision, sha256=sha256, size=size, author=author,
            message=message, when=now, source=source, link_target=link_target,
        )  # fmt: skip
        file_id = index_commit(conn, info, file_id=file_id, description=description)
        if release_lock:
            conn.execute(_RELEASE_LOCK, {"file_id": file_id})
        set_meta(conn, "git_head", commit)
        return record_of(conn, name)

    @staticmethod
    def _is_deleted(conn: Connection, file_id: int) -> bool:
        return bool(conn.execute(select(files.c.deleted).where(files.c.id == file_id)).scalar())

    # --- locks ----------------------------------------------------------------------------

    async def checkout(self, user: User, name: str, message: str) -> dict[str, Any]:
        """Take the exclusive lock; taking a lock you already hold changes nothing."""
        message = clean_text(message, "message")
        return await self.writer.step(self._checkout, user, name, message)

    @staticmethod
    def _refuse_if_locked(row: Any, user: User) -> None:
        if row.lock_user is not None and row.lock_user != user.username:
            raise LockedByOther(
                f"{row.filename} is checked out by {row.lock_user} since {iso(row.lock_since)}"
            )

    def _checkout(self, conn: Connection, user: User, name: str, message: str) -> dict[str, Any]:
        row = self._require_file(conn, name)
        if row.link_target is not None:
            raise IsLink(
                f"{row.filename} is a link to {row.link_target}: "
                f"check out {row.link_target} instead"
            )
        if row.lock_user == user.username:
            return record_from_row(row)
        self._refuse_if_locked(row, user)
        since = datetime.now(UTC)
        conn.execute(
            _TAKE_LOCK, {"file_id": row.id, "user_id": user.id, "since": since, "message": message}
        )
        # The row read above plus the lock just written: no second query needed.
        record = {
            **record_from_row(row),
            "lock": {"user": user.username, "since": iso(since), "message": message},
        }
        append(
            conn,
            EventType.FILE_CHECKED_OUT,
            actor=user.username,
            filename=row.filename,
            version=row.version,
            data={"file": record, "message": message},
        )
        return record

    async def cancel_checkout(self, user: User, name: str) -> dict[str, Any]:
        """Release your lock without a new version."""
        return await self.writer.step(self._cancel, user, name)

    def _cancel(self, conn: Connection, user: User, name: str) -> dict[str, Any]:
        row = self._require_holder(conn, user, name)
        conn.execute(_RELEASE_LOCK, {"file_id": row.id})
        record = {**record_from_row(row), "lock": None}
        append(
            conn,
            EventType.FILE_CHECKOUT_CANCELLED,
            actor=user.username,
            filename=row.filename,
            version=row.version,
            data={"file": record},
        )
        return record

    async def break_lock(self, admin: User, name: str, reason: str) -> dict[str, Any]:
        """An admin frees an abandoned lock; the reason reaches the former holder."""
        if not admin.is_admin:
            raise Forbidden("only an admin can break a lock")
        reason = clean_text(reason, "reason")
        if not reason:
            raise BadRequest("breaking a lock needs a reason the holder will see")
        return await self.writer.step(self._break, admin, name, reason)

    def _break(self, conn: Connection, admin: User, name: str, reason: str) -> dict[str, Any]:
        row = self._require_file(conn, name)
        if row.lock_user is None:
            raise NotFound(f"{row.filename} is not checked out")
        holder, since = row.lock_user, iso(row.lock_since)
        conn.execute(_RELEASE_LOCK, {"file_id": row.id})
        record = record_of(conn, name)
        append(
            conn,
            EventType.FILE_LOCK_BROKEN,
            actor=admin.username,
            filename=row.filename,
            version=row.version,
            data={"file": record, "holder": holder, "since": since, "reason": reason},
        )
        return record

    # --- link files ----------------------------------------------------------------------

    async def create_link(
        self, user: User, name: str, target: str, description: str, message: str
    ) -> dict[str, Any]:
        """A new .link entry whose content names its master (an upload of that text)."""
        if not is_link(name):
            raise InvalidType(f"a link's name ends in .link ({name!r} does not)")
        description = clean_text(description, "description", MAX_DESCRIPTION)
        message = clean_text(message, "message") or f"Link {name} to {target}"
        content = (target.strip() + "\n").encode()
        upload = await to_thread.run_sync(spool_to_tmp, [content], self.tmp_dir, name)
        try:
            name = self.check_new_file(name, upload.head, upload.size)
            await to_thread.run_sync(self._check_name_free, name)
            blob_id = await to_thread.run_sync(self.stage_content, name, upload)
            return await self.writer.run(
                self.commit_upload, user, name, upload, blob_id, description, message
            )
        finally:
            await to_thread.run_sync(upload.discard)

    def _link_target(self, conn: Connection, name: str, upload: ReceivedUpload) -> str:
        """The master a .link upload names: an existing file that is not itself a link."""
        try:
            # Staged already: the bytes are in the content store under their sha256.
            text = self.store.path_for(upload.sha256).read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadContent(f"{name} must hold its master's file name as UTF-8 text") from None
        if not text or "\n" in text:
            raise BadContent(f"{name} must hold exactly one file name: the master it points to")
        master = file_row(conn, name_key(text))
        if master is None:
            raise BadContent(f"{name} points to {text!r}, which is not in the vault")
        if master.link_target is not None or is_link(master.filename):
            raise BadContent(f"{name} points to {master.filename}, which is itself a link")
        return str(master.filename)

    def _require_master(self, conn: Connection, link: Any) -> Any:
        master = file_row(conn, name_key(link.link_target))
        if master is None:  # cannot happen while deletes refuse masters with links
            raise NotFound(f"{link.filename} points to {link.link_target}, which is gone")
        return master

    # --- asking the holder ----------------------------------------------------------------

    async def request_unlock(self, user: User, name: str, message: str) -> dict[str, Any]:
        """Ask the holder to release a file: a live NOTIFICATION to them, and an audit entry."""
        message = clean_text(message, "message")
        return await self.writer.step(self._request_unlock, user, name, message)

    def _request_unlock(
        self, conn: Connection, user: User, name: str, message: str
    ) -> dict[str, Any]:
        row = self._require_file(conn, name)
        if row.lock_user is None:
            raise NotLocked(f"{row.filename} is not checked out: you can take it yourself")
        if row.lock_user == user.username:
            raise NotLocked(f"you hold {row.filename} yourself")
        recent = conn.execute(
            select(events.c.seq)
            .where(
                events.c.filename == row.filename,
                events.c.type == str(EventType.NOTIFICATION),
                events.c.actor == user.username,
                events.c.at > datetime.now(UTC) - UNLOCK_REQUEST_INTERVAL,
            )
            .limit(1)
        ).first()
        if recent is not None:
            seconds = int(UNLOCK_REQUEST_INTERVAL.total_seconds())
            raise RateLimited(
                f"you asked {row.lock_user} about {row.filename} less than {seconds} s ago",
                headers={"Retry-After": str(seconds)},
            )
        append(
            conn,
            EventType.NOTIFICATION,
            actor=user.username,
            filename=row.filename,
            version=row.version,
            data={
                "to": row.lock_user,
                "kind": "unlock_request",
                "from": user.username,
                "filename": row.filename,
                "message": message,
            },
        )
        return {"holder": row.lock_user, "filename": row.filename}

    # --- revert and delete ----------------------------------------------------------------

    async def revert(self, user: User, name: str, version: int, message: str) -> dict[str, Any]:
        """A new version whose content is an older version's; the holder keeps the lock."""
        message = clean_text(message, "message")
        return await self.writer.run(self._revert, user, name, version, message)

    def _revert(self, user: User, name: str, target: int, message: str) -> dict[str, Any]:
        with self.db.write() as conn:
            self.catch_up(conn)
            row = self._require_holder(conn, user, name)
            old = version_row(conn, row.id, target)
            if old is None:
                raise NotFound(f"{row.filename} has no version {target}")
            blob_id = None
            if not self.is_lfs(row.filename):
                blob_id = self.repo.create_blob_from_file(
                    self.store.path_for(old.sha256), self.tmp_dir
                )
            version = row.version + 1
            message = message or f"Revert {row.filename} to version {target}"
            record = self.commit_version(
                conn,
                author=user.username,
                name=row.filename,
                action="revert",
                version=version,
                revision=next_revision(row.revision, major=False),
                sha256=old.sha256,
                size=old.size,
                blob_id=blob_id,
                message=message,
                description=row.description,
                file_id=row.id,
            )
            append(
                conn,
                EventType.FILE_REVERTED,
                actor=user.username,
                filename=row.filename,
                version=version,
                data={"file": record, "message": message, "to": target},
            )
            return record

    async def delete(self, admin: User, name: str, message: str = "") -> None:
        """Remove a file from the list (admin only, not while locked); git keeps its history."""
        if not admin.is_admin:
            raise Forbidden("only an admin can delete a file")
        await self.writer.run(self._delete, admin, name, message.strip())

    def _delete(self, admin: User, name: str, message: str) -> None:
        with self.db.write() as conn:
            self.catch_up(conn)
            row = self._require_file(conn, name)
            self.commit_delete(conn, row, author=admin.username, message=message)

    def commit_delete(
        self,
        conn: Connection,
        row: Any,
        *,
        author: str,
        message: str,
        when: datetime | None = None,
        email: str | None = None,
        source: str | None = None,
    ) -> None:
        """Delete the file of ``row`` (from ``file_row``) in the caller's write transaction:
        the git commit, the index flag and the event. Refused while someone holds its lock
        or while links point to it."""
        linked = [
            r.filename
            for r in conn.execute(
                select(files.c.filename)
                .where(files.c.link_target == row.filename, files.c.deleted.is_(False))
                .order_by(files.c.name_key)
            )
        ]
        if linked:
            raise HasLinks(
                f"{row.filename} cannot be deleted while links point to it: "
                f"{', '.join(linked)}; delete those first"
            )
        if row.lock_user is not None:
            raise LockedByOther(
                f"{row.filename} is checked out by {row.lock_user}; "
                "the lock must be released or broken before deleting"
            )
        version = row.version + 1
        message = message or f"Delete {row.filename}"
        head = get_meta(conn, "git_head")
        commit = self.repo.commit_change(
            filename=row.filename,
            action="delete",
            version=version,
            revision=row.revision,
            sha256=row.sha256,
            size=row.size,
            lfs=self.is_lfs(row.filename),
            blob_id=None,
            author=author,
            message=message,
            when=datetime.now(UTC) if when is None else when,
            expected_head=head,
            email=email,
            source=source,
        )
        self.db.on_rollback(conn, partial(self.repo.reset_main, commit, head))
        conn.execute(update(files).where(files.c.id == row.id).values(deleted=True))
        set_meta(conn, "git_head", commit)
        append(
            conn,
            EventType.FILE_DELETED,
            actor=author,
            filename=row.filename,
            version=row.version,
            data={"filename": row.filename, "message": message},
        )

    # --- git is the history of record -----------------------------------------------------

    async def reconcile(self) -> int:
        """Bring the database up to git's main (after a crash); returns commits applied."""

        def run() -> int:
            with self.db.write() as conn:
                return self.catch_up(conn)

        return await self.writer.run(run)

    def catch_up(self, conn: Connection) -> int:
        """Apply git commits the database has not seen yet (same transaction as the caller)."""
        return catch_up(conn, self.repo)
