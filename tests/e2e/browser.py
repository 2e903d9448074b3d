"""Browser fixtures and helpers for the end-to-end UI tests (Playwright's sync API).

One headless Chromium (the system's ``/usr/bin/chromium``) per test module; every test gets
fresh browser contexts (separate cookies and localStorage: one per user), which are closed
when it ends. Uncaught page errors fail the test; console messages are written next to the
server logs. ``screenshots`` saves PNGs under the test's tmp dir and mirrors them to
``test-output/screenshots/<test-name>/`` at the repository root (gitignored).

The browser is module-scoped, not session-scoped, on purpose: while the sync API is alive
it marks its own asyncio loop as the thread's running loop, which would break the anyio
tests of the modules that run after this one.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    expect,
    sync_playwright,
)

from e2e.server import Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_MIRROR = REPO_ROOT / "test-output" / "screenshots"
# Every wait in a test is bounded by this unless it says otherwise.
DEFAULT_TIMEOUT_MS = 15_000
VIEWPORT = {"width": 1280, "height": 800}
HDF5 = b"\x89HDF\r\n\x1a\n"


# --- the browser and its contexts ----------------------------------------------------------


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    """One headless Chromium for the module's tests."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Pages:
    """Opens pages, each in a context of its own, and records what they report."""

    def __init__(self, browser: Browser, log_path: Path) -> None:
        self.browser = browser
        self.log_path = log_path
        self.contexts: list[BrowserContext] = []
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []

    def new(self, label: str, **options: Any) -> Page:
        """A page in a fresh context (no cookies, empty localStorage)."""
        settings: dict[str, Any] = {
            "viewport": VIEWPORT,
            "accept_downloads": True,
            "color_scheme": "light",
            "reduced_motion": "reduce",
        }
        settings.update(options)
        context = self.browser.new_context(**settings)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: self._console(label, message))
        page.on("pageerror", lambda error: self._page_error(label, error))
        # Intercept file choosers from the start: the interception is switched on
        # asynchronously, so one first requested inside expect_file_chooser() can lose the
        # race to the key press, and a native picker (which never closes headless) opens.
        page.on("filechooser", lambda _chooser: None)
        return page

    def _log(self, line: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def _console(self, label: str, message: ConsoleMessage) -> None:
        line = f"[{label}] console.{message.type}: {message.text}"
        self._log(line)
        if message.type == "error":
            self.console_errors.append(line)

    def _page_error(self, label: str, error: Error) -> None:
        line = f"[{label}] uncaught: {error.name}: {error.message}\n{error.stack or ''}"
        self._log(line)
        self.page_errors.append(line)

    def close(self) -> None:
        for context in self.contexts:
            try:
                context.close()
            except Error:
                pass  # already gone with the browser


@pytest.fixture(name="pages")
def pages_fixture(browser: Browser, tmp_path: Path) -> Iterator[Pages]:
    """``pages.new(label)``: a page in its own context; no page may throw uncaught."""
    opened = Pages(browser, tmp_path / "logs" / "browser-console.log")
    try:
        yield opened
    finally:
        opened.close()
    assert not opened.page_errors, "uncaught errors in the page:\n" + "\n".join(opened.page_errors)


# --- screenshots ---------------------------------------------------------------------------


class Screenshots:
    """Numbered PNGs in ``folder``, each also copied to ``mirror``."""

    def __init__(self, folder: Path, mirror: Path) -> None:
        self.folder = folder
        self.mirror = mirror
        self.taken: list[Path] = []

    def take(self, page: Page, label: str, *, full_page: bool = False) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mirror.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")
        path = self.folder / f"{len(self.taken) + 1:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        shutil.copy2(path, self.mirror / path.name)
        self.taken.append(path)
        return path


@pytest.fixture(name="screenshots")
def screenshots_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Screenshots:
    """``screenshots.take(page, "label")`` under tmp_path/screenshots and test-output/."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    mirror = SCREENSHOT_MIRROR / name
    shutil.rmtree(mirror, ignore_errors=True)  # only this test's shots from an earlier run
    return Screenshots(tmp_path / "screenshots", mirror)


# --- accounts and API setup ----------------------------------------------------------------


def add_user(server: Server, name: str, password: str, role: str = "user") -> None:
    """``camvault user add`` as an operator runs it."""
    done = server.cli("user", "add", name, "--role", role, "--password-stdin",
                      stdin=password + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr


def api_files(server: Server, token: str) -> dict[str, dict[str, Any]]:
    """GET /api/files as {filename: record}."""
    with server.client(token) as api:
        response = api.get("/api/files")
    assert response.status_code == 200, response.text
    return {r["filename"]: r for records in response.json()["groups"].values() for r in records}


def api_post(server: Server, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    with server.client(token) as api:
        return api.post(path, json=body)


# --- the page ------------------------------------------------------------------------------


def login(page: Page, server: Server, username: str, password: str) -> None:
    """Sign in through the form and wait for the live list (the first snapshot)."""
    page.goto(server.base_url)
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("button[type=submit]").click()
    wait_live(page)


def wait_live(page: Page, timeout: float = DEFAULT_TIMEOUT_MS) -> None:
    """#connection says Live and the store holds a snapshot."""
    expect(page.locator("#connection")).to_have_class(re.compile(r"\blive\b"), timeout=timeout)
    page.wait_for_function("() => window.camvault.store.getState().seq !== null", timeout=timeout)


def state(page: Page, expression: str) -> Any:
    """Evaluate ``expression`` with ``s`` bound to the store's state."""
    return page.evaluate(
        f"() => {{ const s = window.camvault.store.getState(); return {expression}; }}"
    )


def store_files(page: Page) -> dict[str, dict[str, Any]]:
    """The page's file records, {filename: record}."""
    records: list[dict[str, Any]] = page.evaluate(
        "() => [...window.camvault.store.getState().files.values()]"
    )
    return {r["filename"]: r for r in records}


def row(page: Page, filename: str) -> Locator:
    return page.locator(f'.row[data-filename="{filename}"]')


def dialog(page: Page) -> Locator:
    return page.locator("dialog#dialog")


def dialog_button(page: Page, text: str) -> Locator:
    return page.locator("dialog#dialog button[type=submit]", has_text=text)


def expand_all(page: Page) -> None:
    """Open every collapsed group (each click is remembered in localStorage)."""
    _toggle_all(page, "false")


def collapse_all(page: Page) -> None:
    """Close every open group (remembered, like a user's clicks)."""
    _toggle_all(page, "true")


def _toggle_all(page: Page, current: str) -> None:
    flipped = "true" if current == "false" else "false"
    names: list[str] = page.eval_on_selector_all(
        f'section.group > button.group-header[aria-expanded="{current}"] .group-name',
        "spans => spans.map(s => s.textContent)",
    )
    for name in names:
        header = page.locator("section.group > button.group-header").filter(
            has=page.locator(".group-name", has_text=re.compile(f"^{re.escape(name)}$"))
        )
        header.click()
        expect(header).to_have_attribute("aria-expanded", flipped)


def rendered_names(page: Page) -> list[str]:
    names: list[str] = page.eval_on_selector_all(
        ".row[data-filename]", "rows => rows.map(r => r.dataset.filename)"
    )
    return names


def wait_rows(page: Page, expected: set[str], timeout: float = DEFAULT_TIMEOUT_MS) -> None:
    """Wait until exactly ``expected`` rows are rendered."""
    page.wait_for_function(
        """(want) => {
            const got = [...document.querySelectorAll('.row[data-filename]')]
                .map(r => r.dataset.filename).sort();
            return JSON.stringify(got) === JSON.stringify(want);
        }""",
        arg=sorted(expected),
        timeout=timeout,
    )


def toasts(page: Page, kind: str | None = None) -> Locator:
    return page.locator(f"#toasts .toast.{kind}" if kind else "#toasts .toast")


def drop_file(page: Page, target: Locator, name: str, content: bytes) -> None:
    """Drag a file built in the page onto ``target`` (dragenter, dragover, drop)."""
    transfer = page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name,
                                        {type: 'application/octet-stream'}));
            return transfer;
        }""",
        [name, list(content)],
    )
    try:
        for event in ("dragenter", "dragover", "drop"):
            target.dispatch_event(event, {"dataTransfer": transfer})
    finally:
        transfer.dispose()


def active_element(page: Page) -> dict[str, Any]:
    """What has the focus: tag, id, data-action, the row's filename, text."""
    found: dict[str, Any] = page.evaluate(
        """() => {
            const el = document.activeElement;
            if (!el) return {tag: null};
            return {
                tag: el.tagName.toLowerCase(), id: el.id || null,
                action: el.dataset?.action ?? null,
                row: el.closest('.row')?.dataset.filename ?? null,
                text: (el.textContent || '').trim().slice(0, 60),
                expanded: el.getAttribute('aria-expanded'),
                inDialog: Boolean(el.closest('dialog')),
            };
        }"""
    )
    return found


def tab_until(
    page: Page, wanted: Callable[[dict[str, Any]], bool], *, key: str = "Tab", limit: int = 80
) -> int:
    """Press Tab (or ``key``) until ``wanted(active_element)``; returns the presses needed."""
    for presses in range(1, limit + 1):
        page.keyboard.press(key)
        if wanted(active_element(page)):
            return presses
    raise AssertionError(f"{limit} x {key} never reached the element; last: {active_element(page)}")


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
