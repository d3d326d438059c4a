"""`docdigest run`: the whole stack on one machine, each part its own child process.

Embedded parts (Redis, the SMTP catcher) start only when no real one is
configured. The worker is restarted when it dies; the web app keeps serving.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import httpx

from docdigest.devserver.children import Child, child_env, python_module, say
from docdigest.devserver.redis import free_port, redis_command
from docdigest.settings import Settings

READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
RESTART_BACKOFF_CAP_S = 30.0
#: The worker's line saying where its metrics are (jobs/metrics.py `worker_started`).
_METRICS_PORT_LINE = re.compile(r"worker metrics on port (\d+)")


class Launcher:
    def __init__(self, settings: Settings, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.data_dir = settings.data_dir.resolve()
        self.children: list[Child] = []
        self.stopping = False
        self.worker_failures = 0
        self.worker_restart_at: float | None = None
        # The worker picks its metrics port as it binds it, and says which.
        self.metrics_port: int | None = None
        self.announced = False
        self._announcing = threading.Lock()
        # The ports handed out so far, the web's first: see `claim_port`.
        self.ports_claimed = {settings.port}

    # ------------------------------------------------------------ the stack's settings

    def stack_settings(self) -> dict[str, str]:
        """The DOCDIGEST_ settings every child gets, and run.env records."""
        given = {k: v for k, v in self.environ.items() if k.startswith("DOCDIGEST_")}
        stack = {
            **given,
            "DOCDIGEST_DATA_DIR": str(self.data_dir),
            "DOCDIGEST_HOST": self.settings.host,
            "DOCDIGEST_PORT": str(self.settings.port),
            "DOCDIGEST_QUEUE_NAME": self.settings.queue_name,
        }
        if "DOCDIGEST_DATABASE_URL" not in given:
            stack["DOCDIGEST_DATABASE_URL"] = (
                f"sqlite+aiosqlite:///{self.data_dir / 'docdigest.db'}"
            )
        return stack

    def write_run_env(self, stack: dict[str, str]) -> Path:
        path = self.data_dir / "run.env"
        lines = [
            "# The stack `docdigest run` started. Add a worker to it from another terminal:",
            "#   set -a; . .data/run.env; docdigest worker",
            "# DOCDIGEST_WORKER_METRICS_PORT=0: each worker serves its metrics on a free",
            "# port and logs which ('worker metrics on port N').",
        ]
        settings = stack | {"DOCDIGEST_WORKER_METRICS_PORT": "0"}
        lines += [f"{key}={shlex.quote(value)}" for key, value in sorted(settings.items())]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)  # it may carry passwords given in the environment
        return path

    # ------------------------------------------------------------ lifecycle

    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        try:
            return self._run()
        finally:
            self._stop_all()

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            say("run", f"{signal.Signals(signum).name}: stopping")
        self.stopping = True

    def _run(self) -> int:
        stack = self.stack_settings()
        if "DOCDIGEST_REDIS_URL" not in stack:
            stack["DOCDIGEST_REDIS_URL"] = self._start_redis()
        if not stack.get("DOCDIGEST_SMTP_HOST"):
            stack |= self._start_smtp_catcher()

        migrate = Child("migrate", python_module("docdigest", "migrate"), child_env(stack))
        migrate.start()
        if migrate.wait() != 0:
            say("run", "migrations failed; stopping")
            return 1
        if self.stopping:
            return 0

        self.write_run_env(stack)
        web = self._start(Child("web", python_module("docdigest", "web"), child_env(stack)))
        worker_env = child_env(stack | {"DOCDIGEST_WORKER_METRICS_PORT": "0"})
        argv = python_module("docdigest", "worker")
        worker = self._start(Child("worker", argv, worker_env, watch=self._worker_said))
        return self._supervise(web, worker)

    def _start(self, child: Child) -> Child:
        self.children.append(child)
        child.start()
        return child

    def claim_port(self) -> int:
        """A free port for an embedded part, never the web's nor one handed out before.

        No part binds its port before the next one is picked, and the kernel may
        pick a port that was free a moment ago again.
        """
        port = free_port(avoid=self.ports_claimed)
        self.ports_claimed.add(port)
        return port

    def _start_redis(self) -> str:
        port = self.claim_port()
        command = redis_command(port, self.data_dir / "redis", appendonly=True)
        self._start(Child("redis", command, child_env({})))
        return f"redis://127.0.0.1:{port}/0"

    def _start_smtp_catcher(self) -> dict[str, str]:
        port = self.claim_port()
        mail_dir = self.data_dir / "mail"
        argv = python_module("docdigest.devserver.smtp", str(port), str(mail_dir))
        self._start(Child("smtp", argv, child_env({})))
        return {
            "DOCDIGEST_SMTP_HOST": "127.0.0.1",
            "DOCDIGEST_SMTP_PORT": str(port),
            "DOCDIGEST_DEV_MAIL_DIR": str(mail_dir),
        }

    def _supervise(self, web: Child, worker: Child) -> int:
        base = f"http://{self.settings.host}:{self.settings.port}"
        ready = False
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping:
            for child in self.children:
                code = child.exit_code()
                if code is not None and child is not worker:
                    say("run", f"{child.tag} exited with code {code}; stopping everything")
                    return 1
            self._keep_worker_alive(worker)
            if not ready:
                ready = self._answers_ready(base)
                if ready:
                    self._announce(base)
                elif time.monotonic() > deadline:
                    say("run", f"{base}/readyz did not answer 200 in {READY_TIMEOUT_S} s")
                    return 1
            time.sleep(0.2)
        return 0

    def _keep_worker_alive(self, worker: Child) -> None:
        code = worker.exit_code()
        if code is None:
            return
        now = time.monotonic()
        if self.worker_restart_at is None:
            # A worker that dies soon after starting is probably broken: back off.
            lived = now - worker.started_at
            self.worker_failures = self.worker_failures + 1 if lived < 10 else 0
            delay = min(RESTART_BACKOFF_CAP_S, 2.0**self.worker_failures - 1)
            say("run", f"worker exited with code {code}; restarting it in {delay:.0f} s")
            self.worker_restart_at = now + delay
        if now >= self.worker_restart_at:
            self.worker_restart_at = None
            worker.start()

    def _answers_ready(self, base: str) -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _announce(self, base: str) -> None:
        say("run", f"web app:        {base}/")
        say("run", f"API docs:       {base}/docs")
        if "smtp" in {c.tag for c in self.children}:
            say("run", f"captured mail:  {base}/mail (and {base}/api/dev/mail)")
        with self._announcing:
            self.announced = True
            if self.metrics_port is not None:
                self._say_metrics()
        say("run", f"settings:       {self.data_dir / 'run.env'}")
        say("run", "docdigest ready")

    def _worker_said(self, line: str) -> None:
        """Learn the port the worker bound for its metrics (again after a restart),
        and say it once the stack has been announced."""
        found = _METRICS_PORT_LINE.search(line)
        if found is None:
            return
        with self._announcing:
            self.metrics_port = int(found[1])
            if self.announced:
                self._say_metrics()

    def _say_metrics(self) -> None:
        say("run", f"worker metrics: http://127.0.0.1:{self.metrics_port}/metrics")

    def _stop_all(self) -> None:
        # Reverse order: the worker finishes its jobs while Redis is still there.
        for child in reversed(self.children):
            child.stop(STOP_TIMEOUT_S)
