"""A running app for the fuzz suites: seeded with files and accounts, driven synchronously.

Hypothesis and schemathesis call test functions synchronously, so the app runs on an
event loop in a portal thread (its lifespan and every request on that one loop) and the
tests talk to it through a blocking facade over the usual in-process httpx client.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from helpers import PASSWORD, mcam
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Table, select

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.services.auth import Role, User
from camvault.settings import Settings
from camvault.store import models

# Everything a request can change, as rows. A refused request must leave all of it as it was.
STATE_TABLES: tuple[Table, ...] = (
    models.users,
    models.sessions,
    models.files,
    models.versions,
    models.locks,
    models.events,
    models.shop_settings,
    models.mirror,
)

# CAMVAULT_FUZZ_SCALE=N multiplies the generated examples, for a deeper run by hand
# (e.g. 20: about 20,000 API requests per database); CI runs the suite at 1.
FUZZ_SCALE = max(1, int(os.environ.get("CAMVAULT_FUZZ_SCALE") or "1"))

# CI needs the same examples on every run (derandomize), and nothing written to the repo
# (no example database). Deadlines are off: the machine is shared and timings are noisy.
DETERMINISTIC = hypothesis_settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

USER = "ann"
OTHER = "ben"
ACCOUNTS = {"admin": Role.ADMIN, USER: Role.USER, OTHER: Role.USER}


@dataclass(frozen=True)
class SeedFile:
    name: str
    owner: str
    content: bytes
    # Who holds its lock after seeding (None: free).
    holder: str | None = None


# Files in every state a path parameter can meet: free, locked by the fuzzed user, locked
# by someone else, with several versions, a link and its master.
SEED_FILES = (
    SeedFile("1234567_A1.mcam", "admin", mcam(b"one")),
    SeedFile("1234567_A2.mcam", USER, mcam(b"two"), holder=USER),
    SeedFile("7654321.nc", USER, b"G0 X0 Y0\n"),
    SeedFile("fixture.vnc", OTHER, b"vnc", holder=OTHER),
)
LINK = SeedFile("1234567_OP20.link", USER, b"7654321.nc\n")
SEEDED = tuple(f.name for f in (*SEED_FILES, LINK))


class BlockingClient:
    """``httpx.AsyncClient`` calls run on the app's loop, from synchronous test code."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        # App errors must come back as the 500 answers a real client would get.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@dataclass
class RunningApp:
    """The app behind a blocking client, its Camvault, and a live bearer token per account."""

    client: BlockingClient
    camvault: Camvault
    tokens: dict[str, str] = field(default_factory=dict)
    shop: dict[str, Any] = field(default_factory=dict)
    # Whether a request may have changed state since the last restore(): only then are
    # the seed and the tokens checked again (most fuzzed requests are refused anyway).
    changed: bool = True

    def login(self, username: str) -> str:
        response = self.client.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        self.tokens[username] = token
        return token

    def token(self, username: str) -> str:
        """A live token for ``username``, logging in again if the old one died (a fuzzed
        logout, a disabled account, a reset password, a role the fuzzer changed)."""
        current = self.tokens.get(username)
        if current is not None and not self.changed:
            return current
        if current is not None:
            user = self.camvault.auth.authenticate(current)
            if user is not None and user.role is ACCOUNTS[username]:
                return current
        self._restore_account(username)
        return self.login(username)

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def _restore_account(self, username: str) -> None:
        # Through the service layer, as a maintenance admin the fuzzer cannot lock out.
        keeper = User(id=0, username="fuzz-keeper", role=Role.ADMIN)
        auth = self.camvault.auth
        auth.update_user(keeper, username, role=ACCOUNTS[username], disabled=False)
        auth.update_user(keeper, username, password=PASSWORD)

    def files(self) -> dict[str, dict[str, Any]]:
        """The current list, by filename."""
        response = self.client.get("/api/files", headers=self.headers("admin"))
        assert response.status_code == 200, response.text
        groups = response.json()["groups"]
        return {r["filename"]: r for records in groups.values() for r in records}

    def state(self) -> dict[str, Any]:
        """What the vault holds: every table a request can change, `main` and the temp
        files. Read while no request is in flight. Not the content store: an object staged
        before the write transaction refused the change is harmless by design (it is
        named by its sha256 and nothing refers to it)."""
        with self.camvault.db.read() as conn:
            state: dict[str, Any] = {
                table.name: sorted(map(tuple, conn.execute(select(table))), key=repr)
                for table in STATE_TABLES
            }
        tmp = self.camvault.settings.tmp_path
        state["main"] = self.camvault.vault.repo.head
        state["temp files"] = sorted(
            str(path.relative_to(tmp))
            for path in tmp.rglob("*")
            if path.is_file() and path.name != ".lock"
        )
        return state

    def upload(self, username: str, name: str, content: bytes) -> httpx.Response:
        files = {"file": (name, content, "application/octet-stream")}
        return self.client.post("/api/files", files=files, headers=self.headers(username))

    def restore(self) -> None:
        """Undo what earlier fuzzed requests did to the seed: shop settings changed, a mirror
        set, seeded files deleted, seeded locks released, accounts changed. Each case then
        meets the seeded states."""
        if not self.changed:
            return
        if self.camvault.shop.current.model_dump(mode="json") != self.shop:
            self.camvault.shop.update("fuzz-keeper", self.shop)
        mirror = self.client.portal.call(self.camvault.mirror.status)
        if mirror["configured"]:  # an admin case set one: stop pushing to a made-up remote
            self.client.portal.call(self.camvault.mirror.remove, "fuzz-keeper")
        live = self.files()
        for seeded in SEED_FILES:
            if seeded.name not in live:
                response = self.upload(seeded.owner, seeded.name, seeded.content)
                assert response.status_code == 201, response.text
            lock = live[seeded.name]["lock"] if seeded.name in live else None
            if seeded.holder is not None and lock is None:
                response = self.client.post(
                    f"/api/files/{seeded.name}/checkout", headers=self.headers(seeded.holder)
                )
                assert response.status_code == 200, response.text
        if LINK.name not in live:
            target = LINK.content.decode().strip()
            response = self.client.post(
                "/api/links", json={"name": LINK.name, "target": target}, headers=self.headers(USER)
            )
            assert response.status_code == 201, response.text
        for username in list(self.tokens):
            self.token(username)
        self.changed = False


def seed(app: RunningApp) -> None:
    """The seed files, plus history: a second version to revert to and a deleted file."""
    app.shop = app.camvault.shop.current.model_dump(mode="json")
    app.restore()
    admin, ann = app.headers("admin"), app.headers(USER)
    assert app.upload("admin", "gone.nc", b"G1\n").status_code == 201
    assert app.client.delete("/api/files/gone.nc", headers=admin).status_code == 204
    checkout = app.client.post("/api/files/7654321.nc/checkout", headers=ann)
    assert checkout.status_code == 200, checkout.text
    checkin = app.client.post(
        "/api/files/7654321.nc/checkin",
        files={"file": ("7654321.nc", b"G0 X1\n", "application/octet-stream")},
        data={"message": "second"},
        headers=ann,
    )
    assert checkin.status_code == 200, checkin.text


@contextmanager
def running(settings: Settings) -> Iterator[RunningApp]:
    """A fresh, seeded vault on ``settings`` (SQLite, or PostgreSQL) behind a blocking client."""
    # Fuzzed logins and password changes fail by the hundred; the limiter must not lock
    # the test's own re-logins out (the limiter has its own tests in tests/api).
    settings = settings.model_copy(update={"login_max_failures": 1_000_000})
    camvault = Camvault(settings)
    app = create_app(settings, camvault)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        camvault.bootstrap_admin()
        for username, role in ACCOUNTS.items():
            if username != "admin":
                camvault.auth.create_user(username, role, PASSWORD)
        yield RunningApp(BlockingClient(portal, app), camvault)
