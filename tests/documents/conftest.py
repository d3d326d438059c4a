"""Users with API tokens, uploads through the real API, and workers with other settings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.worker import Worker
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.blanks import BlankFiles
from docdigest.core.db import commit
from docdigest.core.queue import connect_queue
from docdigest.documents.models import Document
from docdigest.jobs import control
from docdigest.jobs.models import JobRun
from docdigest.settings import Settings
from docdigest.users.models import User
from docdigest.users.sessions import open_session
from tests.conftest import run_burst
from tests.openfiles import unnamed_held


@dataclass
class Account:
    id: int
    email: str
    headers: dict[str, str]


async def make_account(db: async_sessionmaker[AsyncSession], name: str) -> Account:
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
    async with db() as session:
        user = User(email=email, name=name, password_hash="-")
        session.add(user)
        await session.flush()
        token = await open_session(session, user)
        await commit(session)
        return Account(user.id, email, {"Authorization": f"Bearer {token}"})


@pytest.fixture
async def alice(db: async_sessionmaker[AsyncSession]) -> Account:
    return await make_account(db, "Alice")


@pytest.fixture
async def bob(db: async_sessionmaker[AsyncSession]) -> Account:
    return await make_account(db, "Bob")


Upload = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def upload(client: httpx.AsyncClient) -> Upload:
    async def send(account: Account, name: str, data: bytes, **kwargs: Any) -> httpx.Response:
        return await client.post(
            "/api/documents", files={"file": (name, data)}, headers=account.headers, **kwargs
        )

    return send


async def load_document(db: async_sessionmaker[AsyncSession], document_id: int) -> Document:
    async with db() as session:
        document = await session.get(Document, document_id)
        assert document is not None
        return document


async def fetch_document(
    client: httpx.AsyncClient, account: Account, document_id: int
) -> dict[str, Any]:
    """The document as its owner sees it through the API."""
    response = await client.get(f"/api/documents/{document_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def document_past(
    client: httpx.AsyncClient, account: Account, document_id: int, states: tuple[str, ...]
) -> dict[str, Any]:
    """The document as its owner sees it once its status has left `states` (or after
    three seconds of asking, as it then is)."""
    for _ in range(300):
        body = await fetch_document(client, account, document_id)
        if body["status"] not in states:
            break
        await asyncio.sleep(0.01)
    return body


def timeline(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Each step of a document's timeline, with its error."""
    return [(step["step"], step["error"]) for step in body["timeline"]]


async def job_of(db: async_sessionmaker[AsyncSession], function: str, document_id: int) -> JobRun:
    """The ledger row of `function` for a document."""
    async with db() as session:
        run = await session.scalar(
            select(JobRun).where(
                JobRun.function == function, JobRun.subject == f"document:{document_id}"
            )
        )
    assert run is not None, (function, document_id)
    return run


async def requeue(settings: Settings, db: async_sessionmaker[AsyncSession], job_id: str) -> None:
    """An operator's requeue of a failed job."""
    queue = await connect_queue(settings)
    try:
        async with db(info={"queue": queue}) as session:
            await control.requeue(session, job_id)
            await commit(session)
    finally:
        await queue.aclose()


def ready_mails(smtp: Any) -> list[str]:
    return [subject for subject in smtp.subjects() if "is ready" in subject]


RunWorkerWith = Callable[..., Awaitable[Worker]]


@pytest.fixture
def run_worker_with(settings: Settings) -> RunWorkerWith:
    """A burst worker like `run_worker`, with some settings changed (limits, summarizer)."""

    async def run(**changes: Any) -> Worker:
        return await run_burst(settings.model_copy(update=changes))

    return run


def fail_first_call(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, error: Exception
) -> None:
    """`owner.name` (a coroutine function) raises `error` on its first call and works
    as before from the second on, as after a connection lost for a moment."""
    real = getattr(owner, name)
    calls = 0

    async def first_fails(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return await real(*args, **kwargs)

    monkeypatch.setattr(owner, name, first_fails)


def stored_files(settings: Settings) -> list[Path]:
    return [p for p in settings.files_dir.rglob("*") if p.is_file()]


async def leftovers(app: FastAPI) -> list[str]:
    """What uploads left behind: files in the temporary directory, and files made
    ahead (unnamed) that an upload took and did not close."""
    blanks: BlankFiles = app.state.blank_files
    await blanks.fill()
    tmp = blanks.directory
    named = [path.name for path in tmp.iterdir()] if tmp.exists() else []
    return named + ["(unnamed)"] * (unnamed_held(tmp) - blanks.ready)
