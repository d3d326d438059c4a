"""Dashboard queries at scale: list pages and counts over a large job ledger.

Bulk-inserts N ledger rows (20,000 quick, 100,000 with --full) with a realistic mix
of functions, statuses, subjects, request ids and 30 days of enqueue times, then
times each query the dashboard, the admin API and the CLI run, through the same
code (`docdigest.jobs.dashboard.queries`). On SQLite and, when
DOCDIGEST_BENCH_POSTGRES_URL / DOCDIGEST_TEST_POSTGRES_URL is set, PostgreSQL.
Headline: the slowest query's p95, in ms, over both databases.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from bench.common import arguments, database, postgres_admin_url, quiet_logging, report
from bench.common import run as run_main
from docdigest.core.db import create_engine, create_sessionmaker, utcnow
from docdigest.jobs.dashboard.queries import JobFilter, function_names, job_stats, list_jobs
from docdigest.jobs.models import JobRun, JobStatus

FUNCTIONS = [
    "process_document",
    "extract_text",
    "summarize_document",
    "send_document_ready",
    "send_welcome",
    "send_digest",
]
STATUS_MIX = [JobStatus.SUCCEEDED] * 90 + [JobStatus.FAILED] * 4 + [JobStatus.QUEUED] * 2
STATUS_MIX += [JobStatus.DEFERRED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.CANCELLED]
TARGET_MS = 100.0


def rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = utcnow()
    out = []
    for i in range(count):
        status = rng.choice(STATUS_MIX)
        out.append(
            {
                "id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "function": rng.choice(FUNCTIONS),
                "args": {"document_id": i},
                "status": status,
                "attempts": 1,
                "max_tries": 5,
                "series": 1,
                "subject": f"document:{i % 20_000}",
                "request_id": uuid.UUID(int=rng.getrandbits(128)).hex if i % 3 == 0 else None,
                "enqueued_at": now - timedelta(seconds=rng.uniform(0, 30 * 86_400)),
                "error_message": "boom" if status == JobStatus.FAILED else None,
            }
        )
    return out


async def fill(url: str, count: int) -> list[dict[str, Any]]:
    data = rows(count)
    engine = create_engine(url)
    async with engine.begin() as conn:
        for start in range(0, count, 5_000):
            await conn.execute(insert(JobRun), data[start : start + 5_000])
    if url.startswith("sqlite"):
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    else:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE job_runs"))
    await engine.dispose()
    return data


async def measure(url: str, data: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    rng = random.Random(11)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    with_request = [r["request_id"] for r in data if r["request_id"]]
    day_ago = utcnow() - timedelta(days=1)
    async with sessions() as session:
        middle = (await list_jobs(session, JobFilter(), limit=200)).next_cursor
        for _ in range(len(data) // 400):
            page = await list_jobs(session, JobFilter(), limit=200, cursor=middle)
            middle = page.next_cursor or middle

    queries: dict[str, Any] = {
        "list_first_page": lambda s: list_jobs(s, JobFilter()),
        "list_deep_page": lambda s: list_jobs(s, JobFilter(), cursor=middle),
        "list_failed": lambda s: list_jobs(s, JobFilter(status=JobStatus.FAILED)),
        "list_function": lambda s: list_jobs(s, JobFilter(function=rng.choice(FUNCTIONS))),
        "list_function_failed": lambda s: list_jobs(
            s, JobFilter(status=JobStatus.FAILED, function=rng.choice(FUNCTIONS))
        ),
        "list_subject": lambda s: list_jobs(
            s, JobFilter(subject=f"document:{rng.randrange(20_000)}")
        ),
        "search_request_id": lambda s: list_jobs(s, JobFilter(search=rng.choice(with_request))),
        "list_last_day": lambda s: list_jobs(s, JobFilter(since=day_ago)),
        "count_all": lambda s: job_stats(s),
        "count_last_day": lambda s: job_stats(s, JobFilter(since=day_ago)),
        "count_failed": lambda s: job_stats(s, JobFilter(status=JobStatus.FAILED)),
        "function_names": function_names,
    }
    result: dict[str, Any] = {}
    async with sessions() as session:
        for name, query in queries.items():
            await _timed(session, query)  # warm the cache and the statement cache
            times = sorted([await _timed(session, query) for _ in range(repeats)])
            result[name] = {
                "p50_ms": round(times[len(times) // 2], 2),
                "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
            }
    await engine.dispose()
    return result


async def _timed(session: AsyncSession, query: Any) -> float:
    start = time.perf_counter()
    await query(session)
    elapsed = (time.perf_counter() - start) * 1000
    session.expunge_all()
    return elapsed


async def main() -> None:
    args = arguments(__doc__ or "")
    count = 100_000 if args.full else 20_000
    repeats = 60 if args.full else 20
    quiet_logging()
    kinds = ["sqlite"] + (["postgres"] if postgres_admin_url() else [])
    by_database: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            async with database(kind, Path(tmp)) as url:
                started = time.perf_counter()
                data = await fill(url, count)
                fill_s = round(time.perf_counter() - started, 1)
                by_database[kind] = {"insert_s": fill_s} | await measure(url, data, repeats)
    worst = max(
        (q["p95_ms"], f"{kind}:{name}")
        for kind, queries in by_database.items()
        for name, q in queries.items()
        if isinstance(q, dict)
    )
    report(
        name="dashboard",
        params={"rows": count, "repeats": repeats, "databases": kinds},
        figure=worst[0],
        unit="ms (p95, slowest query)",
        baseline=None,
        target=f"p95 <= {TARGET_MS:.0f} ms for every list and count query",
        meets=worst[0] <= TARGET_MS,
        slowest=worst[1],
        queries=by_database,
    )


if __name__ == "__main__":
    run_main(main())
