"""A worker's own CPU per document: the job tier driven in-process, with no web server.

`python -m bench._jobs [--database sqlite|postgres] [--count N] [--size BYTES]` prints
one JSON object. It uploads N text documents through the app (in this process, as
`bench/_drive` does), then runs a real Arq worker in burst mode, one job at a time,
until every document is ready and mailed (a real SMTP server takes the mails).

`main_thread_cpu_ms_per_document` is the worker's event loop's CPU over the whole
burst divided by N: every job's body, the claims, the ledger and the ends. The
extraction's processes and the summary's thread are not in it, so it is the part of
a worker's CPU that the job tier itself spends. `job_cpu_ms` gives the same clock
around each job's body, per job function (the mean over its runs). Redis at
DOCDIGEST_TEST_REDIS_URL or redis://127.0.0.1:6379/15, PostgreSQL at
DOCDIGEST_TEST_POSTGRES_URL. Not part of `make bench`: it has no baseline or target;
it is how the per-job figures in docs/performance.md were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import uvloop

import docdigest.models  # noqa: F401  (registers every table for create_all)
from bench._drive import Request, bearer_token
from bench._loadgen import UPLOAD_CONTENT_TYPE, filler, upload_body
from bench._servers import smtp_server
from bench.common import database, database_argument, quiet_logging
from docdigest.jobs import registry, runner
from docdigest.main import create_app
from docdigest.settings import Settings
from docdigest.worker import create_worker


class JobClock:
    """The event loop's CPU around each job's body, summed per job function."""

    def __init__(self) -> None:
        self.cpu_s: defaultdict[str, float] = defaultdict(float)
        self.runs: Counter[str] = Counter()

    async def run_job(self, spec: Any, *args: Any) -> None:
        started = time.thread_time()
        try:
            await runner.run_job(spec, *args)
        finally:
            self.cpu_s[spec.name] += time.thread_time() - started
            self.runs[spec.name] += 1

    def mean_ms(self) -> dict[str, float]:
        return {name: round(self.cpu_s[name] / self.runs[name] * 1000, 3) for name in self.runs}


async def upload(settings: Settings, count: int, size: int) -> None:
    """`count` distinct text documents, uploaded as a user would; their jobs wait queued."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        token = await bearer_token(app)
        headers = {"authorization": f"Bearer {token}", "content-type": UPLOAD_CONTENT_TYPE}
        text = filler(size)
        for n in range(count):
            request = Request("POST", "/api/documents", headers, upload_body(str(n), text))
            if (status := await request.send_to(app)) != 202:
                raise RuntimeError(f"upload: {status}, expected 202")


async def burst(kind: str, count: int, size: int, redis_url: str) -> dict[str, Any]:
    clock = JobClock()
    # Each job function's wrapper calls the runner by this name.
    setattr(registry, "run_job", clock.run_job)  # noqa: B010
    try:
        return await _burst(kind, count, size, redis_url, clock)
    finally:
        setattr(registry, "run_job", runner.run_job)  # noqa: B010


async def _burst(
    kind: str, count: int, size: int, redis_url: str, clock: JobClock
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, smtp_server() as (smtp_port, mailbox):
        async with database(kind, Path(tmp)) as url:
            settings = Settings(
                env="development",
                data_dir=Path(tmp) / "data",
                database_url=url,
                redis_url=redis_url,
                queue_name=f"jobs-bench:{uuid.uuid4().hex[:8]}",
                smtp_host="127.0.0.1",
                smtp_port=smtp_port,
                worker_max_jobs=1,
                # A deferred nudge would keep the burst worker waiting for a day.
                onboarding_nudge_after_hours=None,
                log_format="json",
            )
            await upload(settings, count, size)
            worker = create_worker(settings, burst=True, handle_signals=False, poll_delay=0.02)
            loop_cpu, wall = time.thread_time(), time.perf_counter()
            try:
                await worker.main()
            finally:
                await worker.close()
            loop_cpu, wall = time.thread_time() - loop_cpu, time.perf_counter() - wall
    mails = sum(len(times) for times in mailbox.received.values())
    if mails != count + 1:  # every document's mail and the welcome mail
        raise RuntimeError(f"{mails} mails arrived, expected {count + 1}")
    return {
        "name": "jobs",
        "params": {"database": kind, "count": count, "size": size, "worker_max_jobs": 1},
        "main_thread_cpu_ms_per_document": round(loop_cpu / count * 1000, 3),
        "wall_ms_per_document": round(wall / count * 1000, 2),
        "job_cpu_ms": clock.mean_ms(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    database_argument(parser)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=3000, help="bytes of text a document")
    args = parser.parse_args()
    quiet_logging()
    redis_url = os.environ.get("DOCDIGEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    result = uvloop.run(burst(args.database, args.count, args.size, redis_url))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
