"""Start and watch the processes of the production topology, without containers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

DOCDIGEST = [sys.executable, "-m", "docdigest"]


@dataclass
class MailSink:
    """What Mailpit is in the compose file: an SMTP server that keeps every message."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


@contextmanager
def mail_sink(port: int) -> Iterator[MailSink]:
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class Processes:
    logs: Path
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, args: list[str], env: dict[str, str], *, serves: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start a process; one that `serves` must stay up until stop()."""
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        if serves:
            self.running.append((name, process))
        return process

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def assert_alive(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def print_tails(self) -> None:
        """What each process said last: shown with a failure that is not its own exit."""
        for name, _ in self.running:
            print(f"--- the end of {name}'s log\n{self.tail(name)}")

    def stop(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in self.running:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(check: Any, what: str, processes: Processes, timeout_s: float = 900) -> Any:
    """Poll `check` until it returns something truthy; a guard against hangs, not a timing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        processes.assert_alive()
        try:
            result = check()
        except (httpx.TransportError, OSError):
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what}")


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of a Prometheus endpoint, keyed by name and labels."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def base_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCDIGEST_")}
    return env | {"PYTHONUNBUFFERED": "1"} | values
