"""Worker-side ledger writes, batched: one transaction carries many attempts' starts and ends.

One writer task per worker process drains two lists: notes (an attempt began,
an attempt ended; nobody waits for them, they are written with the next batch),
and the rare starts that must ask the ledger
first (a job pushed without the ledger's note, such as a cron job). One
transaction at a time per process means no lock contention inside a worker
(SQLite) and one commit per batch (both engines). A clean shutdown flushes;
after a crash the reconciler rebuilds lost ends from the results Arq keeps.

Notes gather while the worker runs jobs, for `flush_s` at most: a busy worker
writes one batch where it would otherwise write a transaction for every job or
two, and every batch's statements take CPU from its jobs. An idle worker writes
them within `IDLE_FLUSH_S`, when a batch costs no job anything; and as soon as
`MAX_BATCH_NOTES` wait, whatever the worker is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, func, insert, select, update
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from docdigest.core.db import sqlite_pragmas, utcnow
from docdigest.jobs.models import FINISHED_STATUSES, AttemptOutcome, JobAttempt, JobRun, JobStatus

log = logging.getLogger("docdigest.jobs")

#: Notes kept in memory at most while the database is unreachable.
MAX_PENDING_NOTES = 20_000
#: Tries of one batch before its notes are given up to the reconciler.
KEEP_TRYING = 30
#: Notes that are written at once rather than at the end of `flush_s`: a batch's
#: statements are built on the event loop, so a busy worker's batches stay this
#: small (a job is two notes).
MAX_BATCH_NOTES = 500
#: How soon notes are written while the worker runs no job (and how often a busy
#: worker looks again).
IDLE_FLUSH_S = 0.05


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


class Ledger:
    def __init__(
        self, engine: AsyncEngine, *, flush_s: float, busy: Callable[[], bool] | None = None
    ) -> None:
        """`busy()` says whether the worker is running a job; without it, notes always
        gather for `flush_s`."""
        self.engine = engine
        self.flush_s = flush_s
        self._busy = busy
        self._gathering_since = 0.0
        self._starts: list[StartRequest] = []
        # Begun and Ended notes, in the order they happened; nobody waits for them.
        self._notes: list[Begun | Ended] = []
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # One connection kept for the worker's life: no pool checkout, ping or
        # reset-on-return per batch.
        self._conn: AsyncConnection | None = None
        self._sync_engine: Engine | None = None
        self._failures = 0

    async def start(
        self, job_id: str, function: str, kwargs: dict[str, Any], defaults: dict[str, Any]
    ) -> Started | None:
        """Mark the job running; None when it must not run (finished or cancelled)."""
        answer: asyncio.Future[Started | None] = asyncio.get_running_loop().create_future()
        self._starts.append(StartRequest(job_id, function, kwargs, defaults, answer))
        self._wake_writer()
        return await answer

    def record_start(self, job_id: str, started: Started) -> None:
        self._note(Begun(job_id, started.started_at))

    def end(self, ended: Ended) -> None:
        self._note(ended)

    def _note(self, note: Begun | Ended) -> None:
        self._notes.append(note)
        if self.flush_s <= 0 or len(self._notes) >= MAX_BATCH_NOTES:
            self._wake_writer()
        elif self._timer is None:
            self._gather()

    async def close(self) -> None:
        while self._writer is not None and not self._writer.done():
            with contextlib.suppress(Exception):
                await self._writer
        if self._notes:
            self._wake_writer()
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    await self._writer
        if self._timer is not None:
            self._timer.cancel()
        await self._drop_connection()

    async def _in_transaction(
        self, notes: list[Begun | Ended], starts: list[StartRequest]
    ) -> list[Started | None]:
        if self.engine.dialect.name == "sqlite":
            # aiosqlite hops to its thread for every call (cursor, execute, fetch,
            # commit ...); a plain sqlite3 connection in a thread hops once per batch.
            return await asyncio.to_thread(self._sqlite_batch, notes, starts)
        if self._conn is None:
            self._conn = await self.engine.connect()
        async with self._conn.begin():
            answers: list[Started | None] = await self._conn.run_sync(_write_batch, notes, starts)
            return answers

    def _sqlite_batch(
        self, notes: list[Begun | Ended], starts: list[StartRequest]
    ) -> list[Started | None]:
        if self._sync_engine is None:
            url = self.engine.url.set(drivername="sqlite")
            self._sync_engine = create_sync_engine(url, connect_args={"timeout": 30})
            event.listen(self._sync_engine, "connect", sqlite_pragmas)
        with self._sync_engine.begin() as conn:
            return _write_batch(conn, notes, starts)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        sync_engine, self._sync_engine = self._sync_engine, None
        if sync_engine is not None:
            sync_engine.dispose()

    def _gather(self) -> None:
        """Write the waiting notes once the worker is idle, or `flush_s` from now."""
        loop = asyncio.get_running_loop()
        self._gathering_since = loop.time()
        delay = self.flush_s if self._busy is None else min(IDLE_FLUSH_S, self.flush_s)
        self._timer = loop.call_later(delay, self._look)

    def _look(self) -> None:
        loop = asyncio.get_running_loop()
        left_s = self._gathering_since + self.flush_s - loop.time()
        if self._busy is not None and self._busy() and left_s > 0:
            self._timer = loop.call_later(min(IDLE_FLUSH_S, left_s), self._look)
            return
        self._timer = None
        self._wake_writer()

    def _wake_writer(self) -> None:
        # A pending flush timer would wake the writer again for nothing, or after close().
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self._starts or self._notes:
            starts, self._starts = self._starts, []
            notes, self._notes = self._notes, []
            try:
                answers = await self._in_transaction(notes, starts)
            except Exception as exc:
                log.exception("ledger write failed", extra={"starts": len(starts)})
                await self._drop_connection()
                for request in starts:
                    request.answer.set_exception(exc)
                self._failures += 1
                if self._failures < KEEP_TRYING:
                    self._notes = (notes + self._notes)[-MAX_PENDING_NOTES:]
                else:
                    # Not the database being away for a moment: let the reconciler repair.
                    log.error("ledger notes dropped", extra={"notes": len(notes)})
                    self._failures = 0
                await asyncio.sleep(1)
                if not self._starts:
                    return
                continue
            self._failures = 0
            for request, started in zip(starts, answers, strict=True):
                request.answer.set_result(started)
            if not self._starts and 0 < len(self._notes) < MAX_BATCH_NOTES and self.flush_s > 0:
                # Only a few notes left: give them a moment to gather into a bigger batch.
                if self._timer is None:
                    self._gather()
                return


def _write_batch(
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
