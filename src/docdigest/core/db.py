"""Database engine, session factory and the request-scoped session dependency.

Rows read and written with Core statements, without a session's unit of work, are
`core/rows.py`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from docdigest.core.sqlite import lean_url

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every engine (SQLite drops the offset, so we store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


#: A pooled server connection idle for longer than this is checked before it is used.
PING_AFTER_IDLE_S = 5.0


def create_engine(
    database_url: str, *, pool_size: int = 10, ping_after_idle_s: float = PING_AFTER_IDLE_S
) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        engine = create_async_engine(lean_url(database_url), connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    engine = create_async_engine(database_url, pool_size=pool_size, max_overflow=pool_size)
    ping_when_idle(engine, ping_after_idle_s)
    return engine


def ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Check a pooled connection at checkout when it has sat idle for `idle_s` or more.

    SQLAlchemy's `pool_pre_ping` checks every checkout, which on asyncpg is three round
    trips (BEGIN, an empty query, ROLLBACK): 8 % of an upload's CPU and more of a short
    job's. Connections die while idle (a database restart, an idle timeout on the
    server or a firewall), so those are the ones checked; a dead one is replaced before
    the request sees it. One used a moment ago only dies with the server itself, and
    then the statements in flight fail as well: the first error resets the pool.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < idle_s:
            return  # new, or used a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out another (a new one).
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web and worker processes read while one writes; busy_timeout
    # makes a writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def create_tables(database_url: str) -> None:
    """Every table, straight from the models, in an empty database: for tests and
    benchmarks. A deployment's schema comes from the migrations (`docdigest migrate`)."""
    # Late: docdigest.models imports this module. It puts every table on Base.metadata.
    import docdigest.models  # noqa: F401

    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def lookup_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for a short lookup, without a session (its unit of work and ORM
    loading cost more than the query itself), committed when the block ends.

    On PostgreSQL each statement commits on its own: one round trip instead of BEGIN,
    the query and COMMIT. SQLite opens no transaction for a read anyway, and changing
    its mode would cost two hand-offs to the connection's thread, so a write there
    opens one as usual.
    """
    async with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn
        await conn.commit()


def create_sessionmaker(engine: AsyncEngine, **info: Any) -> async_sessionmaker[AsyncSession]:
    """`info` travels on every session (the job tier keeps its queue there)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


AfterCommit = Callable[[], Awaitable[object]]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction commits; dropped on rollback."""
    session.info.setdefault("after_commit", []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run what waited for the commit (such as pushing jobs to the queue)."""
    await session.commit()
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        await callback()


async def rollback(session: AsyncSession) -> None:
    session.info.pop("after_commit", None)
    await session.rollback()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the route returns.

    Declared with scope="function" so the commit happens before the response is
    sent: a 2xx means the change is durable and its jobs are on the queue.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await rollback(session)
            raise
        await commit(session)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
