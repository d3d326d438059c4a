"""SQLite through aiosqlite with one thread hand-off per statement.

aiosqlite runs each connection in its own thread, and SQLAlchemy's adapter crosses
into that thread four times per statement (open a cursor, execute, fetch the rows,
close the cursor) and once more for every COMMIT and ROLLBACK, even when no
transaction is open. Each crossing wakes a thread and then the event loop again:
tens of microseconds on a laptop, 150 to 250 µs of CPU on a small virtual machine,
where it was the largest single cost of an upload.

This dialect does the same work in one crossing per statement (cursor, execute,
fetch and close run together in the connection's thread) and skips COMMIT and
ROLLBACK when SQLite has no transaction open, which is what they would do there
anyway.

It also queues a process's writers itself. SQLite lets one connection write at a
time, and a connection that finds the lock taken sleeps in SQLite's busy handler,
for up to 100 ms between tries, however soon the lock is free again; under a burst
of uploads that made some requests wait for seconds while the CPU sat idle. Here a
connection takes the process's write lock (an asyncio lock per database file and
event loop, so first come, first served) before the statement that opens a write
transaction, and gives it back at COMMIT or ROLLBACK. The busy handler still
arbitrates between processes (the web app and the workers).

And it finishes what a background checkpoint began (`core/checkpoints.py`): the first
writer after one copies the few pages appended meanwhile, in its own hand-off, before
it opens its transaction. With no other writer of the process between that copy and
its transaction, it finds the log all copied and starts it over.

Everything else is SQLAlchemy's aiosqlite dialect. `create_engine` picks it for
every `sqlite+aiosqlite` URL.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import weakref
from typing import Any, cast

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.util import EMPTY_DICT

DRIVER = "docdigest_aiosqlite"

_Description = tuple[tuple[Any, ...], ...] | None
# pysqlite opens a transaction (BEGIN DEFERRED) before these statements and no others.
_OPENS_TRANSACTION = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


#: Copies what it can of the log into the database, beside the writers.
PASSIVE_CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"
#: Databases whose log a background checkpoint has copied since their last writer.
_copied_in_background: set[str] = set()


def log_copied(database: str) -> None:
    """A checkpoint copied `database`'s log: its next writer copies the rest."""
    _copied_in_background.add(database)


def write_lock(database: str) -> asyncio.Lock:
    """The lock this event loop's writers to `database` queue on."""
    locks = _write_locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(database, asyncio.Lock())


def _opens_transaction(operation: str) -> bool:
    return operation.lstrip()[:7].upper().startswith(_OPENS_TRANSACTION)


def _run(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool, copy_log: bool
) -> tuple[_Description, list[Any], int, int | None]:
    """One statement, start to finish, in the connection's own thread."""
    if copy_log:
        # The statement goes on whatever this gives: a copy is only worth a try.
        with contextlib.suppress(sqlite3.Error):
            connection.execute(PASSIVE_CHECKPOINT).fetchall()
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class LeanCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose results arrive with its one execute call; nothing to close."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: _Description = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._cursor = None  # type: ignore[assignment]  # no aiosqlite cursor is opened

    @property
    def description(self) -> _Description:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        return await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        aio, adapted = self._connection, cast(LeanConnection, self._adapt_connection)
        copy_log = False
        if not adapted.holds_write_lock and _opens_transaction(operation):
            await adapted.take_write_lock()
            copy_log = adapted.database in _copied_in_background
            _copied_in_background.discard(adapted.database)
        try:
            async with adapted._execute_mutex:
                description, rows, rowcount, lastrowid = await aio._execute(
                    _run, aio._conn, operation, parameters, many, copy_log
                )
        finally:
            if not adapted.in_transaction():
                adapted.give_back_write_lock()
        self._description = description
        self._rows = collections.deque(rows)
        self._rowcount = rowcount
        self._lastrowid = lastrowid


class LeanConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_write_lock", "database")

    _cursor_cls = LeanCursor

    def __init__(self, dbapi: Any, connection: Any, database: str) -> None:
        super().__init__(dbapi, connection)
        self.database = database
        self._write_lock: asyncio.Lock | None = None

    def in_transaction(self) -> bool:
        # Reads one flag of the sqlite3 connection (sqlite3_get_autocommit); safe
        # from any thread while no statement runs on it, which holds here because
        # a pooled connection serves one task at a time.
        sqlite: sqlite3.Connection | None = self._connection._connection
        return sqlite is not None and sqlite.in_transaction

    @property
    def holds_write_lock(self) -> bool:
        return self._write_lock is not None

    async def take_write_lock(self) -> None:
        lock = write_lock(self.database)
        await lock.acquire()
        self._write_lock = lock

    def give_back_write_lock(self) -> None:
        lock, self._write_lock = self._write_lock, None
        if lock is not None:
            lock.release()

    def rollback(self) -> None:
        try:
            if self.in_transaction():
                super().rollback()
        finally:
            self.give_back_write_lock()

    def commit(self) -> None:
        if self.in_transaction():
            super().commit()
        self.give_back_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_back_write_lock()

    def terminate(self) -> None:
        try:
            super().terminate()
        finally:
            self.give_back_write_lock()


class LeanDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> LeanConnection:
        database = str(arg[0] if arg else kw.get("database", ""))
        return LeanConnection(self, super().connect(*arg, **kw)._connection, database)


class LeanDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> LeanDBAPI:
        return LeanDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "LeanDialect")


def lean_url(database_url: str) -> URL:
    """`sqlite+aiosqlite://…` with this module's driver; other URLs unchanged."""
    url = make_url(database_url)
    if url.drivername == "sqlite+aiosqlite":
        return url.set(drivername=f"sqlite+{DRIVER}")
    return url
