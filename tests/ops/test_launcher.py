"""`docdigest run` (what `make run` starts): every part up, watched, and stopped cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from docdigest.devserver.launcher import Launcher
from docdigest.devserver.redis import free_port, free_ports
from docdigest.settings import Settings
from tests.ops.conftest import Launched, clean_env

Launch = Callable[..., Launched]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_run_starts_every_part_answers_ready_and_stops_them_all(launch: Launch) -> None:
    stack = launch()
    stack.wait_for(r"^run \| docdigest ready$")

    assert httpx.get(f"{stack.base_url}/readyz").status_code == 200
    parts = ("redis", "smtp", "web", "worker")
    pids = {part: pid for part, pid in stack.pids().items() if part in parts}
    assert set(pids) == set(parts)
    for part in parts:
        stack.wait_for(rf"^{part} \| ")
    assert all(psutil.pid_exists(pid) for pid in pids.values())

    # A second terminal adds a worker to this stack with the settings in run.env
    # (in burst mode, so before anything is deferred to tomorrow).
    run_env = stack.data_dir / "run.env"
    second = subprocess.run(
        ["bash", "-c", f"set -a; . {run_env}; exec docdigest worker --burst"],
        env=clean_env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert "worker starting" in output
    redis_port = stack.wait_for(r"^redis \| .*port=(\d+)")[1]
    assert f"DOCDIGEST_REDIS_URL=redis://127.0.0.1:{redis_port}/0" in run_env.read_text()
    first_metrics = stack.wait_for(r"^worker \| .*worker metrics on port (\d+)")[1]
    second_metrics = re.search(r"worker metrics on port (\d+)", output)
    assert second_metrics is not None and second_metrics[1] != first_metrics
    # The worker bound a free port itself (none picked for it beforehand, which
    # another socket could take first), and the launcher says which.
    announced = stack.wait_for(r"^run \| worker metrics: http://127\.0\.0\.1:(\d+)/metrics$")
    assert announced[1] == first_metrics
    scrape = httpx.get(f"http://127.0.0.1:{first_metrics}/metrics", timeout=10)
    assert scrape.status_code == 200 and "docdigest_" in scrape.text

    # The whole way round: sign up, the worker mails, the catcher keeps it, the API shows it.
    account = {"email": "ada@example.com", "name": "Ada", "password": "a long passphrase 42"}
    assert httpx.post(f"{stack.base_url}/api/signup", json=account).status_code == 201
    login = httpx.post(f"{stack.base_url}/api/login", json=account).json()
    bearer = {"Authorization": f"Bearer {login['access_token']}"}
    deadline = time.monotonic() + 120  # a guard, not a timing check
    while time.monotonic() < deadline:
        mails = httpx.get(f"{stack.base_url}/api/dev/mail", headers=bearer).json()
        if mails:
            break
        time.sleep(0.3)
    assert [m["to"] for m in mails] == ["ada@example.com"]

    descendants = psutil.Process(stack.process.pid).children(recursive=True)
    assert {p.pid for p in descendants} >= set(pids.values())
    assert stack.stop() == 0
    # Every process the stack started, and whatever those started, is gone: no orphans.
    assert [p for p in descendants if not _gone(p.pid)] == [], stack.lines[-30:]
    assert (stack.data_dir / "redis" / "appendonlydir").is_dir()


def test_a_killed_worker_is_restarted_and_a_second_run_reuses_the_data(launch: Launch) -> None:
    stack = launch()
    stack.wait_for(r"^run \| docdigest ready$")
    first = stack.pids()["worker"]
    seen = len(stack.lines)

    os.kill(first, signal.SIGKILL)

    stack.wait_for(r"^run \| worker exited with code -9; restarting", after=seen)
    assert httpx.get(f"{stack.base_url}/healthz").status_code == 200
    restarted = int(stack.wait_for(r"^run \| started worker \(pid (\d+)\)", after=seen)[1])
    assert restarted != first
    stack.wait_for(r"^worker \| .*worker starting", after=seen)
    assert httpx.get(f"{stack.base_url}/readyz").status_code == 200
    assert stack.stop() == 0
    assert _gone(restarted)

    # Running it again reuses .data/: the schema is there, nothing to migrate.
    again = launch()
    again.wait_for(r"^run \| docdigest ready$")
    assert not any("Running upgrade" in line for line in again.lines)
    assert any("Running upgrade" in line for line in stack.lines)
    assert again.stop() == 0


def test_configured_parts_are_used_instead_of_embedded_ones(launch: Launch, redis_url: str) -> None:
    stack = launch(
        DOCDIGEST_REDIS_URL=redis_url,
        DOCDIGEST_QUEUE_NAME=f"docdigest:test:{os.getpid()}-launcher",
        DOCDIGEST_SMTP_HOST="127.0.0.1",
        DOCDIGEST_SMTP_PORT="2525",
    )
    stack.wait_for(r"^run \| docdigest ready$")

    assert set(stack.pids()) == {"migrate", "web", "worker"}
    run_env = (stack.data_dir / "run.env").read_text()
    assert f"DOCDIGEST_REDIS_URL={redis_url}" in run_env
    assert "DOCDIGEST_SMTP_HOST=127.0.0.1" in run_env
    assert "DOCDIGEST_DEV_MAIL_DIR" not in run_env
    # No catcher, so no captured-mail API either.
    assert httpx.get(f"{stack.base_url}/api/dev/mail").status_code == 404
    assert stack.stop() == 0


def test_the_embedded_parts_never_get_the_web_port_or_one_port_twice(tmp_path: Path) -> None:
    # The kernel hands a just-closed port out again now and then, and the launcher
    # picks every port before any part binds one: a thousand picks would repeat one.
    web_port = free_port()
    launcher = Launcher(Settings(data_dir=tmp_path, port=web_port), environ={})

    claimed = [launcher.claim_port() for _ in range(1000)]

    assert len(set(claimed)) == len(claimed)
    assert web_port not in claimed


def test_ports_picked_together_are_distinct_and_free() -> None:
    ports = free_ports(50)

    assert len(set(ports)) == len(ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
