"""Processes the benches start: uvicorn serving an app, docdigest workers; all stopped after."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from bench.common import process_stat, stop
from docdigest.devserver.redis import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            # This checkout's code, whatever else is installed in the environment.
            env={
                **os.environ,
                "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
                "PYTHONUNBUFFERED": "1",
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@dataclass(frozen=True)
class Served:
    """A running uvicorn process."""

    port: int
    process: subprocess.Popen[bytes]

    def cpu_s(self, loop_only: bool = False) -> float | None:
        """CPU seconds the process has used: all its threads, or with `loop_only` its
        main thread alone, where uvicorn runs the event loop (Linux's /proc; None
        elsewhere)."""
        try:
            fields = process_stat(self.process.pid, main_thread=loop_only)
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@contextmanager
def uvicorn(factory: str, env: dict[str, str], log: Path) -> Iterator[Served]:
    """One uvicorn process serving `factory`, stopped afterwards.

    Its output goes to `log`, which is copied to stderr if the bench fails.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = _start(command, env, log)
    try:
        wait_for_port(port, timeout_s=30, process=process)
        yield Served(port, process)
    except BaseException:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        stop(process)


@contextmanager
def workers(count: int, env: dict[str, str], logs: Path) -> Iterator[list[int]]:
    """`count` docdigest worker processes; yields their process ids."""
    paths = [logs / f"worker-{n}.log" for n in range(count)]
    processes = [_start([sys.executable, "-m", "docdigest", "worker"], env, p) for p in paths]
    try:
        yield [process.pid for process in processes]
    except BaseException:
        for path in paths:
            sys.stderr.write(path.read_text(errors="replace")[-3000:])
        raise
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            stop(process, 30)


def bearer_token(port: int, email: str = "bench@example.com") -> str:
    """Sign up a user and log in; returns an access token."""
    base = f"http://127.0.0.1:{port}"
    account = {"email": email, "name": "Bench", "password": "bench password 1"}
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/api/signup", json=account).raise_for_status()
        response = client.post(
            "/api/login", json={"email": account["email"], "password": account["password"]}
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


class CountingMailbox:
    """An SMTP handler that keeps only when each recipient's messages arrived."""

    def __init__(self) -> None:
        self.received: dict[str, list[datetime]] = defaultdict(list)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = datetime.now(UTC)
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.received[recipient].append(now)
        return "250 OK"

    def arrivals(self, recipient: str) -> list[datetime]:
        with self.lock:
            return list(self.received[recipient])


@contextmanager
def smtp_server() -> Iterator[tuple[int, CountingMailbox]]:
    mailbox = CountingMailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()
