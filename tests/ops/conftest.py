"""Operator-facing fixtures: empty databases to migrate, and the `docdigest` command."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from docdigest.devserver.redis import free_port, wait_for_port
from tests.conftest import _asyncpg_url

DOCDIGEST = shutil.which("docdigest", path=str(Path(sys.executable).parent)) or "docdigest"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables at all, on SQLite and on PostgreSQL (when configured)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    admin_url = os.environ.get("DOCDIGEST_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("PostgreSQL tests skipped: DOCDIGEST_TEST_POSTGRES_URL is not set")
    admin_url = _asyncpg_url(admin_url)
    name = f"docdigest_ops_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


# What each entry point builds before it serves: uvicorn's factory for `docdigest web`,
# and the settings class `arq docdigest.worker.WorkerSettings` reads.
ENTRY_POINTS = {
    "web": "from docdigest.main import app_from_env; app_from_env()",
    "worker": "import docdigest.worker; docdigest.worker.WorkerSettings",
    # The extraction fork server, whose children would otherwise walk its converters.
    "extraction server": "from docdigest.documents.extract import server; server.preload()",
    # What the tests and embedders call: no freezing there.
    "create_app": "from docdigest.main import create_app; create_app()",
}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: no DOCDIGEST_ settings but the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCDIGEST_")}
    return env | extra


def run_python(code: str, tmp_path: Path, **settings: str) -> str:
    """What `python -c code` prints, in a fresh process with only `settings` set."""
    env = clean_env(DOCDIGEST_DATA_DIR=str(tmp_path / "data"), **settings)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Launched:
    """`docdigest run` as a subprocess, its tagged output collected line by line."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.base_url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [DOCDIGEST, "run"],
            env=clean_env(
                DOCDIGEST_DATA_DIR=str(data_dir), DOCDIGEST_PORT=str(port), **(env or {})
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, *, after: int = 0, timeout_s: float = 120) -> re.Match[str]:
        """The first line from index `after` on matching `pattern` (a guard, not a timing check)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if match := re.search(pattern, line):
                    return match
            if self.process.poll() is not None and not any(
                re.search(pattern, line) for line in self.lines[after:]
            ):
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-80:]))

    def pids(self) -> dict[str, int]:
        """The latest pid of each part, as the launcher announced it."""
        found: dict[str, int] = {}
        for line in self.lines:
            if match := re.match(r"run \| started (\w+) \(pid (\d+)\)", line):
                found[match[1]] = int(match[2])
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(90)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Launched]]:
    started: list[Launched] = []

    def start(**env: str) -> Launched:
        launched = Launched(tmp_path / "data", free_port(), env)
        started.append(launched)
        return launched

    yield start
    for launched in started:
        if launched.process.poll() is None:
            launched.process.kill()
            launched.process.wait()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server over HTTP (moto's standalone server)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout_s=30, process=server)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(10)
