"""/metrics counts requests by route template and status, summed over every web process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from docdigest.devserver.redis import free_port
from docdigest.settings import Settings


def _requests_total(families: Iterable[Metric], handler: str) -> float:
    return sum(
        s.value
        for family in families
        for s in family.samples
        if s.name == "http_requests_total" and s.labels.get("handler") == handler
    )


def _counted_by_process(metrics_dir: Path, handler: str) -> dict[str, float]:
    # Each process writes its labelled counters to counter_<pid>.db.
    by_process = {}
    for path in metrics_dir.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        by_process[path.stem.split("_")[-1]] = _requests_total(families, handler)
    return by_process


@pytest.fixture
def two_process_web(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not settings.is_sqlite:
        pytest.skip("the database plays no part here; SQLite suffices")
    port = free_port()
    env = {
        **os.environ,
        "DOCDIGEST_ENV": "test",
        "DOCDIGEST_DATA_DIR": str(tmp_path / "data"),
        "DOCDIGEST_DATABASE_URL": settings.database_url,
        "DOCDIGEST_REDIS_URL": settings.redis_url,
        "DOCDIGEST_QUEUE_NAME": settings.queue_name,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "docdigest", "web", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "data" / "metrics"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the web app did not start")
        yield url, metrics_dir
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_request_counts_from_two_processes_add_up(two_process_web: tuple[str, Path]) -> None:
    url, metrics_dir = two_process_web

    def fresh_request(_: int) -> int:
        # A fresh connection each time, several at once, so both processes take some.
        with httpx.Client() as fresh:
            return fresh.get(f"{url}/healthz").status_code

    # Rounds of requests until both processes have answered some: the first to start
    # answers /readyz while the second may still be importing.
    sent = 0
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(6) as pool:
        while True:
            assert set(pool.map(fresh_request, range(30))) == {200}
            sent += 30
            by_process = _counted_by_process(metrics_dir, "/healthz")
            if sum(1 for n in by_process.values() if n) == 2 or time.monotonic() > deadline:
                break
    scrapes = [httpx.get(f"{url}/metrics").text for _ in range(6)]

    assert len(by_process) == 2 and min(by_process.values()) > 0, by_process
    assert sum(by_process.values()) == sent
    totals = {_requests_total(text_string_to_metric_families(t), "/healthz") for t in scrapes}
    assert totals == {sent}
    assert "docdigest_ready 1.0" in scrapes[0]
