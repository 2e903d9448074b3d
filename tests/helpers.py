"""Helpers the tests share: acting as users, uploading, checking in."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from camvault.core import Camvault
from camvault.services.auth import Role
from camvault.store.db import null_pool_engine

HDF5 = b"\x89HDF\r\n\x1a\n"
PASSWORD = "correct-horse-battery"


def mcam(payload: bytes = b"") -> bytes:
    """Bytes that pass the .mcam content check (HDF5 signature first)."""
    return HDF5 + payload


@dataclass
class Vault:
    """A running app, its Camvault, and helpers to act as different users."""

    app: Any
    camvault: Camvault
    base_url: str = "http://testserver"

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url=self.base_url,
            headers=headers,
            **kwargs,
        )

    async def login(self, username: str, password: str = PASSWORD) -> httpx.AsyncClient:
        async with self.client() as anon:
            response = await anon.post(
                "/api/auth/login", json={"username": username, "password": password}
            )
        assert response.status_code == 200, response.text
        return self.client(response.json()["token"])

    async def add_user(self, username: str, role: Role = Role.USER) -> httpx.AsyncClient:
        from anyio import to_thread

        await to_thread.run_sync(self.camvault.auth.create_user, username, role, PASSWORD)
        return await self.login(username)


def token_of(client: httpx.AsyncClient) -> str:
    """The bearer token a client from ``Vault.login`` sends."""
    return client.headers["authorization"].removeprefix("Bearer ")


async def upload(
    client: httpx.AsyncClient,
    name: str,
    content: bytes,
    *,
    description: str = "",
    message: str = "",
) -> httpx.Response:
    return await client.post(
        "/api/files",
        files={"file": (name, content, "application/octet-stream")},
        data={"description": description, "message": message},
    )


async def checkin(
    client: httpx.AsyncClient,
    name: str,
    content: bytes,
    message: str = "changed",
    **fields: str,
) -> httpx.Response:
    return await client.post(
        f"/api/files/{name}/checkin",
        files={"file": (name, content, "application/octet-stream")},
        data={"message": message, **fields},
    )


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create a new, empty database on the PostgreSQL server of ``server_url``; yield its URL
    and drop it afterwards."""
    name = f"camvault_t_{os.getpid()}_{secrets.token_hex(4)}"
    admin = null_pool_engine(
        make_url(server_url).set(drivername="postgresql+psycopg").render_as_string(False)
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
