"""/metrics: Prometheus numbers for admins, by route template; request ids on every answer."""

from __future__ import annotations

import re

import pytest
from helpers import Vault, checkin, mcam, upload

pytestmark = pytest.mark.anyio


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the Prometheus text format."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_count_requests_by_route_and_check_in_bytes(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567_A1.mcam", mcam(b"v1"))
        for content in (mcam(b"x" * 1000), mcam(b"y" * 3000)):
            await admin.post("/api/files/1234567_A1.mcam/checkout", json={})
            assert (await checkin(admin, "1234567_A1.mcam", content)).status_code == 200
        await admin.get("/api/files/nope.mcam")
        answer = await admin.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    route = "/api/files/{name}/checkout"
    count = sample(text, "camvault_http_request_duration_seconds_count", route=route, status="200")
    assert count == 2
    missing = sample(
        text,
        "camvault_http_request_duration_seconds_count",
        route="/api/files/{name}",
        status="404",
    )
    assert missing == 1
    assert "nope.mcam" not in text  # templates, never names
    assert sample(text, "camvault_checkin_bytes_total") == len(mcam(b"x" * 1000)) + len(
        mcam(b"y" * 3000)
    )
    assert sample(text, "camvault_checkin_duration_seconds_count") == 2
    assert sample(text, "camvault_websockets_open") == 0
    assert sample(text, "camvault_event_log_seq") >= 5
    assert sample(text, "camvault_event_log_lag") >= 0


async def test_metrics_are_for_admins(vault: Vault) -> None:
    async with vault.client() as anon:
        assert (await anon.get("/metrics")).status_code == 401
    async with await vault.add_user("ann") as ann:
        assert (await ann.get("/metrics")).status_code == 403


async def test_every_answer_carries_a_request_id(vault: Vault) -> None:
    async with vault.client() as anon:
        fresh = await anon.get("/api/health")
        assert re.fullmatch(r"[0-9a-f]{16}", fresh.headers["x-request-id"])
        again = await anon.get("/api/health")
        assert again.headers["x-request-id"] != fresh.headers["x-request-id"]
        given = await anon.get("/api/health", headers={"X-Request-ID": "nginx-42.abc"})
        assert given.headers["x-request-id"] == "nginx-42.abc"
        hostile = await anon.get("/api/health", headers={"X-Request-ID": "a\\nb c" * 20})
        assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["x-request-id"])


async def test_routes_prepared_at_startup_leave_no_trace(
    vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    """The startup warm-up (an OPTIONS per documented path, straight to the router) is not
    a request anyone made: no 405 in the metrics and no event in the log; nor does it fail."""
    assert not [r for r in caplog.get_records("setup") if "ahead of time" in r.getMessage()]
    async with await vault.login("admin") as admin:
        text = (await admin.get("/metrics")).text
        events = (await admin.get("/api/audit")).json()
    counted = [
        line
        for line in text.splitlines()
        if line.startswith("camvault_http_request_duration_seconds_count")
    ]
    assert counted, text[:2000]
    assert not [line for line in counted if 'status="405"' in line]
    assert 'method="OPTIONS"' not in text
    assert {e["type"] for e in events["events"]} <= {"user.logged_in", "user.created"}, events
