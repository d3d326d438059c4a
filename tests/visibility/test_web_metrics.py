"""/metrics counts requests by route template and status, summed over every web process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from docdigest.devserver.redis import free_port
from docdigest.settings import Settings


def _requests_total(text: str, handler: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "http_requests_total" and s.labels.get("handler") == handler
    )


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
    sent = 60

    def fresh_request(_: int) -> int:
        # A fresh connection each time, several at once, so both processes take some.
        with httpx.Client() as fresh:
            return fresh.get(f"{url}/healthz").status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(fresh_request, range(sent))) == {200}
    processes_that_counted = {p.stem.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}

    scrapes = [httpx.get(f"{url}/metrics").text for _ in range(6)]

    assert len(processes_that_counted) == 2
    assert {_requests_total(text, "/healthz") for text in scrapes} == {sent}
    assert "docdigest_ready 1.0" in scrapes[0]
