"""Chaos tests run real worker processes against the real Redis, on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from docdigest.core.db import create_tables
from docdigest.devserver.redis import free_port
from docdigest.settings import Settings
from tests.conftest import SmtpCatcher

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """SQLite only: these tests are about processes and Redis, and each takes seconds."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'chaos.db'}"
    await create_tables(url)
    yield url


class SmtpSwitch:
    """A real SMTP server (aiosmtpd) on a fixed port that a test can stop and start again."""

    def __init__(self, catcher: SmtpCatcher) -> None:
        self.catcher = catcher
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            self.catcher, hostname=self.catcher.host, port=self.catcher.port
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_switch() -> Iterator[SmtpSwitch]:
    switch = SmtpSwitch(SmtpCatcher("127.0.0.1", free_port()))
    switch.start()
    yield switch
    switch.stop()


@pytest.fixture
def smtp(smtp_switch: SmtpSwitch) -> SmtpCatcher:
    return smtp_switch.catcher


StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[StartWorker]:
    """Start `python -m tests.chaos.worker` processes; any still running are killed at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "DOCDIGEST_ENV": "test",
        "DOCDIGEST_DATA_DIR": str(settings.data_dir),
        "DOCDIGEST_DATABASE_URL": settings.database_url,
        "DOCDIGEST_REDIS_URL": settings.redis_url,
        "DOCDIGEST_QUEUE_NAME": settings.queue_name,
        "DOCDIGEST_SMTP_HOST": settings.smtp_host,
        "DOCDIGEST_SMTP_PORT": str(settings.smtp_port),
        "DOCDIGEST_WORKER_POLL_DELAY_S": "0.1",
    }

    def start(**extra_env: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.worker"],
            cwd=ROOT,
            env=env | extra_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
