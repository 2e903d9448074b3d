"""Prometheus metrics: request latency by route, open WebSockets, event-log lag, check-ins,
mirror backlog. Served at ``/metrics`` to admins, and without authentication on a separate
address when ``metrics_port`` is set (bind it to a private interface for the scraper).

Each app has its own registry (no process-global state), so two apps in one process (the
tests) never mix their numbers.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from collections.abc import Iterator

    from camvault.core import Camvault

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("camvault.metrics")
# Request latency buckets: the API's goals sit between 20 ms and 400 ms; uploads take longer.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0, 2.5, 5.0, 15.0, 60.0)


class Metrics:
    """The instruments of one camvault app."""

    def __init__(self, camvault: Camvault) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "camvault_http_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.checkin_bytes = Counter(
            "camvault_checkin_bytes",
            "Bytes of content accepted by check-ins",
            registry=self.registry,
        )
        self.checkin_seconds = Histogram(
            "camvault_checkin_duration_seconds",
            "Check-in duration, upload included, of successful check-ins",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.websockets = Gauge(
            "camvault_websockets_open", "Open WebSocket connections", registry=self.registry
        )
        self.websockets.set_function(lambda: len(camvault.hub.connections) if camvault.live else 0)
        self.registry.register(_StateCollector(camvault))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    """Numbers read at scrape time: the event log position and lag, the mirror backlog."""

    def __init__(self, camvault: Camvault) -> None:
        self.camvault = camvault

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        camvault = self.camvault
        if not camvault.live:
            return
        try:
            newest = camvault.hub.newest_seq()
        except Exception:  # noqa: BLE001 - a scrape must answer even when the DB is down
            log.warning("metrics: could not read the event log", exc_info=True)
            return
        delivered = camvault.hub.seq
        seq = GaugeMetricFamily(
            "camvault_event_log_seq", "Newest event-log seq in the database", value=newest
        )
        yield seq
        lag = GaugeMetricFamily(
            "camvault_event_log_lag",
            "Events in the log this instance has not yet sent to its WebSockets",
            value=max(0, newest - delivered),
        )
        yield lag
        pending = camvault.mirror.pending_count()
        if pending is not None:
            yield GaugeMetricFamily(
                "camvault_mirror_pending_commits",
                "Commits not yet pushed to the mirror",
                value=pending,
            )


class MetricsMiddleware:
    """Times every HTTP request under its route template (never the raw path: names would
    make one series per file)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            self.metrics.requests.labels(
                scope["method"], template or "unmatched", str(status)
            ).observe(time.perf_counter() - start)
