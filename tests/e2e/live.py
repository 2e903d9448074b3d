"""A test WebSocket client for /ws: collects frames, validates each against the documented
protocol, and can keep a file list the way the browser does (snapshot + deltas + resume)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from protocol_schema import validate_frame
from websockets.asyncio.client import ClientConnection


def ws_url(base_url: str, after: int | None = None, epoch: str | None = None) -> str:
    url = base_url.replace("http://", "ws://") + "/ws"
    query = [f"after={after}"] if after is not None else []
    if epoch is not None:
        query.append(f"epoch={epoch}")
    return url + ("?" + "&".join(query) if query else "")


@dataclass
class LiveClient:
    """One connection; ``frames`` fills in the background."""

    base_url: str
    token: str
    after: int | None = None
    epoch: str | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    close_code: int | None = None
    socket: ClientConnection | None = None
    _task: asyncio.Task[None] | None = None

    async def connect(self, **headers: str) -> LiveClient:
        self.socket = await websockets.connect(
            ws_url(self.base_url, self.after, self.epoch),
            additional_headers={"Authorization": f"Bearer {self.token}", **headers},
            max_size=None,
        )
        self._task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        assert self.socket is not None
        try:
            async for raw in self.socket:
                frame = json.loads(raw)
                validate_frame(frame)
                self.frames.append(frame)
                self.received_at.append(time.monotonic())
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.socket.close_code

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first frame (old or new) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames:
                if predicate(frame):
                    return frame
            await asyncio.sleep(0.01)
        raise AssertionError(f"no matching frame within {timeout} s; got {self.types()}")

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.close_code

    async def send(self, data: str | bytes) -> None:
        assert self.socket is not None
        await self.socket.send(data)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def types(self) -> list[str]:
        return [f["type"] for f in self.frames]

    def logged(self) -> list[dict[str, Any]]:
        """The broadcast (log-backed) frames, in arrival order."""
        return [f for f in self.frames if "prev" in f or f["type"] == "FILE_LIST_UPDATED"]

    def last_seq(self) -> int:
        return int(self.logged()[-1]["seq"])


@dataclass
class Mirror:
    """What a browser tab holds: the list built from snapshot + deltas, resumed by seq."""

    base_url: str
    token: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int | None = None
    epoch: str | None = None
    reconnects: int = 0
    snapshots: int = 0

    def apply(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "FILE_LIST_UPDATED":
            self.files = {f["filename"]: f for group in frame["payload"].values() for f in group}
            self.seq, self.epoch = frame["seq"], frame["epoch"]
            self.snapshots += 1
            return
        if "prev" not in frame:
            return
        assert self.seq is not None
        if frame["seq"] <= self.seq:
            return
        assert frame["prev"] <= self.seq, f"gap: prev {frame['prev']} > seen {self.seq}"
        if kind == "FILE_UPDATED":
            self.files[frame["payload"]["file"]["filename"]] = frame["payload"]["file"]
        elif kind == "FILE_REMOVED":
            self.files.pop(frame["payload"]["filename"], None)
        self.seq = frame["seq"]

    async def run(self) -> None:
        """Stay connected, reconnecting with a short backoff, until cancelled."""
        while True:
            try:
                async with websockets.connect(
                    ws_url(self.base_url, self.seq, self.epoch),
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    max_size=None,
                ) as socket:
                    async for raw in socket:
                        frame = json.loads(raw)
                        validate_frame(frame)
                        self.apply(frame)
            except (OSError, websockets.ConnectionClosed, websockets.InvalidStatus):
                pass
            self.reconnects += 1
            await asyncio.sleep(0.1)
