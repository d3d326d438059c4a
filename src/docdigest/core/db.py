"""Database engine, session factory and the request-scoped session dependency."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, Executable, MetaData, Table, bindparam, event, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapper
from sqlalchemy.orm.attributes import instance_state
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


def dialect_insert(dialect: str, target: type[Base] | Table) -> PgInsert | SqliteInsert:
    """An INSERT on the `dialect` database ("sqlite" or "postgresql") that takes an ON
    CONFLICT clause (`on_conflict_do_nothing`, `on_conflict_do_update`): a row a unique
    constraint already holds is left alone, or updated, instead of failing the
    transaction, so no SAVEPOINT and RELEASE are needed around it. Both dialects spell
    it alike."""
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    return insert(target)


_T = TypeVar("_T", bound=Base)


@functools.cache
def _insert_returning(dialect: str, table: Table) -> Executable:
    # Built once per table: SQLAlchemy keeps a statement's cache key on the statement
    # object, so a shared one skips recomputing it (and the values come as parameters).
    return dialect_insert(dialect, table).on_conflict_do_nothing().returning(*table.c)


async def add_unless_exists(
    session: AsyncSession, model: type[_T], row: dict[str, Any]
) -> _T | None:
    """INSERT … ON CONFLICT DO NOTHING of `row` now, returned as a persistent instance
    in `session` (None when a unique key already holds such a row)."""
    added = await add_all_unless_exist(session, model, [row])
    return added[0] if added else None


async def add_all_unless_exist(
    session: AsyncSession, model: type[_T], rows: Sequence[dict[str, Any]]
) -> list[_T]:
    """INSERT … ON CONFLICT DO NOTHING of `rows` in one statement, now; the rows it
    inserted come back as persistent instances in `session`, in no promised order (a
    row a unique key already held is left out, so callers match them up by a key).

    One Core statement returning every column: no unit-of-work flush at commit and
    no ORM bookkeeping for the insert, which on the upload path cost more than the
    statement itself. Later changes to the instances are flushed as usual.
    """
    if not rows:
        return []
    statement = _insert_returning(session.get_bind().dialect.name, model.__table__)
    returned = (await session.execute(statement, _many(rows))).all()
    added = []
    for row in returned:
        instance = detached(model, row._mapping)
        session.add(instance)
        added.append(instance)
    return added


async def load(session: AsyncSession, model: type[_T], primary_key: Any) -> _T | None:
    """The row of `model` with this (single-column) primary key, as a persistent
    instance in `session`; None when there is none. For a session that does not hold
    the row yet, as a job's own session at its start: one that does refuses the second
    instance with an error.

    `session.get` builds its query anew for each call and loads the row through the
    ORM's full machinery; this reads it with a statement built once per table, on the
    session's connection, and builds the instance as `detached` does: a document in
    0.29 ms of CPU against 0.43 ms on PostgreSQL, 0.18 against 0.30 on SQLite
    (docs/performance.md, "a forty-second machine"). No relationship is loaded;
    reading one would load it lazily, which an async session refuses with an error.
    """
    connection = await session.connection()
    statement = _by_primary_key(model.__table__)
    row = (await connection.execute(statement, {"primary_key": primary_key})).first()
    if row is None:
        return None
    instance = detached(model, row._mapping)
    session.add(instance)
    return instance


@functools.cache
def _by_primary_key(table: Table) -> Executable:
    [column] = table.primary_key.columns
    return select(*table.c).where(column == bindparam("primary_key"))


def _many(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | dict[str, Any]:
    """A statement's parameters for `rows`: one row goes as a plain execute, cheaper
    than the executemany path."""
    return list(rows) if len(rows) > 1 else rows[0]


def detached(model: type[_T], row: Mapping[Any, Any]) -> _T:
    """An instance of `model` for a row read with a Core statement (`row` maps each of
    the table's columns to its value), as if a session had loaded it and closed since:
    no ORM loading and no session. `session.add()` makes it persistent in a session.

    Built as the ORM's own loading builds an instance: a new instance of the class
    without `__init__`, its attributes written into its state's dict and its identity
    key set. Calling the constructor and then `make_transient_to_detached` cost 52 µs
    for a document, this 4 µs: the constructor fires an attribute event for every
    column, which the second call then undoes.
    """
    mapper = model.__mapper__
    columns, primary_key = _columns_of(mapper)
    instance: _T = mapper.class_manager.new_instance()
    state = instance_state(instance)
    state.dict.update({key: row[column] for key, column in columns})
    state.key = mapper.identity_key_from_primary_key(tuple(row[column] for column in primary_key))
    return instance


@functools.cache
def _columns_of(mapper: Mapper[Any]) -> tuple[list[tuple[str, Any]], list[Any]]:
    """A mapper's attributes with their columns, and its primary key's columns."""
    columns = [(attr.key, attr.columns[0]) for attr in mapper.column_attrs]
    return columns, list(mapper.primary_key)


_P = TypeVar("_P", bound=Base)
_C = TypeVar("_C", bound=Base)
Children = Callable[[Mapping[Any, Any]], list[dict[str, Any]]]


async def insert_with_children(
    conn: AsyncConnection,
    parent: type[_P],
    rows: Sequence[dict[str, Any]],
    child: type[_C],
    children: Children,
) -> tuple[list[_P], list[_C]]:
    """INSERT … ON CONFLICT DO NOTHING of `rows` of `parent`, then of the rows of
    `child` that `children(row)` gives for each row inserted (`row` has its new
    primary key): a row a unique key already holds is left out, and so are its
    children. One statement a table, in the caller's transaction on `conn`, and no
    session (its unit of work costs more than the statements; docs/performance.md,
    "a twenty-sixth machine"). Returns what was inserted, as detached instances, in
    no promised order.
    """
    if not rows:
        return [], []
    dialect = conn.dialect.name
    added = (await conn.execute(_insert_returning(dialect, parent.__table__), _many(rows))).all()
    child_rows = [kid for row in added for kid in children(row._mapping)]
    kids: Sequence[Row[Any]] = []
    if child_rows:
        statement = _insert_returning(dialect, child.__table__)
        kids = (await conn.execute(statement, _many(child_rows))).all()
    return (
        [detached(parent, row._mapping) for row in added],
        [detached(child, row._mapping) for row in kids],
    )


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
