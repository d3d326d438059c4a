"""What one batch of the ledger writes, in one transaction: the notes of attempts
that began and ended, and the starts that must ask the ledger first.

`jobs/ledger.py` decides when a batch is written; this module is what it writes.
A round's notes of each kind are one executemany statement, and their attempt rows
one more, so a batch of hundreds of jobs is a handful of statements.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from docdigest.core.db import utcnow
from docdigest.jobs.models import FINISHED_STATUSES, AttemptOutcome, JobAttempt, JobRun, JobStatus


@dataclass(frozen=True)
class Started:
    """What the ledger knows about an attempt that may run."""

    request_id: str | None
    parent_id: str | None
    subject: str | None
    series: int
    started_at: datetime


@dataclass(frozen=True)
class StartRequest:
    job_id: str
    function: str
    kwargs: dict[str, Any]
    defaults: dict[str, Any]
    answer: asyncio.Future[Started | None]


@dataclass(frozen=True)
class Begun:
    """An attempt that started without asking (the push carried the ledger's note)."""

    job_id: str
    started_at: datetime


@dataclass(frozen=True)
class Ended:
    job_id: str
    series: int
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    status: JobStatus
    retry_at: datetime | None = None
    retry_delay_s: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None


# What an attempt's end writes to its job row (_END and _RAN below).
_ENDED_VALUES: dict[str, Any] = {
    "status": bindparam("b_status"),
    "attempts": bindparam("b_attempt"),
    "finished_at": bindparam("b_finished"),
    "scheduled_at": func.coalesce(
        bindparam("b_retry_at", type_=JobRun.scheduled_at.type), JobRun.scheduled_at
    ),
    "error_type": bindparam("b_error_type"),
    "error_message": bindparam("b_error_message"),
    "error_traceback": bindparam("b_error_traceback"),
}

# Applies only while the row is still on this attempt: a requeue, or the next
# attempt's start, has changed started_at, and a late write must not undo it.
# An operator's cancel stands too; the attempt row still tells what really happened.
_END = (
    update(JobRun)
    .where(
        JobRun.id == bindparam("b_id"),
        JobRun.started_at == bindparam("b_started"),
        JobRun.status != JobStatus.CANCELLED,
    )
    .values(_ENDED_VALUES)
)


# Spelled out rather than NOT IN (...): an expanding IN cannot run as executemany.
_UNFINISHED = [JobRun.status != status for status in FINISHED_STATUSES]

_BEGIN = (
    update(JobRun)
    .where(JobRun.id == bindparam("b_id"), *_UNFINISHED)
    .values(status=JobStatus.RUNNING, started_at=bindparam("b_started"), finished_at=None)
)

# An attempt that began and ended within one batch: _BEGIN then _END in one
# statement. _END's condition holds exactly when _BEGIN applied (it set the
# started_at _END looks for, and a row it could update was not cancelled), so
# _BEGIN's condition alone decides.
_RAN = (
    update(JobRun)
    .where(JobRun.id == bindparam("b_id"), *_UNFINISHED)
    .values({"started_at": bindparam("b_started"), **_ENDED_VALUES})
)


@dataclass(frozen=True)
class _Ran:
    """A Begun note and its Ended note from the same batch, written as one."""

    ended: Ended

    @property
    def job_id(self) -> str:
        return self.ended.job_id


def write_batch(
    conn: Connection, notes: list[Begun | Ended], starts: list[StartRequest]
) -> list[Started | None]:
    # Notes first, in order: a retry's next attempt may be in this same batch.
    for round_ in _rounds(_pair(notes)):
        begun = [n for n in round_ if isinstance(n, Begun)]
        ran = [n.ended for n in round_ if isinstance(n, _Ran)]
        ended = [n for n in round_ if isinstance(n, Ended)]
        if begun:
            conn.execute(_BEGIN, [{"b_id": n.job_id, "b_started": n.started_at} for n in begun])
        if ran:
            conn.execute(_RAN, [_end_params(e) for e in ran])
        if ended:
            conn.execute(_END, [_end_params(e) for e in ended])
        if ran or ended:
            conn.execute(insert(JobAttempt), [_attempt_row(e) for e in ran + ended])
    return _write_starts(conn, starts)


def _pair(notes: list[Begun | Ended]) -> list[Begun | Ended | _Ran]:
    """Each Begun whose own Ended is the next note about that job becomes one _Ran,
    in the Ended's place: short jobs then take one statement instead of two, and a
    batch is not split into a round per handful of jobs."""
    paired: list[Begun | Ended | _Ran | None] = []
    open_begun: dict[str, int] = {}  # job id -> index of its latest unpaired Begun
    for note in notes:
        if isinstance(note, Begun):
            open_begun[note.job_id] = len(paired)
            paired.append(note)
            continue
        index = open_begun.pop(note.job_id, None)
        if index is not None:
            begun = paired[index]
            if isinstance(begun, Begun) and begun.started_at == note.started_at:
                paired[index] = None
                paired.append(_Ran(note))
                continue
        paired.append(note)
    return [n for n in paired if n is not None]


def _rounds(notes: list[Begun | Ended | _Ran]) -> list[list[Begun | Ended | _Ran]]:
    """Split notes so that no job appears twice in a round (its order then holds)."""
    rounds: list[list[Begun | Ended | _Ran]] = []
    current: list[Begun | Ended | _Ran] = []
    seen: set[str] = set()
    for note in notes:
        if note.job_id in seen:
            rounds.append(current)
            current, seen = [], set()
        current.append(note)
        seen.add(note.job_id)
    if current:
        rounds.append(current)
    return rounds


def _write_starts(conn: Connection, starts: list[StartRequest]) -> list[Started | None]:
    if not starts:
        return []
    now = utcnow()
    ids = [s.job_id for s in starts]
    rows = conn.execute(
        update(JobRun)
        .where(JobRun.id.in_(ids), JobRun.status.not_in(list(FINISHED_STATUSES)))
        .values(status=JobStatus.RUNNING, started_at=now, finished_at=None)
        .returning(JobRun.id, JobRun.request_id, JobRun.parent_id, JobRun.subject, JobRun.series)
    )
    found = {
        row.id: Started(row.request_id, row.parent_id, row.subject, row.series, now) for row in rows
    }
    missing = [s for s in starts if s.job_id not in found]
    if missing:
        known = set(
            conn.scalars(select(JobRun.id).where(JobRun.id.in_([s.job_id for s in missing])))
        )
        for request in missing:
            if request.job_id in known:
                continue
            # Pushed without a ledger row (a cron job, or `arq` by hand): record it now.
            conn.execute(
                insert(JobRun).values(
                    id=request.job_id,
                    function=request.function,
                    args=request.kwargs,
                    status=JobStatus.RUNNING,
                    attempts=0,
                    series=1,
                    started_at=now,
                    enqueued_at=now,
                    **request.defaults,
                )
            )
            found[request.job_id] = Started(None, None, request.defaults.get("subject"), 1, now)
    return [found.get(s.job_id) for s in starts]


def _end_params(e: Ended) -> dict[str, Any]:
    return {
        "b_id": e.job_id,
        "b_started": e.started_at,
        "b_status": e.status,
        "b_attempt": e.attempt,
        "b_finished": e.finished_at if e.status in FINISHED_STATUSES else None,
        "b_retry_at": e.retry_at,
        "b_error_type": e.error_type,
        "b_error_message": e.error_message,
        "b_error_traceback": e.error_traceback,
    }


def _attempt_row(e: Ended) -> dict[str, Any]:
    return {
        "job_id": e.job_id,
        "series": e.series,
        "attempt": e.attempt,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "outcome": e.outcome,
        "retry_delay_s": e.retry_delay_s,
        "error_type": e.error_type,
        "error_message": e.error_message,
        "error_traceback": e.error_traceback,
    }
