"""`insert_with_children`: rows and the rows that belong to them, in the caller's
transaction with one statement a table, without a session; the detached instances it
gives back; and `load`, a row by its primary key as a session's instance."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError, InvalidRequestError, MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import DetachedInstanceError

from docdigest.core.db import utcnow
from docdigest.core.rows import insert_with_children, load
from docdigest.documents.models import Document, DocumentStatus, DocumentStep
from docdigest.jobs.models import JobRun
from docdigest.users.models import User
from tests.conftest import record_statements

Db = async_sessionmaker[AsyncSession]


async def a_user(db: Db) -> int:
    async with db() as session:
        user = User(email=f"{uuid.uuid4().hex[:8]}@example.com", name="Owner", password_hash="-")
        session.add(user)
        await session.commit()
        return user.id


def document(user_id: int, sha256: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "filename": f"{sha256}.txt",
        "content_type": "text/plain",
        "size": 1,
        "sha256": sha256,
        "storage_key": f"originals/{uuid.uuid4().hex}",
        "status": "queued",
        "generation": 0,
        "created_at": utcnow(),
        "expires_at": None,
    }


def job(parent: Mapping[str, Any], key: str | None = None) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "function": "extract_text",
        "args": {"document_id": parent["id"]},
        "status": "queued",
        "attempts": 0,
        "series": 1,
        "max_tries": 3,
        "key": key,
        "subject": f"document:{parent['id']}",
        "enqueued_at": utcnow(),
    }


async def counts(db: Db) -> tuple[int, int]:
    async with db() as session:
        documents = await session.scalar(select(func.count()).select_from(Document))
        jobs = await session.scalar(select(func.count()).select_from(JobRun))
    return documents or 0, jobs or 0


async def test_rows_come_back_with_their_children_and_their_ids(db: Db) -> None:
    owner = await a_user(db)
    rows = [document(owner, "a" * 64), document(owner, "b" * 64)]
    statements = record_statements(db.kw["bind"].sync_engine, "")

    async with db.kw["bind"].begin() as conn:
        documents, jobs = await insert_with_children(
            conn, Document, rows, JobRun, lambda row: [job(row), job(row)]
        )
    written = list(statements)

    assert sorted(d.sha256 for d in documents) == ["a" * 64, "b" * 64]
    assert all(d.id for d in documents)
    assert sorted(j.args["document_id"] for j in jobs) == sorted([d.id for d in documents] * 2)
    async with db() as session:
        stored = (await session.scalars(select(JobRun))).all()
    assert sorted(j.id for j in stored) == sorted(j.id for j in jobs)
    assert {j.args["document_id"] for j in stored} == {d.id for d in documents}
    # One insert a table, whatever the batch's size.
    assert [statement.split()[2] for statement in written] == ["documents", "job_runs"]


async def test_a_row_a_unique_key_already_holds_is_left_out_with_its_children(db: Db) -> None:
    owner = await a_user(db)
    async with db.kw["bind"].begin() as conn:
        [first], _ = await insert_with_children(
            conn, Document, [document(owner, "c" * 64)], JobRun, lambda row: [job(row)]
        )
        rows = [document(owner, "c" * 64), document(owner, "d" * 64), document(owner, "d" * 64)]
        documents, jobs = await insert_with_children(
            conn, Document, rows, JobRun, lambda row: [job(row)]
        )

    # The same (user, sha256) again, before and within the batch: one new row, one job.
    assert [d.sha256 for d in documents] == ["d" * 64]
    assert [j.args["document_id"] for j in jobs] == [documents[0].id]
    assert await counts(db) == (2, 2)
    async with db() as session:
        subjects = set((await session.scalars(select(JobRun.subject))).all())
    assert subjects == {f"document:{first.id}", f"document:{documents[0].id}"}


async def test_a_child_a_unique_key_already_holds_is_left_out_alone(db: Db) -> None:
    owner = await a_user(db)
    async with db.kw["bind"].begin() as conn:
        await insert_with_children(
            conn, Document, [document(owner, "e" * 64)], JobRun, lambda row: [job(row, "taken")]
        )
        documents, jobs = await insert_with_children(
            conn,
            Document,
            [document(owner, "f" * 64)],
            JobRun,
            lambda row: [job(row, "taken"), job(row, "free")],
        )

    assert [d.sha256 for d in documents] == ["f" * 64]
    assert [j.key for j in jobs] == ["free"]
    assert await counts(db) == (2, 2)


async def test_a_child_that_cannot_be_written_takes_its_parents_with_it(db: Db) -> None:
    owner = await a_user(db)

    def steps(row: Mapping[str, Any]) -> list[dict[str, Any]]:
        broken = row["sha256"] == "1" * 64
        return [
            {
                "document_id": row["id"],
                "step": None if broken else "extract",  # NOT NULL
                "attempt": 1,
                "started_at": utcnow(),
            }
        ]

    rows = [document(owner, "0" * 64), document(owner, "1" * 64)]
    with pytest.raises(IntegrityError):
        async with db.kw["bind"].begin() as conn:
            await insert_with_children(conn, Document, rows, DocumentStep, steps)

    assert await counts(db) == (0, 0)
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(DocumentStep)) == 0


async def test_what_comes_back_is_detached_as_if_loaded_and_a_session_can_take_it_up(
    db: Db,
) -> None:
    owner = await a_user(db)
    async with db.kw["bind"].begin() as conn:
        [added], [run] = await insert_with_children(
            conn, Document, [document(owner, "9" * 64)], JobRun, lambda row: [job(row)]
        )

    state = inspect(added)
    assert state.detached and state.identity == (added.id,)
    assert (added.user_id, added.sha256, added.status) == (owner, "9" * 64, "queued")
    assert run.args == {"document_id": added.id} and inspect(run).identity == (run.id,)
    with pytest.raises(DetachedInstanceError):
        _ = added.steps  # a relationship never loaded, as on any closed session's instance

    async def take_up(session: AsyncSession) -> Document:
        session.add(added)
        return added

    await only_a_change_is_written(db, take_up)


async def only_a_change_is_written(
    db: Db, take_up: Callable[[AsyncSession], Awaitable[Document]]
) -> None:
    """`take_up(session)` makes a stored document the session's own: committed unchanged,
    nothing is written; changed, one UPDATE writes it."""
    statements = record_statements(db.kw["bind"].sync_engine, "UPDATE")
    async with db() as session:
        instance = await take_up(session)
        assert inspect(instance).persistent
        await session.commit()  # nothing changed: nothing written
        assert statements == []
        instance.status = DocumentStatus.READY
        await session.commit()
    assert len(statements) == 1
    async with db() as session:
        stored = await session.get(Document, instance.id)
        assert stored is not None and stored.status == "ready"


async def a_stored_document(db: Db, owner: int, sha256: str) -> Document:
    async with db.kw["bind"].begin() as conn:
        [added], _ = await insert_with_children(
            conn, Document, [document(owner, sha256)], JobRun, lambda row: []
        )
    return added


async def test_load_gives_the_row_as_the_session_s_own_and_its_changes_are_written(
    db: Db,
) -> None:
    owner = await a_user(db)
    added = await a_stored_document(db, owner, "8" * 64)

    async def take_up(session: AsyncSession) -> Document:
        loaded = await load(session, Document, added.id)
        assert loaded is not None
        assert (loaded.id, loaded.user_id, loaded.sha256) == (added.id, owner, "8" * 64)
        assert loaded.created_at == added.created_at  # read as the ORM reads it
        assert await session.get(Document, added.id) is loaded  # the session's identity
        return loaded

    await only_a_change_is_written(db, take_up)


async def test_load_of_a_missing_row_is_none_and_nothing_is_read_silently(db: Db) -> None:
    added = await a_stored_document(db, await a_user(db), "7" * 64)
    async with db() as session:
        assert await load(session, Document, added.id + 1000) is None
        loaded = await load(session, Document, added.id)
        assert loaded is not None
        # Never loaded: an async session refuses to load it behind the caller's back.
        with pytest.raises(MissingGreenlet):
            _ = loaded.steps
        # A row the session holds already is not made into a second instance.
        with pytest.raises(InvalidRequestError, match="already present"):
            await load(session, Document, added.id)
