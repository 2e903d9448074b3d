"""A minimal WebDriver BiDi client for Firefox, which speaks BiDi natively (no geckodriver).

Enough to drive the page in a second engine: navigate, evaluate scripts, take screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import websockets

from e2e.server import free_port


class Firefox:
    """One headless Firefox and one browsing context, driven over WebDriver BiDi."""

    def __init__(self, socket: Any, context: str) -> None:
        self.socket = socket
        self.context = context
        self._next = 0

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 30))
            if message.get("id") == ident:
                if message.get("type") == "error":
                    raise AssertionError(f"{method} failed: {message}")
                result: dict[str, Any] = message["result"]
                return result

    async def goto(self, url: str) -> None:
        await self.call(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    async def js(self, expression: str) -> Any:
        """Evaluate in the page (promises awaited) and return the value as JSON data."""
        result = await self.call(
            "script.evaluate",
            {
                "expression": f"(async () => JSON.stringify(await ({expression})))()",
                "target": {"context": self.context},
                "awaitPromise": True,
            },
        )
        if result.get("type") == "exception":
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        value = result["result"].get("value")
        return None if value is None else json.loads(value)

    async def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"not true within {timeout} s: {expression}")

    async def screenshot(self, path: Path) -> None:
        result = await self.call("browsingContext.captureScreenshot", {"context": self.context})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))


def firefox_binary() -> str:
    for name in ("firefox-esr", "firefox"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("Firefox is not installed (scripts/test-deps installs firefox-esr)")


@contextlib.asynccontextmanager
async def firefox(profile: Path, log: Path) -> AsyncIterator[Firefox]:
    """Start headless Firefox with BiDi on a free port; always stop it."""
    port = free_port()
    profile.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [firefox_binary(), "--headless", "--no-remote", "--profile", str(profile),
             "--remote-debugging-port", str(port), "about:blank"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        socket = None
        deadline = time.monotonic() + 30
        while socket is None:
            try:
                socket = await websockets.connect(f"ws://127.0.0.1:{port}/session", max_size=None)
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"Firefox did not start:\n{log.read_text()}") from None
                await asyncio.sleep(0.2)
        async with socket:
            browser = Firefox(socket, "")
            await browser.call("session.new", {"capabilities": {}})
            tree = await browser.call("browsingContext.getTree", {})
            browser.context = tree["contexts"][0]["context"]
            yield browser
            with contextlib.suppress(AssertionError, websockets.ConnectionClosed, TimeoutError):
                await browser.call("session.end", {})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
