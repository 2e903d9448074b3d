"""Users, passwords (argon2), sessions and tokens, and the login rate limit."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import anyio
from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, func, insert, select, update

from camvault.errors import (
    BadRequest,
    Exists,
    LastAdmin,
    NotFound,
    RateLimited,
    Unauthorized,
    WrongPassword,
)
from camvault.events.log import EventType, append
from camvault.store.db import Database
from camvault.store.models import sessions, users
from camvault.store.queries import aware

log = logging.getLogger("camvault.auth")
REFUSED_LOGIN_DELAY_S = 1.0
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH = 8
MAX_PARALLEL_VERIFIES = 4
# How long a verified token is trusted without asking the database again. Whatever ends
# sessions in this process clears the cache at once; a change made by another process (the
# CLI, another instance) takes effect within this many seconds.
SESSION_CACHE_SECONDS = 2.0
SESSION_CACHE_MAX = 10_000


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def public(self) -> dict[str, str]:
        return {"username": self.username, "role": str(self.role)}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _find_user(conn: Connection, username: str) -> Any:
    """The user's row, or None. A name no account can have (NUL, 1 MB...) is not looked
    up: PostgreSQL refuses a NUL in a query parameter outright."""
    if not USERNAME_RE.fullmatch(username):
        return None
    return conn.execute(select(users).where(users.c.username == username)).first()


def validate_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise BadRequest(
            "a username is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return username


# Passwords so common that the first guesses of any attacker include them.
COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password123", "12345678", "123456789", "1234567890",
        "qwertyuiop", "qwerty123", "11111111", "00000000", "iloveyou", "letmein1",
        "welcome1", "changeme", "mastercam", "camvault", "admin123", "administrator",
    }
)  # fmt: skip


def validate_password(password: str, username: str | None = None) -> str:
    """The shop's password policy; the message names the rule that was broken."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise BadRequest("a password may have at most 1024 characters")
    if not password.strip():
        raise BadRequest("a password cannot be only spaces")
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 3:
        raise BadRequest("that password is too easy to guess: choose a less common one")
    if username and len(password.lower().replace(username.lower(), "")) < 5:
        raise BadRequest("a password must be more than the username with a few characters added")
    return password


class LoginLimiter:
    """Counts login attempts per (username, client) and per client; too many -> 429.

    An attempt counts from the moment it starts, not when its (slow) password check
    ends, so a burst of parallel guesses is limited like a sequence; a success forgets
    that user's attempts. Kept per process: it slows a brute force down, it guards no
    invariant.
    """

    MAX_KEYS = 100_000

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._attempts: dict[str, deque[float]] = {}

    def _keys(self, username: str, client: str) -> tuple[str, str]:
        return f"u:{username.casefold()}|{client}", f"c:{client}"

    def _live(self, key: str, now: float) -> deque[float] | None:
        stamps = self._attempts.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._attempts[key]
            return None
        return stamps

    def attempt(self, username: str, client: str) -> None:
        """Register an attempt about to be checked, or raise RateLimited."""
        now = time.monotonic()
        user_key, client_key = self._keys(username, client)
        limits = ((user_key, self.max_failures), (client_key, self.max_failures * 4))
        for key, limit in limits:
            stamps = self._live(key, now)
            if stamps is not None and len(stamps) >= limit:
                retry = max(1, int(stamps[0] + self.window - now) + 1)
                raise RateLimited(
                    f"too many failed logins; try again in {retry} seconds",
                    headers={"Retry-After": str(retry)},
                )
        if len(self._attempts) >= self.MAX_KEYS:
            self._prune(now)
        for key in (user_key, client_key):
            self._attempts.setdefault(key, deque()).append(now)

    def succeeded(self, username: str, client: str) -> None:
        """A right password: that user's attempts from this client no longer count."""
        user_key, client_key = self._keys(username, client)
        self._attempts.pop(user_key, None)
        stamps = self._attempts.get(client_key)
        if stamps:
            stamps.pop()

    def _prune(self, now: float) -> None:
        for key in list(self._attempts):
            self._live(key, now)


def _account(row: Any) -> dict[str, Any]:
    """An account as admins see it (never the password hash)."""
    return {
        "username": row.username,
        "role": row.role,
        "disabled": row.disabled,
        "created_at": aware(row.created_at),
    }


class SessionCache:
    """Tokens verified in the last few seconds: a busy client costs one database read per
    ``ttl``, not one per request. Only successful lookups are kept, so a guessed token
    always reaches the database."""

    def __init__(self, ttl: float = SESSION_CACHE_SECONDS, max_entries: int = SESSION_CACHE_MAX):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[User, datetime, float]] = {}
        # Bumped by every invalidation: a lookup that read the database before it must not
        # put back what the invalidation just removed.
        self.generation = 0

    def get(self, key: str) -> User | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        user, expires_at, fresh_until = entry
        if time.monotonic() >= fresh_until or expires_at <= datetime.now(UTC):
            self._entries.pop(key, None)
            return None
        return user

    def put(self, key: str, user: User, expires_at: datetime, generation: int) -> None:
        if generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare (that many live sessions): start over, stay bounded
        self._entries[key] = (user, expires_at, time.monotonic() + self.ttl)

    def discard(self, key: str) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


class AuthService:
    """Accounts and sessions. Blocking work (argon2, the database) runs in threads."""

    def __init__(self, db: Database, *, session_hours: float, limiter: LoginLimiter) -> None:
        self.db = db
        self.session_lifetime = timedelta(hours=session_hours)
        self.limiter = limiter
        self.hasher = PasswordHasher()
        # Verified against when the username is unknown, so both failures cost the same.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self._verifying = anyio.Semaphore(MAX_PARALLEL_VERIFIES)
        self.session_cache = SessionCache()

    # --- accounts -------------------------------------------------------------------------

    def create_user(self, username: str, role: Role, password: str) -> User:
        """Create an account (blocking)."""
        validate_username(username)
        validate_password(password, username)
        password_hash = self.hasher.hash(password)
        with self.db.write() as conn:
            taken = conn.execute(select(users.c.id).where(users.c.username == username)).first()
            if taken is not None:
                raise Exists(f"user {username!r} already exists")
            user_id = conn.execute(
                insert(users)
                .values(
                    username=username,
                    role=str(role),
                    password_hash=password_hash,
                    disabled=False,
                    created_at=datetime.now(UTC),
                )
                .returning(users.c.id)
            ).scalar_one()
            append(
                conn,
                EventType.USER_CREATED,
                actor=None,
                data={"username": username, "role": str(role)},
            )
        return User(int(user_id), username, role)

    def set_password(self, username: str, password: str) -> None:
        """Replace a password and end the user's sessions (blocking)."""
        validate_password(password, username)
        password_hash = self.hasher.hash(password)
        with self.db.write() as conn:
            row = _find_user(conn, username)
            if row is None:
                raise NotFound(f"no user {username!r}")
            conn.execute(
                update(users).where(users.c.id == row.id).values(password_hash=password_hash)
            )
            conn.execute(delete(sessions).where(sessions.c.user_id == row.id))
            append(conn, EventType.USER_PASSWORD_CHANGED, actor=None, data={"username": username})
        self.session_cache.clear()

    def list_users(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).all()
        return [_account(r) for r in rows]

    def get_user(self, username: str) -> dict[str, Any]:
        with self.db.read() as conn:
            row = _find_user(conn, username)
        if row is None:
            raise NotFound(f"no user {username!r}")
        return _account(row)

    def update_user(
        self,
        admin: User,
        username: str,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """An admin changes an account (blocking). Disabling it or setting its password ends
        every session it has; the vault always keeps at least one active admin."""
        password_hash = None
        if password is not None:
            validate_password(password, username)
            password_hash = self.hasher.hash(password)
        with self.db.write() as conn:
            row = _find_user(conn, username)
            if row is None:
                raise NotFound(f"no user {username!r}")
            changes: dict[str, Any] = {}
            if role is not None and role != row.role:
                changes["role"] = str(role)
            if disabled is not None and disabled != row.disabled:
                changes["disabled"] = disabled
            stays_admin = changes.get("role", row.role) == Role.ADMIN and not changes.get(
                "disabled", row.disabled
            )
            if row.role == Role.ADMIN and not row.disabled and not stays_admin:
                others = conn.execute(
                    select(func.count())
                    .select_from(users)
                    .where(
                        users.c.role == str(Role.ADMIN),
                        users.c.disabled.is_(False),
                        users.c.id != row.id,
                    )
                ).scalar_one()
                if not others:
                    raise LastAdmin(
                        f"{username} is the last active admin: make another user an admin first"
                    )
            values = dict(changes)
            if password_hash is not None:
                values["password_hash"] = password_hash
            if not values:
                return _account(row)
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            if password_hash is not None or changes.get("disabled"):
                conn.execute(delete(sessions).where(sessions.c.user_id == row.id))
            event = {"username": username, **changes}
            if password_hash is not None:
                event["password_reset"] = True
            append(conn, EventType.USER_UPDATED, actor=admin.username, data=event)
            updated = conn.execute(select(users).where(users.c.id == row.id)).one()
        self.session_cache.clear()
        return _account(updated)

    async def change_own_password(
        self, user: User, token: str, current: str, new: str, client: str
    ) -> None:
        """A user replaces their own password; their other sessions end, this one stays."""
        validate_password(new, user.username)
        self.limiter.attempt(user.username, client)
        async with self._verifying:
            verified = await to_thread.run_sync(self._verify, user.username, current)
        if verified is None or verified.id != user.id:
            raise WrongPassword("the current password is not right")
        self.limiter.succeeded(user.username, client)
        await to_thread.run_sync(self._replace_own_password, user, token, new)

    def _replace_own_password(self, user: User, token: str, new: str) -> None:
        password_hash = self.hasher.hash(new)
        with self.db.write() as conn:
            conn.execute(
                update(users).where(users.c.id == user.id).values(password_hash=password_hash)
            )
            conn.execute(
                delete(sessions).where(
                    sessions.c.user_id == user.id, sessions.c.token_hash != token_hash(token)
                )
            )
            append(
                conn,
                EventType.USER_PASSWORD_CHANGED,
                actor=user.username,
                data={"username": user.username},
            )
        self.session_cache.clear()

    def user_count(self) -> int:
        with self.db.read() as conn:
            return len(conn.execute(select(users.c.id)).all())

    # --- sessions -------------------------------------------------------------------------

    async def login(self, username: str, password: str, client: str) -> tuple[User, str]:
        """Check the password and open a session; returns the user and the secret token."""
        try:
            self.limiter.attempt(username, client)
        except RateLimited:
            # Answered after a pause: a guesser looping on one connection then costs one
            # request a second, not hundreds that each take the event loop from others.
            await anyio.sleep(REFUSED_LOGIN_DELAY_S)
            raise
        # argon2 takes ~50 ms and 64 MiB per check: a flood of logins must not take every
        # worker thread (or all the memory) from the rest of the server.
        async with self._verifying:
            user = await to_thread.run_sync(self._verify, username, password)
        if user is None:
            # repr(): a username is typed by anyone; it must not forge a log line.
            log.warning("failed login for %r from %s", username[:64], client)
            raise Unauthorized("wrong username or password")
        self.limiter.succeeded(username, client)
        token = secrets.token_urlsafe(32)
        await to_thread.run_sync(self._open_session, user, token)
        return user, token

    def _verify(self, username: str, password: str) -> User | None:
        row = None
        with self.db.read() as conn:
            row = _find_user(conn, username)
        stored = row.password_hash if row is not None else self._dummy_hash
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row.disabled:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self.db.write() as conn:
                conn.execute(
                    update(users)
                    .where(users.c.id == row.id)
                    .values(password_hash=self.hasher.hash(password))
                )
        return User(row.id, row.username, Role(row.role))

    def _open_session(self, user: User, token: str) -> None:
        now = datetime.now(UTC)
        with self.db.write() as conn:
            # Expired sessions are swept whenever someone logs in.
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(
                insert(sessions).values(
                    token_hash=token_hash(token),
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + self.session_lifetime,
                )
            )
            append(
                conn,
                EventType.USER_LOGGED_IN,
                actor=user.username,
                data={"username": user.username},
            )

    def cached(self, token: str) -> User | None:
        """The user of a token verified in the last few seconds, or None: ask the database."""
        return self.session_cache.get(token_hash(token))

    def authenticate(self, token: str) -> User | None:
        """The user a live, unexpired session token belongs to (blocking)."""
        key = token_hash(token)
        generation = self.session_cache.generation
        query = (
            select(users.c.id, users.c.username, users.c.role, sessions.c.expires_at)
            .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
            .where(sessions.c.token_hash == key, users.c.disabled.is_(False))
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None or aware(row.expires_at) <= datetime.now(UTC):
            return None
        user = User(row.id, row.username, Role(row.role))
        self.session_cache.put(key, user, aware(row.expires_at), generation)
        return user

    def authenticate_many(self, tokens: list[str]) -> set[str]:
        """Which of these tokens are still live sessions of enabled users (blocking)."""
        by_hash = {token_hash(t): t for t in tokens}
        alive: set[str] = set()
        now = datetime.now(UTC)
        hashes = list(by_hash)
        with self.db.read() as conn:
            for start in range(0, len(hashes), 500):
                rows = conn.execute(
                    select(sessions.c.token_hash, sessions.c.expires_at)
                    .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
                    .where(
                        sessions.c.token_hash.in_(hashes[start : start + 500]),
                        users.c.disabled.is_(False),
                    )
                ).all()
                alive.update(by_hash[r.token_hash] for r in rows if aware(r.expires_at) > now)
        return alive

    def logout(self, token: str, user: User) -> None:
        """End one session or token (blocking)."""
        key = token_hash(token)
        with self.db.write() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == key))
            append(
                conn,
                EventType.USER_LOGGED_OUT,
                actor=user.username,
                data={"username": user.username},
            )
        self.session_cache.discard(key)
