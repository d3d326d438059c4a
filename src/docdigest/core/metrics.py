"""Prometheus metrics for the web app: HTTP requests by route template and status,
plus queue gauges read live at each scrape.

With several uvicorn worker processes, each process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (set by `docdigest web` before the processes start) and
whichever process answers a scrape sums them all.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator

from docdigest.core.health import readiness
from docdigest.jobs.metrics import gauge_families, read_queue_gauges

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)


class _Snapshot(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


def instrument(app: FastAPI) -> None:
    Instrumentator(
        should_group_status_codes=False,
        should_ignore_untemplated=True,
        excluded_handlers=["/metrics", "/static"],
    ).instrument(app)
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
