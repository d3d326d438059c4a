"""Retention: each upload schedules its own deletion; when it runs, row and files go."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.core.queue import connect_queue
from docdigest.documents.jobs import delete_document
from docdigest.jobs import enqueue
from docdigest.jobs.models import JobRun
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.documents import files
from tests.documents.conftest import Account, Upload


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"retention_days": 7})


async def test_upload_schedules_its_deletion_and_the_deletion_removes_everything(
    settings: Settings,
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    db: async_sessionmaker[AsyncSession],
) -> None:
    body = (await upload(alice, "short-lived.txt", files.text_bytes())).json()
    created = body["created_at"]
    assert body["expires_at"] is not None

    async with db() as session:
        expiry = await session.scalar(select(JobRun).where(JobRun.key == f"expire:{body['id']}"))
    assert expiry is not None and expiry.function == "delete_document"
    assert expiry.scheduled_at is not None
    assert timedelta(days=7) - (expiry.scheduled_at - expiry.enqueued_at) < timedelta(seconds=5)
    assert created < body["expires_at"]

    # Seven days are too long to wait: take the deferred job off the queue and run
    # the same job now.
    queue = await connect_queue(settings)
    await queue.zrem(settings.queue_name, expiry.id)
    await run_worker()
    assert (
        await client.get(f"/api/documents/{body['id']}", headers=alice.headers)
    ).status_code == 200
    async with db(info={"queue": queue}) as session:
        await enqueue(session, delete_document, document_id=body["id"])
        await commit(session)
    await run_worker()
    await queue.aclose()

    gone = await client.get(f"/api/documents/{body['id']}", headers=alice.headers)
    assert gone.status_code == 404
    assert [p for p in settings.files_dir.rglob("*") if p.is_file()] == []
