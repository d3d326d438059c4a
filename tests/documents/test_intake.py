"""Uploads that arrive together are written together (one transaction for many, their
tokens checked in one lookup), and each still gets its own document, its own job under
its own request id, and its own error; a slow upload holds no database connection while
its body arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.documents.intake import Intake
from docdigest.documents.models import Document, DocumentStatus
from docdigest.documents.received import ReceivedFile
from docdigest.documents.sniff import TEXT
from docdigest.documents.storage import Storage
from docdigest.jobs.models import JobRun
from docdigest.settings import Settings
from tests.conftest import RunWorker, record_statements
from tests.documents.conftest import Account, Upload

UPLOADS = 24


def stored_files(settings: Settings) -> list[Path]:
    return [p for p in settings.files_dir.rglob("*") if p.is_file()]


def text(n: int) -> bytes:
    return f"Upload number {n}. The quick brown fox jumps over the lazy dog.\n".encode() * 50


async def test_uploads_arriving_together_share_a_transaction_and_each_is_processed(
    client: httpx.AsyncClient,
    alice: Account,
    bob: Account,
    app: FastAPI,
    db: async_sessionmaker[AsyncSession],
    run_worker: RunWorker,
) -> None:
    document_inserts = record_statements(app.state.engine.sync_engine, "INSERT INTO documents")
    token_lookups = record_statements(app.state.engine.sync_engine, "SELECT", "login_sessions")

    async def send(n: int) -> httpx.Response:
        account = alice if n % 2 else bob
        return await client.post(
            "/api/documents",
            files={"file": (f"n{n}.txt", text(n))},
            headers={**account.headers, "X-Request-ID": f"upload-{n:04d}"},
        )

    responses = await asyncio.gather(*(send(n) for n in range(UPLOADS)))

    assert [r.status_code for r in responses] == [202] * UPLOADS
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == UPLOADS
    assert [r.json()["filename"] for r in responses] == [f"n{n}.txt" for n in range(UPLOADS)]
    # Fewer inserts than uploads: uploads that came in during a write shared the next.
    assert 1 <= len(document_inserts) < UPLOADS
    # And fewer token lookups: tokens that came in during a lookup shared the next.
    assert 1 <= len(token_lookups) < UPLOADS
    async with db() as session:
        documents = {d.id: d for d in await session.scalars(select(Document))}
        jobs = (await session.scalars(select(JobRun))).all()
    assert {documents[i].user_id for i in ids[1::2]} == {alice.id}
    assert {documents[i].user_id for i in ids[0::2]} == {bob.id}
    # One first job per document, carrying the id of the request that uploaded it.
    by_document = {job.args["document_id"]: job for job in jobs if job.function == "extract_text"}
    assert len(by_document) == UPLOADS
    assert [by_document[i].request_id for i in ids] == [f"upload-{n:04d}" for n in range(UPLOADS)]

    await run_worker()
    async with db() as session:
        statuses = {d.status for d in await session.scalars(select(Document))}
    assert statuses == {DocumentStatus.READY}


async def test_the_same_bytes_twice_at_once_make_one_document(
    client: httpx.AsyncClient, alice: Account, upload: Upload, settings: Settings
) -> None:
    first, second = await asyncio.gather(
        upload(alice, "a.txt", text(1)), upload(alice, "b.txt", text(1))
    )

    assert sorted([first.status_code, second.status_code]) == [200, 202]
    assert first.json()["id"] == second.json()["id"]
    assert sorted([first.json()["duplicate"], second.json()["duplicate"]]) == [False, True]
    assert [p.read_bytes() for p in stored_files(settings)] == [text(1)]


async def test_an_upload_that_cannot_be_written_fails_alone(
    alice: Account, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """A row that breaks the transaction (an owner that no longer exists) fails its own
    upload; the uploads written with it are written all the same."""
    storage = Storage.from_settings(settings)
    intake = Intake(db.kw["bind"], None, storage, settings)

    def received(n: int) -> ReceivedFile:
        path = settings.upload_tmp_dir / f"upload-{n}.part"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text(n))
        return ReceivedFile("file", f"n{n}.txt", path, len(text(n)), f"{n:064x}", TEXT)

    owners = [alice.id, alice.id, 999_999, alice.id, alice.id]
    outcomes = await asyncio.gather(
        *(intake.accept(owner, received(n)) for n, owner in enumerate(owners)),
        return_exceptions=True,
    )

    assert isinstance(outcomes[2], IntegrityError)
    accepted = [o for n, o in enumerate(outcomes) if n != 2]
    assert all(not isinstance(o, BaseException) for o in accepted)
    async with db() as session:
        names = sorted((await session.scalars(select(Document.filename))).all())
    assert names == ["n0.txt", "n1.txt", "n3.txt", "n4.txt"]
    assert sorted(p.read_bytes() for p in stored_files(settings)) == sorted(
        text(n) for n in (0, 1, 3, 4)
    )
    assert list(settings.upload_tmp_dir.iterdir()) == []


async def test_a_slow_upload_holds_no_database_connection(
    app: FastAPI, client: httpx.AsyncClient, alice: Account
) -> None:
    """While a client is still sending its file, the upload has been let in (its token
    checked) but keeps no pooled connection: slow clients cannot drain the pool."""
    halfway = asyncio.Event()
    go_on = asyncio.Event()
    boundary = "slowboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"'
        "\r\nContent-Type: text/plain\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head + text(1)[:1000]
        halfway.set()
        await go_on.wait()
        yield text(1)[1000:] + f"\r\n--{boundary}--\r\n".encode()

    sending = asyncio.create_task(
        client.post(
            "/api/documents",
            content=body(),
            headers={
                **alice.headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
    )
    await halfway.wait()
    await asyncio.sleep(0.1)  # the route has read the first chunk and waits for more

    assert app.state.engine.pool.checkedout() == 0
    assert (await client.get("/api/me", headers=alice.headers)).status_code == 200
    go_on.set()
    response = await sending
    assert response.status_code == 202
    assert response.json()["size"] == len(text(1))


class UndeletableStorage(Storage):
    """The file store refusing deletes, as an object store can during an outage."""

    async def delete(self, key: str) -> bool:
        raise OSError("the file store refused the delete")


async def test_a_copy_that_cannot_be_removed_does_not_fail_the_upload(
    alice: Account, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """A duplicate's stored copy is removed after the commit. If that fails, the upload
    is still answered as the duplicate it is, and nothing is written twice."""
    intake = Intake(db.kw["bind"], None, UndeletableStorage(root=settings.files_dir), settings)

    def received(name: str) -> ReceivedFile:
        path = settings.upload_tmp_dir / f"upload-{name}.part"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text(7))
        return ReceivedFile("file", name, path, len(text(7)), "7" * 64, TEXT)

    first = await intake.accept(alice.id, received("a.txt"))
    again = await intake.accept(alice.id, received("b.txt"))

    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.document.id == first.document.id
    async with db() as session:
        assert len((await session.scalars(select(JobRun))).all()) == 1
    assert len(stored_files(settings)) == 2  # the duplicate's copy stayed behind
