"""Documents per minute from upload to `ready`: 1 and 2 worker processes vs a plain loop.

A generated corpus of mixed documents (PDF, DOCX, HTML, text; 1-200 pages,
log-uniform, so most are short) goes through the whole product: uploaded over HTTP
to one uvicorn process, then extract_text (which also makes the extractive summary)
→ email_user on docdigest worker processes (real Redis, a real SMTP server, the
job ledger). Each worker runs one job at a time (DOCDIGEST_WORKER_MAX_JOBS=1), like
the loop, so the comparison is lane for lane.

The baseline is a plain loop over the same files in this process: the same sniffing,
sandboxed extraction and extractive summary, with no web, queue or database
(`bench/_plain.py`). Where a round's time went is read back after it
(`bench/_readback.py`).

Headline: 1 worker over the plain loop (target ≥ 0.85); 2 workers over 1 worker
(target ≥ 1.7 on 2 cores; --full only, quick mode runs the 1-worker round alone).
In --full every phase runs twice (loop, 1 worker, 2 workers, 2 workers, 1 worker,
loop) and the faster of each counts, the same for all three, so that neither side of
a ratio gets a second chance the other does not; every round's figure is in
`all_rounds_per_min`.
`steps_ms` gives, per job, the median wait in the queue
and the median run time, read from the ledger.

Two plain loops also run at once, in two processes (after the first loop, and under
--full again before the last): `loop_pair_scaling` is what this machine gives two lanes of this
very work with nothing else running — the reading beside `scaling_2_vs_1`.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select

import docdigest.models  # noqa: F401  (registers every table for create_all)
from bench._corpus import cached, write_document
from bench._loadgen import UPLOAD_CONTENT_TYPE, Connection, file_body, post
from bench._plain import loop_pair, per_min, plain_loop
from bench._readback import read_back
from bench._servers import CountingMailbox, Served, bearer_token, smtp_server, uvicorn, workers
from bench._timeline import one_document
from bench.common import (
    arguments,
    cores_busy,
    cpu_parts_s,
    database,
    machine_busy_s,
    parts_used,
    postgres_admin_url,
    private_redis,
    report,
    run,
    tree_cpu_s,
)
from docdigest.core.db import create_engine
from docdigest.documents.models import Document, DocumentStatus
from docdigest.users.models import User

LOOP_RATIO = 0.85
SCALING = 1.7
DONE = (DocumentStatus.READY, DocumentStatus.FAILED)
#: How often a round checks whether its documents are done.
POLL_S = 0.5


async def through_docdigest(
    corpus: list[Path], worker_counts: list[int], redis_url: str, kind: str, tmp: Path
) -> list[dict[str, Any]]:
    """For each worker count: upload the corpus as a new user, wait until all is ready and mailed.

    One web process and database serve every round; each round starts its own workers.
    """
    async with database(kind, tmp) as url:
        with smtp_server() as (smtp_port, mailbox):
            env = {
                "DOCDIGEST_ENV": "development",
                "DOCDIGEST_DATA_DIR": str(tmp / "data"),
                "DOCDIGEST_DATABASE_URL": url,
                "DOCDIGEST_REDIS_URL": redis_url,
                "DOCDIGEST_QUEUE_NAME": f"bench:{uuid.uuid4().hex[:8]}",
                "DOCDIGEST_SMTP_HOST": "127.0.0.1",
                "DOCDIGEST_SMTP_PORT": str(smtp_port),
                "DOCDIGEST_WORKER_MAX_JOBS": "1",
                "DOCDIGEST_LOG_FORMAT": "json",
            }
            engine = create_engine(url)
            try:
                with uvicorn("docdigest.main:app_from_env", env, tmp / "web.log") as web:
                    return [
                        await one_round(corpus, count, env, web, engine, mailbox, tmp / str(n))
                        for n, count in enumerate(worker_counts)
                    ]
            finally:
                await engine.dispose()


async def one_round(
    corpus: list[Path],
    worker_count: int,
    env: dict[str, str],
    web: Served,
    engine: Any,
    mailbox: CountingMailbox,
    tmp: Path,
) -> dict[str, Any]:
    logs = tmp / f"round-{worker_count}"
    logs.mkdir(parents=True)
    booting = time.perf_counter()
    port = web.port
    with workers(worker_count, env, logs) as worker_pids:
        await wait_for_workers(
            env["DOCDIGEST_REDIS_URL"], env["DOCDIGEST_QUEUE_NAME"], worker_count
        )
        startup_s = time.perf_counter() - booting
        email = f"round-{tmp.name}-{worker_count}@example.com"
        token = bearer_token(port, email)
        user_id = await engine_scalar(engine, select(User.id).where(User.email == email))
        probe = None
        if worker_count == 1 and not (tmp.parent / "probe.pdf").exists():
            probe_paths = (
                write_document(tmp.parent / "probe.pdf", "pdf", pages=10, seed=1),
                write_document(tmp.parent / "probe-warm.pdf", "pdf", pages=10, seed=2),
            )
            probe = await one_document(port, token, engine, mailbox, email, probe_paths)
        mails_before = len(mailbox.arrivals(email))
        started_at = datetime.now(UTC)
        busy_before, web_before = machine_busy_s(), web.cpu_s()
        lanes_before, parts_before = tree_cpu_s(worker_pids), cpu_parts_s(worker_pids)
        started = time.perf_counter()
        await upload_all(port, token, corpus)
        uploaded_s = time.perf_counter() - started
        await wait_until(engine, user_id, started_at, len(corpus), mailbox, email, mails_before)
        polled_s = time.perf_counter() - started
        busy = cores_busy(busy_before, polled_s)
        split = cpu_split(
            machine=(busy_before, machine_busy_s()),
            workers=(lanes_before, tree_cpu_s(worker_pids)),
            web=(web_before, web.cpu_s()),
        )
        parts = parts_used(parts_before, cpu_parts_s(worker_pids))
    result = await read_back(engine, user_id, started_at, worker_count)
    elapsed = result.pop("last_ready_s") or polled_s
    return {
        "workers": worker_count,
        "elapsed_s": round(elapsed, 2),
        "uploads_done_s": round(uploaded_s, 2),
        "workers_startup_s": round(startup_s, 1),
        "per_min": per_min(corpus, elapsed),
        "cores_busy": busy,
        "cpu_s_by_process": split,
        "cpu_s_by_part": parts,
        "mails": len(mailbox.arrivals(email)) - mails_before,
        **result,
        **({"one_document": probe} if probe else {}),
    }


def cpu_split(**spans: tuple[float | None, float | None]) -> dict[str, float] | None:
    """CPU seconds used by the worker processes (with their extraction children), the
    web process, and the rest of the machine (PostgreSQL, Redis, the bench itself,
    anything else running), from (before, after) readings."""
    used = {
        name: after - before
        for name, (before, after) in spans.items()
        if before is not None and after is not None
    }
    if len(used) != len(spans):
        return None
    rest = used.pop("machine") - sum(used.values())
    return {name: round(value, 2) for name, value in {**used, "rest": rest}.items()}


def steps_vs_plain(
    phase: dict[str, Any] | None, plain: dict[str, Any] | None
) -> dict[str, float] | None:
    """A round's total time in each step over the plain loop's for the same corpus."""
    if not phase or not plain:
        return None
    ratios = {}
    for step in ("extract", "summarize"):
        done, bare = phase["work_ms"].get(step), plain["work_s"][step]
        if done and bare:
            ratios[step] = round(done["total_s"] / bare, 3)
    return ratios


def main_thread_ms_per_document(phase: dict[str, Any] | None, documents: int) -> float | None:
    """CPU ms a document cost the main threads of a phase: the loop's, or the workers'
    event loops (each document's mail included, since a round ends with the mails)."""
    parts = phase and phase.get("cpu_s_by_part")
    return round(parts["main"] / documents * 1000, 2) if parts else None


async def engine_scalar(engine: Any, statement: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(statement)


async def wait_for_workers(redis_url: str, queue: str, count: int, timeout_s: float = 90) -> None:
    """Until every worker has finished its startup (it registers itself last)."""
    redis = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout_s
        while await redis.hlen(f"{queue}:workers") < count:
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not start")
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()


async def upload_all(port: int, token: str, corpus: list[Path]) -> None:
    """Four uploads at a time, as a few people or a script would send them.

    Sent as raw HTTP/1.1 on four keep-alive connections (bench/_loadgen.py): the
    client shares the machine with what it measures, and an HTTP library's
    multipart encoding would cost it several times the CPU.
    """
    queue = list(reversed(corpus))
    host = f"127.0.0.1:{port}"

    async def sender() -> None:
        connection = await Connection.open("127.0.0.1", port)
        try:
            while queue:
                path = queue.pop()
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                body = file_body(path.name, path.read_bytes(), kind)
                request = post(host, "/api/documents", body, UPLOAD_CONTENT_TYPE, token)
                status, answer = await asyncio.wait_for(connection.exchange(request), 120)
                if status not in (200, 202):
                    raise RuntimeError(f"{path.name}: {status} {answer.decode(errors='replace')}")
        finally:
            connection.close()

    await asyncio.gather(*(sender() for _ in range(4)))


async def wait_until(
    engine: Any,
    user_id: int,
    since: datetime,
    count: int,
    mailbox: CountingMailbox,
    email: str,
    mails_before: int,
) -> None:
    """Until every document is ready or failed and each ready one's mail has arrived.

    One query every half second: the round's time comes from the documents' own
    `ready_at`, so polling more often would only take CPU from what is measured.
    """
    counts = select(
        func.count().filter(Document.status.in_(DONE)),
        func.count().filter(Document.status == DocumentStatus.READY),
    ).where(Document.user_id == user_id, Document.created_at >= since)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            done, ready = (await conn.execute(counts)).one()
        if done == count and len(mailbox.arrivals(email)) - mails_before >= ready:
            return
        await asyncio.sleep(POLL_S)
    raise TimeoutError("documents were not processed in time")


async def main() -> None:
    args = arguments(__doc__ or "")
    count, max_pages = (300, 200) if args.full else (6, 8)
    kind = "postgres" if postgres_admin_url() else "sqlite"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name, private_redis() as redis_url:
        tmp = Path(tmp_name)
        corpus = cached(count, max_pages)
        phases = {"corpus_s": round(time.perf_counter() - started, 1)}
        # --full runs each phase twice, in an order symmetric about the middle so that
        # a steady drift of the machine's speed favours none, and keeps the faster of
        # each: a neighbour's burst of load otherwise moves a ratio by ±0.1 from run to
        # run.
        loops = [await plain_loop(corpus)]
        pairs = [await asyncio.to_thread(loop_pair, count, max_pages)]
        phases["plain_loop_s"] = round(time.perf_counter() - started - sum(phases.values()), 1)
        # Quick mode skips the 2-worker round: starting workers is most of its time.
        counts = [1, 2, 2, 1] if args.full else [1]
        rounds = await through_docdigest(corpus, counts, redis_url, kind, tmp)
        phases["docdigest_s"] = round(time.perf_counter() - started - sum(phases.values()), 1)
        if args.full:
            pairs.append(await asyncio.to_thread(loop_pair, count, max_pages))
            loops.append(await plain_loop(corpus))
    loop = max(loops, key=lambda r: r["per_min"])
    one = max((r for r in rounds if r["workers"] == 1), key=lambda r: r["per_min"])
    two = max((r for r in rounds if r["workers"] == 2), key=lambda r: r["per_min"], default=None)
    probe = next((r.pop("one_document") for r in rounds if "one_document" in r), None)
    pages = sum(int(path.stem.rsplit("-", 1)[1].rstrip("p")) for path in corpus)
    pair = max(pairs, key=lambda r: r["per_min"], default=None)
    vs_loop = one["per_min"] / loop["per_min"]
    scaling = two["per_min"] / one["per_min"] if two else None
    report(
        name="pipeline",
        params={
            "documents": count,
            "pages_total": pages,
            "max_pages": max_pages,
            "kinds": sorted({path.suffix[1:] for path in corpus}),
            "database": kind,
            "worker_max_jobs": 1,
        },
        figure=one["per_min"],
        unit="documents/min",
        baseline=loop["per_min"],
        target=f">= {LOOP_RATIO}x the plain loop with 1 worker; 2 workers >= {SCALING}x 1 worker",
        meets=vs_loop >= LOOP_RATIO
        and scaling is not None
        and scaling >= SCALING
        and one["failed"] == loop["failed"],
        two_workers_per_min=two["per_min"] if two else None,
        scaling_2_vs_1=round(scaling, 3) if scaling is not None else None,
        # Two workers cannot keep more than every core busy: at most this many times
        # one worker, whatever the code does (cores_busy is the 1-worker round's), as
        # long as a document costs the rounds the same CPU, which a busy host can move.
        scaling_bound=round(cores / one["cores_busy"], 3)
        if (cores := os.cpu_count()) and one["cores_busy"]
        else None,
        # Two plain loops at once over one: the same ratio for the bare work, on this
        # machine in this run.
        loop_pair_scaling=round(pair["per_min"] / loop["per_min"], 3) if pair else None,
        # Two workers against two plain loops at once: what the job tier, the web process
        # and the databases leave of two lanes. Both targets together ask for at least
        # LOOP_RATIO * SCALING / loop_pair_scaling of it (bench/README.md).
        two_workers_vs_loop_pair=round(two["per_min"] / pair["per_min"], 3)
        if two and pair
        else None,
        # Each round's steps against the same work in the plain loop (one worker) and in
        # either loop of the pair (two workers): above 1, the steps themselves ran slower.
        steps_vs_plain={
            "one_worker": steps_vs_plain(one, loop),
            "two_workers": steps_vs_plain(two, pair),
        },
        # What the job tier itself costs a document in the workers' CPU, beside the
        # same reading for the loop, whose main thread only hands work to others.
        main_thread_cpu_ms_per_document={
            "plain_loop": main_thread_ms_per_document(loop, count),
            "one_worker": main_thread_ms_per_document(one, count),
            "two_workers": main_thread_ms_per_document(two, count),
        },
        plain_loop=loop,
        plain_loop_pair=pair,
        one_worker=one,
        two_workers=two,
        one_document=probe,
        elapsed_s=round(time.perf_counter() - started, 1),
        phases=phases,
        all_rounds_per_min={
            "plain_loop": [r["per_min"] for r in loops],
            "plain_loop_pair": [r["per_min"] for r in pairs],
            "one_worker": [r["per_min"] for r in rounds if r["workers"] == 1],
            "two_workers": [r["per_min"] for r in rounds if r["workers"] == 2],
        },
    )


if __name__ == "__main__":
    run(main())
