"""Extraction of untrusted files in child processes with CPU, memory and time limits.

Each file gets a fresh process forked from a small fork server (server.py) that
has already imported the converters: a hostile file can only hurt its own
child, and a child starts in milliseconds instead of importing markitdown (~1 s).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from docdigest.documents.extract.protocol import (
    MEMORY_REASON,
    reached_memory_limit,
    receive_message,
    send_message,
)
from docdigest.documents.extract.result import Extracted
from docdigest.settings import Settings


class ExtractionFailed(Exception):
    """The file could not be extracted; the message says why, for its owner."""


@dataclass(frozen=True)
class Limits:
    cpu_s: int
    wall_s: float
    memory_mb: int
    max_chars: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            cpu_s=max(1, settings.extract_cpu_s),
            wall_s=settings.extract_wall_s,
            memory_mb=settings.extract_memory_mb,
            max_chars=settings.extract_max_chars,
        )


async def extract_file(path: Path, content_type: str, limits: Limits) -> Extracted:
    """Extract `path` in a sandboxed child; raises ExtractionFailed with a readable reason."""
    return await asyncio.to_thread(_extract, path, content_type, limits)


def warm_up() -> None:
    """Start the fork server now rather than on the first document."""
    _server.socket_path()


def stop_server() -> None:
    """Stop the fork server (it also stops by itself when this process exits)."""
    _server.stop()


def _extract(path: Path, content_type: str, limits: Limits) -> Extracted:
    deadline = time.monotonic() + limits.wall_s
    request = {
        "path": str(path.resolve()),
        "content_type": content_type,
        "cpu_s": limits.cpu_s,
        "memory_mb": limits.memory_mb,
        "max_chars": limits.max_chars,
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(_server.socket_path())
        pid, budget = None, 0
        try:
            send_message(conn, request)
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            hello = receive_message(conn)
            if hello is not None and "pid" in hello:
                pid, budget = int(hello["pid"]), int(hello["budget"])
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                reply = receive_message(conn)
            else:
                reply = hello
        except TimeoutError:
            if pid is None:
                raise ExtractionFailed(f"extraction exceeded {limits.wall_s:g} s") from None
            over_memory = reached_memory_limit(pid, budget)
            _kill(pid)
            if over_memory:
                raise ExtractionFailed(MEMORY_REASON) from None
            raise ExtractionFailed(f"extraction exceeded {limits.wall_s:g} s") from None
        except (OSError, ValueError) as exc:
            raise ExtractionFailed("extraction stopped unexpectedly") from exc
    if reply is None:
        raise ExtractionFailed("extraction stopped unexpectedly")
    if reply.get("error") == "cpu":
        raise ExtractionFailed(f"extraction exceeded {limits.cpu_s} s of CPU time")
    if "error" in reply:
        raise ExtractionFailed(str(reply["error"]))
    if "exit" in reply:
        raise ExtractionFailed(_death_reason(int(reply["exit"]), limits))
    return Extracted(text=reply["text"], note=reply.get("note"), pages=reply.get("pages"))


def _death_reason(exit_code: int, limits: Limits) -> str:
    if exit_code in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"extraction exceeded {limits.cpu_s} s of CPU time"
    if exit_code in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGABRT):
        # Native code aborts when an allocation fails under the address-space limit.
        return "extraction crashed: the file is corrupt or exceeded the memory limit"
    return f"extraction stopped unexpectedly (exit code {exit_code})"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _ForkServer:
    """One fork server per process, started on first use and restarted if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._path = ""

    def socket_path(self) -> str:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            return self._path

    def _start(self) -> None:
        directory = tempfile.mkdtemp(prefix="docdigest-extract-")
        self._path = str(Path(directory) / "server.sock")
        # One thread per child is plenty; BLAS pools are wasted in a 1-file child.
        env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "docdigest.documents.extract.server", self._path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != b"ready":
            raise ExtractionFailed("the extraction server did not start")

    def stop(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                assert self._process.stdin is not None
                self._process.stdin.close()  # the server exits at end of input
                try:
                    self._process.wait(5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
                shutil.rmtree(Path(self._path).parent, ignore_errors=True)
            self._process = None


_server = _ForkServer()
atexit.register(_server.stop)
