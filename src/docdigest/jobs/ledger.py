"""Worker-side ledger writes, batched: one transaction carries many attempts' starts and ends.

One writer task per worker process drains two lists: notes (an attempt began, an
attempt ended; nobody waits for them, they are written with the next batch), and the
rare starts that must ask the ledger first (a job pushed without the ledger's note,
such as a cron job). What a batch writes, and how, is `jobs/ledger_batch.py`; this
module decides when. One transaction at a time per process means no lock contention
inside a worker (SQLite) and one commit per batch (both engines). A clean shutdown
flushes; after a crash the reconciler rebuilds lost ends from the results Arq keeps.

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
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from docdigest.core.db import sqlite_pragmas
from docdigest.jobs.ledger_batch import Begun, Ended, Started, StartRequest, write_batch

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
            answers: list[Started | None] = await self._conn.run_sync(write_batch, notes, starts)
            return answers

    def _sqlite_batch(
        self, notes: list[Begun | Ended], starts: list[StartRequest]
    ) -> list[Started | None]:
        if self._sync_engine is None:
            url = self.engine.url.set(drivername="sqlite")
            self._sync_engine = create_sync_engine(url, connect_args={"timeout": 30})
            event.listen(self._sync_engine, "connect", sqlite_pragmas)
        with self._sync_engine.begin() as conn:
            return write_batch(conn, notes, starts)

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
