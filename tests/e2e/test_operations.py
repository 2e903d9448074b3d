"""Operating a real server: JSON logs with request ids, and /metrics on a private port."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from e2e.server import Launcher, free_port

PASSWORD = "operations-test-password"


def test_json_logs_carry_request_ids_and_the_metrics_port_needs_no_session(
    launch: Launcher, tmp_path: Path
) -> None:
    metrics_port = free_port()
    server = launch.start(
        tmp_path / "data",
        admin_password=PASSWORD,
        env={"CAMVAULT_LOG_FORMAT": "json", "CAMVAULT_METRICS_PORT": str(metrics_port)},
    )
    with server.client() as anon:
        refused = anon.post(
            "/api/auth/login",
            json={"username": "admin", "password": "wrong"},
            headers={"X-Request-ID": "trace-me-123"},
        )
        assert refused.status_code == 401
        assert refused.headers["x-request-id"] == "trace-me-123"
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert scraped.status_code == 200
    assert "camvault_http_request_duration_seconds_bucket" in scraped.text
    assert 'route="/api/auth/login"' in scraped.text
    # The main port keeps /metrics behind a session.
    with server.client() as anon:
        assert anon.get("/metrics").status_code == 401

    server.stop()
    lines = [line for line in server.stderr().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in entries)
    refusal = [e for e in entries if e["request_id"] == "trace-me-123"]
    assert refusal and "failed login for 'admin'" in refusal[0]["message"], entries
    assert PASSWORD not in server.stderr() and PASSWORD not in server.stdout()
    assert "wrong" not in server.stderr()  # the attempted password is never logged
