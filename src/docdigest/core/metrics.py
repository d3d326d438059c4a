"""Prometheus metrics for the web app: HTTP requests by route template and status,
plus queue gauges read live at each scrape.

The request metrics are prometheus-fastapi-instrumentator's default set, with its
names, labels and buckets, so its dashboards and queries apply. They are recorded by
`RequestMetrics` from the route the app's router matched (`scope["route"]`); the
instrumentator matched every request against every route a second time before the
app saw it, half the CPU of `GET /healthz` (docs/performance.md, "a twenty-second
machine").

With several uvicorn worker processes, each process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (set by `docdigest web` before the processes start) and
whichever process answers a scrape sums them all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from timeit import default_timer

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    Summary,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Message, Receive, Scope, Send

from docdigest.core.health import readiness
from docdigest.core.middleware import HttpMiddleware
from docdigest.jobs.metrics import gauge_families, read_queue_gauges

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)


class _Snapshot(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


REQUESTS = Counter(
    "http_requests_total",
    "Total number of requests by method, status and handler.",
    ["method", "status", "handler"],
)
REQUEST_SIZE = Summary(
    "http_request_size_bytes",
    "Content length of incoming requests by handler. Only value of header is respected. "
    "Otherwise ignored. No percentile calculated. ",
    ["handler"],
)
RESPONSE_SIZE = Summary(
    "http_response_size_bytes",
    "Content length of outgoing responses by handler. Only value of header is respected. "
    "Otherwise ignored. No percentile calculated. ",
    ["handler"],
)
LATENCY_FINE = Histogram(
    "http_request_duration_highr_seconds",
    "Latency with many buckets but no API specific labels. "
    "Made for more accurate percentile calculations. ",
    buckets=(
        *(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5),
        *(3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60),
    ),
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Latency with only few buckets by handler. "
    "Made to be only used if aggregation by handler is important. ",
    ["method", "handler"],
    buckets=(0.1, 0.5, 1),
)
#: Not counted: the scrape itself.
UNCOUNTED = frozenset({"/metrics"})


class RequestMetrics(HttpMiddleware):
    """Counts, sizes and times each request by its route template once it is answered.

    A request no route matched (a 404, a static file) is not counted: its path is the
    client's to choose, and every new path would be a new series.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = default_timer()
        status = 500
        response_size = 0

        async def send_status(message: Message) -> None:
            nonlocal status, response_size
            if message["type"] == "http.response.start":
                status = message["status"]
                response_size = _content_length(message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            handler = getattr(scope.get("route"), "path", None)
            if isinstance(handler, str) and handler not in UNCOUNTED:
                duration = max(default_timer() - start, 0.0)
                method = scope["method"]
                REQUESTS.labels(method, str(status), handler).inc()
                REQUEST_SIZE.labels(handler).observe(_content_length(scope["headers"]))
                RESPONSE_SIZE.labels(handler).observe(response_size)
                LATENCY_FINE.observe(duration)
                LATENCY.labels(method, handler).observe(duration)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def instrument(app: FastAPI) -> None:
    app.add_middleware(RequestMetrics)
    app.add_api_route("/metrics", metrics, include_in_schema=False)


async def metrics(request: Request) -> Response:
    app = request.app
    ok, _ = await readiness(app)
    ready = GaugeMetricFamily(
        "docdigest_ready", "1 when the web app can reach its database and Redis.", value=int(ok)
    )
    families = [ready]
    if ok:
        try:
            values = await read_queue_gauges(
                app.state.arq, app.state.settings, app.state.sessionmaker
            )
        except Exception:
            log.warning("queue gauges unavailable for this scrape", exc_info=True)
        else:
            families += gauge_families(values)
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(families))
    return Response(
        generate_latest(_process_registry()) + generate_latest(snapshot),
        media_type=CONTENT_TYPE_LATEST,
    )


def _process_registry() -> CollectorRegistry:
    if MULTIPROC_ENV not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def prepare_multiprocess_dir(path: Path) -> None:
    """Call before starting web worker processes: samples of a previous run must not count."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
