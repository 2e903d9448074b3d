"""The database schema (SQLAlchemy Core tables); Alembic migrations create it.

The database holds the live state: users, sessions, locks, the file index, versions, shop
settings and the event log. The file index and versions can be rebuilt from git.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer primary keys: BigInteger on PostgreSQL, INTEGER (rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # sha256 of the secret token: a stolen database does not yield usable sessions.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

files = Table(
    "files",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("filename", String(255), nullable=False),
    # casefolded name: uniqueness is case-insensitive, as on the shop's Windows machines
    Column("name_key", String(255), nullable=False, unique=True),
    Column("group_name", String(64), nullable=False),
    Column("subgroup", String(64), nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("version", Integer, nullable=False),
    Column("revision", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("modified_at", DateTime(timezone=True), nullable=False),
    Column("modified_by", String(64), nullable=False),
    # a deleted file leaves the list; its versions and git history stay
    Column("deleted", Boolean, nullable=False, default=False),
    # For a .link entry: the filename of the master it points to (else null).
    Column("link_target", String(255), nullable=True, index=True),
)

versions = Table(
    "versions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("file_id", BigId, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("revision", String(32), nullable=False),
    Column("action", String(16), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("author", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("commit", String(64), nullable=False, unique=True),
    UniqueConstraint("file_id", "version", name="uq_versions_file_version"),
)

# One row per held lock; the primary key on file_id is what makes a lock exclusive.
locks = Table(
    "locks",
    metadata,
    Column("file_id", BigId, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("message", Text, nullable=False, default=""),
)

# The transactional outbox: one row per state change, written in the change's transaction.
events = Table(
    "events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=True),
    Column("type", String(48), nullable=False),
    Column("filename", String(255), nullable=True),
    Column("version", Integer, nullable=True),
    Column("data", JSON, nullable=False),
    Index("ix_events_filename", "filename"),
    Index("ix_events_type", "type"),
    # SQLite AUTOINCREMENT: a seq is never reused, even after the newest row is deleted
    sqlite_autoincrement=True,
)

shop_settings = Table(
    "shop_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
)

# The git mirror: at most one row (id 1). Its push state lives here, not in a process, so
# every instance on the database reports the same status and any of them can push.
mirror = Table(
    "mirror",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("url", Text, nullable=False),
    Column("username", String(255), nullable=False),
    # AES-GCM ciphertext of the token (mirror/crypto.py) and the id of the key that made it
    Column("token_ciphertext", Text, nullable=True),
    Column("key_id", String(32), nullable=True),
    # bumped on every configuration, so a push for an old configuration records nothing
    Column("generation", Integer, nullable=False),
    Column("configured_at", DateTime(timezone=True), nullable=False),
    Column("configured_by", String(64), nullable=False),
    Column("push_requested", Boolean, nullable=False, default=False),
    Column("last_pushed", String(64), nullable=True),
    Column("last_pushed_at", DateTime(timezone=True), nullable=True),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("error_kind", String(32), nullable=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("next_retry_at", DateTime(timezone=True), nullable=True),
)
