"""Child processes whose output lines reach our standard output tagged with their part."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

_print_lock = threading.Lock()


def say(tag: str, line: str) -> None:
    with _print_lock, contextlib.suppress(BrokenPipeError, ValueError):
        print(f"{tag} | {line}", flush=True)


def _die_with_parent() -> None:
    # If the launcher itself is killed (kill -9), the kernel stops its children too.
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Child:
    """One part of the stack: started, watched, and stopped on request."""

    def __init__(
        self,
        tag: str,
        argv: Sequence[str],
        env: dict[str, str],
        watch: Callable[[str], None] | None = None,
    ) -> None:
        self.tag = tag
        self.argv = list(argv)
        self.env = env
        self.watch = watch  # sees each line of the child's output, in the pump's thread
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C in the terminal reaches only the launcher,
            # which then stops the parts in order.
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        self.started_at = time.monotonic()
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()
        say("run", f"started {self.tag} (pid {self.process.pid})")

    def _pump(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            say(self.tag, line)
            if self.watch is not None:
                self.watch(line)

    def exit_code(self) -> int | None:
        """None while running."""
        return self.process.poll() if self.process else None

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def stop(self, timeout_s: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            say("run", f"{self.tag} did not stop within {timeout_s:.0f} s; killing it")
            self.process.kill()
            self.process.wait()
        say("run", f"stopped {self.tag}")


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def child_env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
