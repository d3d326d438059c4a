"""SQLite's WAL checkpoints, run beside a process's writers instead of by a commit.

In WAL mode a commit appends its pages to the `-wal` log, and by default the commit
that takes the log past 1,000 pages then copies them all into the database and syncs
it before it returns. A lone upload's commit writes about 13 pages, so at 200 uploads
a second one commit in 75 did that, with the process's write lock held
(`core/sqlite.py`): every upload behind it waited for the copy and the disk.

A checkpoint needs no write lock. SQLite lets one copy the log while writers go on
appending to it (a "passive" checkpoint), but the log starts over only once a writer
finds it all copied, and with writers appending all the while it never is: the log
would grow for as long as the writes go on. So each second a process that writes
copies the log beside its writers, and its next writer copies the few pages appended
meanwhile, in the hand-off of its first statement (`core/sqlite.py`), then finds the
log all copied and starts it over. A writer of another process that appends between
the two leaves the log to grow until the next second; SQLite checkpoints once more
when the last connection closes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from docdigest.core.sqlite import PASSIVE_CHECKPOINT, log_copied

log = logging.getLogger(__name__)

#: How often the log is copied into the database: the most writes it holds, in time.
CHECKPOINT_EVERY_S = 1.0
TASK_NAME = "sqlite-checkpoints"


class WalCheckpoints:
    """The checkpoints of one SQLite database file, for the process that writes it."""

    def __init__(self, database: str, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self.database = database
        self.every_s = every_s
        # Opened by the first checkpoint, then used from the executor's threads, one
        # call at a time.
        self._connection: sqlite3.Connection | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start_for(
        cls, engine: AsyncEngine, every_s: float = CHECKPOINT_EVERY_S
    ) -> WalCheckpoints | None:
        """Checkpoints for `engine`'s database from now on, on the running event loop;
        None unless it is an SQLite file. Call before the engine first connects: its
        connections are told as they open not to checkpoint at commit."""
        if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
            return None
        # The file name the engine's connections open, which keys their write lock.
        (database, *_), _options = engine.dialect.create_connect_args(engine.url)
        event.listen(engine.sync_engine, "connect", _no_checkpoints_at_commit)
        checkpoints = cls(str(database), every_s)
        checkpoints.start()
        return checkpoints

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=TASK_NAME)

    async def stop(self) -> None:
        """Stop once the checkpoint under way, if any, is done."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        if self._connection is not None:
            self._connection.close()

    async def checkpoint(self) -> None:
        """Copy the log into the database; the next writer copies what was appended
        meanwhile and starts the log over."""
        try:
            await asyncio.to_thread(self._passive)
        except sqlite3.Error as exc:
            # Another try comes in a moment; meanwhile the log only grows.
            log.warning("WAL checkpoint failed", extra={"error": str(exc)})
            return
        log_copied(self.database)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.every_s)
                return
            except TimeoutError:
                await self.checkpoint()

    def _passive(self) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.database, check_same_thread=False, isolation_level=None
            )
        # SQLite releases the GIL while it copies and syncs.
        self._connection.execute(PASSIVE_CHECKPOINT).fetchall()


def _no_checkpoints_at_commit(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
