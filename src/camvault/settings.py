"""The one typed settings object.

Precedence: CLI flag > environment (``CAMVAULT_*``) > config file (TOML, ``CAMVAULT_CONFIG``)
> default. Secrets are ``SecretStr`` so they never show in a repr or a log line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from camvault.names import DEFAULT_EXTENSIONS, DEFAULT_LFS_EXTENSIONS, normalize_extension

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Everything a camvault process needs to know, from flags, environment or file."""

    model_config = SettingsConfigDict(env_prefix="CAMVAULT_", extra="ignore", frozen=True)

    data: Path = Field(
        default=Path("camvault-data"),
        description="Data directory: camvault.db (SQLite), vault.git, tmp/.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostgreSQL database; default is SQLite in the data dir.",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port; 0 picks a free one.")
    tls_cert: Path | None = Field(default=None, description="TLS certificate (PEM).")
    tls_key: Path | None = Field(default=None, description="TLS private key (PEM).")
    admin_password: SecretStr | None = Field(
        default=None, description="Password of the first admin account, created on first start."
    )
    max_upload_bytes: int = Field(
        default=2048 * MIB, gt=0, description="Largest accepted upload, in bytes."
    )
    allowed_extensions: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_EXTENSIONS, description="File extensions the vault accepts."
    )
    lfs_extensions: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_LFS_EXTENSIONS,
        description="Extensions stored as Git LFS objects; others stay plain git blobs.",
    )
    name_pattern: str | None = Field(
        default=None, description="Optional shop regex every file name must match."
    )
    stale_lock_hours: float = Field(
        default=24.0, gt=0, description="A checkout older than this is shown as stale."
    )
    session_hours: float = Field(default=12.0, gt=0, description="Session and token lifetime.")
    login_max_failures: int = Field(
        default=5, gt=0, description="Failed logins per user and client before 429."
    )
    login_window_seconds: float = Field(
        default=300.0, gt=0, description="How long failed logins count and the 429 lasts."
    )
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Extra origins trusted for cookie requests and WebSockets."
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Reverse proxies whose X-Forwarded-For/-Proto are believed (IP addresses).",
    )
    secure_cookies: bool | None = Field(
        default=None, description="Force the Secure cookie flag; default: on when TLS is on."
    )
    ws_queue_size: int = Field(
        default=1024, gt=0, description="Frames queued per WebSocket before a slow client is cut."
    )
    replay_window: int = Field(
        default=10_000,
        ge=0,
        description="Events a reconnecting client may replay; older -> snapshot.",
    )
    ws_poll_interval: float = Field(
        default=1.0,
        gt=0,
        description="How often the hub checks the log for other processes' events.",
    )
    ws_ping_interval: float = Field(
        default=20.0, gt=0, description="Seconds between WebSocket pings that detect dead peers."
    )
    ws_max_message: int = Field(
        default=64 * 1024, gt=0, description="Largest client frame; bigger ones close with 1009."
    )
    ws_max_per_user: int = Field(
        default=100,
        gt=0,
        description="Open WebSockets one user may hold on one instance; more close with 4429.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection has to send a request's headers; slower ones are "
        "closed (slowloris).",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="A request body must bring body_min_rate bytes/s within every window of "
        "this many seconds of waiting, else it is answered 408 and discarded.",
    )
    body_min_rate: int = Field(
        default=1024,
        ge=0,
        description="Slowest accepted request body, in bytes per second (0: only idle counts).",
    )
    ws_revalidate_seconds: float = Field(
        default=30.0, gt=0, description="How often open WebSockets' sessions are re-checked."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve /metrics without a session on this port (for Prometheus).",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address of the metrics port (keep it private)."
    )
    sqlite_synchronous: str = Field(
        default="FULL", description="SQLite synchronous pragma (FULL survives power loss)."
    )
    sqlite_busy_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a SQLite write waits for another process's write lock before "
        "the request is answered 503 (unavailable).",
    )
    mirror_key_file: Path | None = Field(
        default=None,
        description="File (outside the data dir) holding the secret that encrypts the "
        "mirror token at rest; at least 32 characters.",
    )
    mirror_key: SecretStr | None = Field(
        default=None,
        description="The secret that encrypts the mirror token, given directly (environment).",
    )
    mirror_token: SecretStr | None = Field(
        default=None,
        description="Access token of the mirror remote from the environment; used when the "
        "mirror has no stored token.",
    )
    mirror_retry_seconds: float = Field(
        default=5.0, gt=0, description="First retry delay after a failed mirror push."
    )
    mirror_retry_max_seconds: float = Field(
        default=900.0, gt=0, description="Longest delay between mirror push retries."
    )
    mirror_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="Longest a single git command of a mirror push may run."
    )
    mirror_batch_seconds: float = Field(
        default=1.0,
        ge=0,
        description="After a commit, wait this long so a burst of commits goes in one push.",
    )
    mirror_poll_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the mirror checks for commits made by other processes.",
    )

    @field_validator("allowed_extensions", "lfs_extensions", mode="before")
    @classmethod
    def _split_extensions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(",", " ").split() if part]
        if isinstance(value, list | tuple):
            return tuple(normalize_extension(ext) for ext in value)
        return value

    @field_validator("allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.rstrip("/") for part in value.replace(",", " ").split() if part)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CAMVAULT_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def cookie_secure(self) -> bool:
        return self.tls if self.secure_cookies is None else self.secure_cookies

    @property
    def db_path(self) -> Path:
        return self.data / "camvault.db"

    @property
    def repo_path(self) -> Path:
        return self.data / "vault.git"

    @property
    def tmp_path(self) -> Path:
        return self.data / "tmp"

    def sqlalchemy_url(self) -> str:
        """The database URL: PostgreSQL when configured, else the SQLite file in the data dir."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.db_path.resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url().startswith("postgresql")
