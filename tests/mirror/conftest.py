"""Fixtures for the mirror tests: a vault with a token key and fast retries, remotes."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from helpers import PASSWORD

from camvault.settings import Settings


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A token key outside the data dir, as the README tells an admin to make one."""
    path = tmp_path / "secrets" / "mirror.key"
    path.parent.mkdir()
    path.write_text(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, key_file: Path) -> Settings:
    return Settings(
        data=tmp_path / "data",
        database_url=database_url,
        admin_password=PASSWORD,
        mirror_key_file=key_file,
        mirror_retry_seconds=0.1,
        mirror_retry_max_seconds=0.4,
        mirror_poll_seconds=0.3,
        mirror_batch_seconds=0.05,
        mirror_timeout_seconds=60,
    )
