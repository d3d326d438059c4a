"""Where a pipeline round's time went, read back after it: the documents' outcomes,
each job's queue wait and run from the ledger, the lanes' idle time between jobs, and
the steps' own work from the documents' step timeline.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from sqlalchemy import select

from docdigest.documents.models import Document, DocumentStatus, DocumentStep
from docdigest.jobs.models import JobRun


async def read_back(
    engine: Any, user_id: int, started_at: datetime, workers: int
) -> dict[str, Any]:
    """Outcomes from the documents table, and where the time went: each job's queue
    wait and run from the ledger, the time the lanes spent between jobs, and within
    the runs the steps' own work (extracting, summarizing) from the documents' step
    timeline, so that what a round loses to the job tier and what it loses to slower
    work can be told apart."""
    async with engine.connect() as conn:
        documents = (
            await conn.execute(
                select(Document.id, Document.status, Document.ready_at).where(
                    Document.user_id == user_id, Document.created_at >= started_at
                )
            )
        ).all()
        subjects = [f"document:{d.id}" for d in documents]
        jobs = (
            await conn.execute(
                select(
                    JobRun.function, JobRun.enqueued_at, JobRun.started_at, JobRun.finished_at
                ).where(JobRun.subject.in_(subjects))
            )
        ).all()
        step_rows = (
            await conn.execute(
                select(DocumentStep.step, DocumentStep.started_at, DocumentStep.finished_at).where(
                    DocumentStep.document_id.in_([d.id for d in documents]),
                    DocumentStep.finished_at.is_not(None),
                    DocumentStep.error.is_(None),
                )
            )
        ).all()
    ready = [d.ready_at for d in documents if d.status == DocumentStatus.READY and d.ready_at]
    last_ready = max(ready, default=None)
    steps: dict[str, dict[str, list[float]]] = {}
    for row in jobs:
        if row.started_at is None or row.finished_at is None:
            continue
        step = steps.setdefault(row.function, {"queue_wait": [], "run": [], "in_round": []})
        step["queue_wait"].append((row.started_at - row.enqueued_at).total_seconds() * 1000)
        step["run"].append((row.finished_at - row.started_at).total_seconds() * 1000)
        if last_ready is not None and row.started_at < last_ready:
            # The part of the run the round's clock saw (it stops at the last ready).
            in_round = min(row.finished_at, last_ready) - row.started_at
            step["in_round"].append(in_round.total_seconds() * 1000)
    work: dict[str, list[float]] = {}
    for row in step_rows:
        work.setdefault(row.step, []).append(
            (row.finished_at - row.started_at).total_seconds() * 1000
        )
    runs = [(row.started_at, row.finished_at) for row in jobs if row.started_at and row.finished_at]
    return {
        "ready": len(ready),
        "failed": sum(1 for d in documents if d.status == DocumentStatus.FAILED),
        "last_ready_s": (last_ready - started_at).total_seconds() if last_ready else None,
        "lanes": lanes(runs, workers, started_at, last_ready) if last_ready else None,
        "steps_ms": {
            name: {
                "jobs": len(values["run"]),
                "queue_wait_p50": round(statistics.median(values["queue_wait"]), 1),
                "run_p50": round(statistics.median(values["run"]), 1),
                "run_total_s": round(sum(values["run"]) / 1000, 2),
                "in_round_jobs": len(values["in_round"]),
                "in_round_s": round(sum(values["in_round"]) / 1000, 2),
            }
            for name, values in sorted(steps.items())
        },
        "work_ms": {
            name: {
                "steps": len(values),
                "p50": round(statistics.median(values), 1),
                "total_s": round(sum(values) / 1000, 2),
            }
            for name, values in sorted(work.items())
        },
    }


def lanes(
    runs: list[tuple[datetime, datetime]], workers: int, start: datetime, end: datetime
) -> dict[str, Any]:
    """Where the round's lanes were idle, from its jobs' runs (start, finish).

    A worker runs one job at a time, so the runs are laid out on `workers` lanes, each
    on the lane that has been free longest (the ledger does not say which worker ran a
    job; the total idle time is the same whichever lane a run lands on). Only the part
    the round's clock saw, from `start` to `end`, counts: the wait before each lane's
    first job (the first uploads), the gaps between jobs (a job's end and the claim of
    the next), and a lane's idle time after its last job while another still works.
    """
    free_since = [start] * workers
    before_s = after_s = 0.0
    gaps: list[float] = []
    started = [False] * workers
    for run_start, run_end in sorted(r for r in runs if r[0] < end):
        lane = min(range(workers), key=lambda n: free_since[n])
        idle = max((run_start - free_since[lane]).total_seconds(), 0.0)
        if started[lane]:
            gaps.append(idle)
        else:
            before_s += idle
            started[lane] = True
        free_since[lane] = max(free_since[lane], run_end)
    for lane, since in enumerate(free_since):
        idle = max((end - since).total_seconds(), 0.0)
        if started[lane]:
            after_s += idle
        else:
            before_s += idle
    return {
        "before_first_job_s": round(before_s, 3),
        "between_jobs_s": round(sum(gaps), 3),
        "between_jobs_p50_ms": round(statistics.median(gaps) * 1000, 2) if gaps else None,
        "after_last_job_s": round(after_s, 3),
    }
