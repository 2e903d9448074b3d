"""The event log is enough: any interleaving of file operations by several users (refused
ones included, some sent at once) leaves a file list equal to the log replayed from empty,
and a client that took a snapshot at any point and then applied the frames after it, as
the live protocol sends them (docs/protocol.md), ends with the list the server serves."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from helpers import mcam
from hypothesis import settings, stateful
from hypothesis import strategies as st
from sqlalchemy import select

from camvault.events.frames import FILE_EVENTS as LOGGED_FILE_EVENTS
from camvault.events.frames import frames_for
from camvault.events.log import EventType
from camvault.names import extension_of, name_key
from camvault.services.snapshot import SnapshotCache
from camvault.store.models import events
from fuzz.running import DETERMINISTIC, FUZZ_SCALE, OTHER, USER, RunningApp

USERS = ("admin", USER, OTHER)
# Lock-holder operations mostly come from the holder (else nearly all are refused): this
# stands for whoever holds the file's lock when the step runs.
HOLDER = "the holder"
ADMIN_MOSTLY = ("admin", "admin", USER)
# Two spellings of one name (names are unique ignoring case) and a type per storage kind.
NAMES = ("1234567_A1.mcam", "1234567_a1.MCAM", "7654321.nc", "fixture.vnc")
FILE_EVENTS = {str(t) for t in LOGGED_FILE_EVENTS}

Files = dict[str, dict[str, Any]]


def content(name: str, payload: bytes) -> bytes:
    return mcam(payload) if extension_of(name) == ".mcam" else payload


def flatten(groups: dict[str, list[dict[str, Any]]]) -> Files:
    """A grouped list as {filename: record}, checking each record sits in its own group."""
    files: Files = {}
    for group, records in groups.items():
        for record in records:
            assert record["group"] == group, record
            files[record["filename"]] = record
    return files


def rows_after(app: RunningApp, seq: int) -> list[Any]:
    with app.camvault.db.read() as conn:
        query = select(events).where(events.c.seq > seq).order_by(events.c.seq)
        return list(conn.execute(query).all())


def frames_after(app: RunningApp, seq: int) -> list[dict[str, Any]]:
    """The broadcast frames a replay after ``seq`` sends (the server's own mapping of log
    rows to frames, with the ``prev`` the hub adds)."""
    frames, prev = [], seq
    for row in rows_after(app, seq):
        made = frames_for(row.seq, row.type, row.actor, row.filename, row.data)
        if made.broadcast is not None:
            frames.append({**made.broadcast, "prev": prev})
            prev = made.seq
    return frames


class LogReplay:
    """The file list rebuilt from nothing but the event log, read a little more each time."""

    def __init__(self, app: RunningApp) -> None:
        self.app = app
        self.seq = 0
        self.files: dict[str, dict[str, Any]] = {}  # name key -> record

    def catch_up(self) -> Files:
        for row in rows_after(self.app, self.seq):
            if row.type in FILE_EVENTS:
                record = row.data["file"]
                self.files[name_key(record["filename"])] = record
            elif row.type == EventType.FILE_DELETED:
                del self.files[name_key(row.data["filename"])]
            self.seq = row.seq
        return {record["filename"]: record for record in self.files.values()}


class LiveClient:
    """What the page does with the live stream (web/static/js/live.js): a snapshot, then
    FILE_UPDATED / FILE_REMOVED frames applied by filename, repeats skipped, gaps noticed."""

    def __init__(self, seq: int, groups: dict[str, list[dict[str, Any]]]) -> None:
        self.seq = seq
        self.files = {r["filename"]: r for records in groups.values() for r in records}

    def apply(self, frame: dict[str, Any]) -> None:
        if frame["seq"] <= self.seq:
            return  # a repeat (replay overlap)
        assert frame["prev"] <= self.seq, f"a gap before {frame}: the client would resync"
        payload = frame["payload"]
        if frame["type"] == "FILE_UPDATED":
            self.files[payload["file"]["filename"]] = payload["file"]
        elif frame["type"] == "FILE_REMOVED":
            self.files.pop(payload["filename"], None)
        self.seq = frame["seq"]


class VaultMachine(stateful.RuleBasedStateMachine):
    """Random operations through the in-process API; the log must explain every state."""

    def __init__(self, app: RunningApp, replay: LogReplay) -> None:
        super().__init__()
        self.app = app
        self.replay = replay
        # (seq, groups) of GET /api/files after each step: snapshots a client may hold.
        self.snapshots: list[tuple[int, dict[str, list[dict[str, Any]]]]] = []

    def who(self, user: str, path: str) -> str:
        if user == HOLDER:
            parts = path.split("/")  # /api/files/{name}/...; an upload has no name yet
            record = self.replay.files.get(name_key(parts[3])) if len(parts) > 3 else None
            return str(record["lock"]["user"]) if record and record["lock"] else USER
        return user

    def call(self, user: str, method: str, path: str, allowed: set[int], **kw: Any) -> None:
        user = self.who(user, path)
        response = self.app.client.request(method, path, headers=self.app.headers(user), **kw)
        assert response.status_code in allowed, (user, method, path, response.text)

    @stateful.rule(
        burst=st.lists(
            st.tuples(
                st.sampled_from(("upload", "checkout", "checkin", "cancel", "delete")),
                st.sampled_from((*USERS, HOLDER)),
                st.sampled_from(NAMES),
            ),
            min_size=2,
            max_size=4,
        )
    )
    def at_once(self, burst: list[tuple[str, str, str]]) -> None:
        """Several users' requests in flight together on the server's loop, as in a shop."""
        sends: list[tuple[str, str, set[int], dict[str, Any]]] = []
        for i, (kind, user, name) in enumerate(burst):
            files = {"file": (name, content(name, bytes([i + 1])), "application/octet-stream")}
            if kind == "upload":
                sends.append((user, "POST /api/files", {201, 409}, {"files": files}))
            elif kind == "checkin":
                data = {"message": f"at once {i}"}
                route = f"POST /api/files/{name}/checkin"
                sends.append((user, route, {200, 404, 409}, {"files": files, "data": data}))
            elif kind == "delete":
                sends.append((user, f"DELETE /api/files/{name}", {204, 403, 404, 409}, {}))
            else:
                action = "checkout" if kind == "checkout" else "cancel-checkout"
                sends.append((user, f"POST /api/files/{name}/{action}", {200, 404, 409}, {}))
        # Tokens first: a re-login goes through the portal, which cannot be re-entered.
        headers = [self.app.headers(self.who(user, route.split()[1])) for user, route, *_ in sends]
        client = self.app.client.client

        async def together() -> list[Any]:
            return await asyncio.gather(
                *(
                    client.request(*route.split(), headers=h, **kw)
                    for (_user, route, _allowed, kw), h in zip(sends, headers, strict=True)
                )
            )

        for (user, route, allowed, _kw), response in zip(
            sends, self.app.client.portal.call(together), strict=True
        ):
            assert response.status_code in allowed, (user, route, response.text)

    @stateful.rule(
        user=st.sampled_from(USERS),
        name=st.sampled_from(NAMES),
        payload=st.binary(max_size=8),
    )
    def upload(self, user: str, name: str, payload: bytes) -> None:
        files = {"file": (name, content(name, payload), "application/octet-stream")}
        # 400: an empty file; 409: the name (in any letter case) is taken.
        self.call(user, "POST", "/api/files", {201, 400, 409}, files=files)

    @stateful.rule(user=st.sampled_from(USERS), name=st.sampled_from(NAMES))
    def checkout(self, user: str, name: str) -> None:
        self.call(user, "POST", f"/api/files/{name}/checkout", {200, 404, 409})

    @stateful.rule(
        user=st.sampled_from((*USERS, HOLDER, HOLDER)),
        name=st.sampled_from(NAMES),
        payload=st.binary(min_size=1, max_size=8),
        keep=st.booleans(),
    )
    def checkin(self, user: str, name: str, payload: bytes, keep: bool) -> None:
        files = {"file": (name, content(name, payload), "application/octet-stream")}
        data = {"message": "changed", "keep_locked": str(keep).lower()}
        self.call(
            user, "POST", f"/api/files/{name}/checkin", {200, 404, 409}, files=files, data=data
        )

    @stateful.rule(user=st.sampled_from((*USERS, HOLDER, HOLDER)), name=st.sampled_from(NAMES))
    def cancel(self, user: str, name: str) -> None:
        self.call(user, "POST", f"/api/files/{name}/cancel-checkout", {200, 404, 409})

    @stateful.rule(
        user=st.sampled_from((*USERS, HOLDER, HOLDER)),
        name=st.sampled_from(NAMES),
        version=st.integers(1, 3),
    )
    def revert(self, user: str, name: str, version: int) -> None:
        body = {"version": version, "message": ""}
        self.call(user, "POST", f"/api/files/{name}/revert", {200, 404, 409}, json=body)

    @stateful.rule(user=st.sampled_from(ADMIN_MOSTLY), name=st.sampled_from(NAMES))
    def break_lock(self, user: str, name: str) -> None:
        # 403: only an admin; 404: no such file, or nobody holds it.
        body = {"reason": "needed on machine 4"}
        self.call(user, "POST", f"/api/files/{name}/break-lock", {200, 403, 404}, json=body)

    @stateful.rule(user=st.sampled_from(USERS), name=st.sampled_from(NAMES))
    def delete(self, user: str, name: str) -> None:
        self.call(user, "DELETE", f"/api/files/{name}", {204, 403, 404, 409})

    @stateful.invariant()
    def the_log_replayed_from_empty_is_the_state(self) -> None:
        served = self.app.client.get("/api/files", headers=self.app.headers("admin"))
        assert served.status_code == 200
        body = served.json()
        self.snapshots.append((body["seq"], body["groups"]))
        # The tables, read fresh (not the server's cache, which is itself kept from the log).
        _seq, fresh = SnapshotCache(self.app.camvault.db).get()
        assert orjson.loads(fresh) == body
        assert self.replay.catch_up() == flatten(body["groups"])

    def teardown(self) -> None:
        if not self.snapshots:
            return
        final_seq, final = self.snapshots[-1]
        frames = frames_after(self.app, self.snapshots[0][0])
        for seq, groups in self.snapshots:
            client = LiveClient(seq, groups)
            for frame in frames:
                client.apply(frame)
            assert client.files == flatten(final), f"from the snapshot at seq {seq}"


def test_the_event_log_explains_every_state(module_app: RunningApp) -> None:
    replay = LogReplay(module_app)

    class OnThisApp(VaultMachine):
        def __init__(self) -> None:
            super().__init__(module_app, replay)

    stateful.run_state_machine_as_test(
        OnThisApp,
        settings=settings(DETERMINISTIC, max_examples=20 * FUZZ_SCALE, stateful_step_count=12),
    )
