"""Rows read and written with Core statements, outside the ORM's unit of work.

Inserts that leave alone a row a unique key already holds (no SAVEPOINT around
them), a row loaded by its primary key, and instances built from rows read that
way. On the hot paths (an upload, a job's start) the ORM's flush and loading cost
more than the statements themselves; these give the same instances for less.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Executable, Table, bindparam, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state

from docdigest.core.db import Base


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
