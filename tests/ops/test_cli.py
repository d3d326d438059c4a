"""`docdigest web`, `docdigest worker` and the plain Arq command start as an operator runs them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from docdigest.devserver.redis import free_port
from tests.ops.conftest import DOCDIGEST, clean_env


@pytest.fixture
def stack_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    env = clean_env(
        DOCDIGEST_DATA_DIR=str(tmp_path / "data"),
        DOCDIGEST_REDIS_URL=redis_url,
        DOCDIGEST_QUEUE_NAME=f"docdigest:test:{tmp_path.name}",
        DOCDIGEST_SMTP_HOST="127.0.0.1",
        DOCDIGEST_SMTP_PORT=str(free_port()),
    )
    subprocess.run([DOCDIGEST, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    return env


def wait_until_answering(url: str, process: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 120  # a guard against hanging, not a speed check
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def start_web(env: dict[str, str], processes: int) -> tuple[subprocess.Popen[str], str]:
    """`docdigest web --workers N` on a free port, once it answers `/readyz`."""
    port = free_port(avoid={int(env["DOCDIGEST_SMTP_PORT"])})  # nothing holds that one yet
    web = subprocess.Popen(
        [DOCDIGEST, "web", "--port", str(port), "--workers", str(processes)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    assert wait_until_answering(f"{url}/readyz", web).status_code == 200
    return web, url


def stop_web(web: subprocess.Popen[str]) -> str:
    web.send_signal(signal.SIGTERM)
    return web.communicate(timeout=60)[0]


@pytest.mark.parametrize("processes", [1, 2])
def test_web_serves_with_one_or_several_processes(
    stack_env: dict[str, str], processes: int
) -> None:
    web, url = start_web(stack_env, processes)
    try:
        assert httpx.get(f"{url}/healthz").status_code == 200
        serving = [p for p in psutil.Process(web.pid).children(recursive=True) if p.is_running()]
        if processes > 1:
            # uvicorn's supervisor plus one process per worker
            assert len([p for p in serving if "python" in p.name().lower()]) >= processes
    finally:
        output = stop_web(web)
    # uvicorn re-raises the signal once it has shut down cleanly
    assert web.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


@pytest.mark.parametrize(
    "command",
    [[DOCDIGEST, "worker", "--burst"], [sys.executable, "-m", "arq", "--burst"]],
    ids=["docdigest-worker", "arq"],
)
def test_worker_commands_connect_and_finish_a_burst(
    stack_env: dict[str, str], command: list[str]
) -> None:
    if command[-2:] == ["arq", "--burst"]:
        command = [*command, "docdigest.worker.WorkerSettings"]
    result = subprocess.run(command, env=stack_env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"(?i)(starting worker|worker starting) for \d+ functions", output), output


def test_help_lists_every_command() -> None:
    result = subprocess.run([DOCDIGEST, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("run", "web", "worker", "migrate", "users", "jobs"):
        assert command in result.stdout


def serving_processes(web: subprocess.Popen[str]) -> list[psutil.Process]:
    """The uvicorn processes that serve requests under `docdigest web --workers N`."""
    return [p for p in psutil.Process(web.pid).children() if _serves(p)]


def _serves(process: psutil.Process) -> bool:
    # A child that dies between the listing and these reads (one the supervisor has
    # just killed) serves nothing: psutil raises ZombieProcess or NoSuchProcess.
    try:
        return "spawn_main" in " ".join(process.cmdline()) and (
            process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return False


def test_a_web_process_stalled_for_seconds_keeps_its_requests(stack_env: dict[str, str]) -> None:
    """A machine under load, or a virtual machine paused by its host, can stop a process
    for seconds. Every request already sent is still answered once it runs again."""
    web, url = start_web(stack_env, 2)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.get("/healthz").status_code == 200
            serving = serving_processes(web)
            assert len(serving) == 2

            def resume_all() -> None:
                for process in serving:
                    process.resume()

            for process in serving:
                process.suspend()
            # Longer than uvicorn's own 5 s for the health check (the supervisor would kill
            # both processes) and for keep-alive (each would wake, close the connection
            # this request waits in and reset it).
            timer = threading.Timer(7, resume_all)
            timer.start()
            try:
                answer = client.get("/healthz")  # sent while no process can run
            finally:
                timer.join()
            assert answer.status_code == 200
            assert sorted(p.pid for p in serving_processes(web)) == sorted(p.pid for p in serving)
    finally:
        output = stop_web(web)
    assert "died" not in output, output


def test_a_hung_web_process_is_replaced(stack_env: dict[str, str]) -> None:
    web, url = start_web(stack_env | {"DOCDIGEST_WEB_HEALTHCHECK_TIMEOUT_S": "1"}, 2)
    try:
        hung, other = serving_processes(web)
        hung.suspend()
        deadline = time.monotonic() + 60  # a guard against hanging, not a speed check
        while hung.is_running() and hung.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the hung process was never replaced"
            time.sleep(0.2)
        while len(serving_processes(web)) < 2:
            assert time.monotonic() < deadline, "no process took the hung one's place"
            time.sleep(0.2)
        assert other in serving_processes(web)
        assert wait_until_answering(f"{url}/readyz", web).status_code == 200
    finally:
        output = stop_web(web)
    assert f"Child process [{hung.pid}] died" in output, output
