"""The fault tests start real servers with the end-to-end tests' launcher."""

from __future__ import annotations

from e2e.conftest import launch, server_database_url

__all__ = ["launch", "server_database_url"]
