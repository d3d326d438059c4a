"""A day after signup, people who uploaded nothing get one nudge; the others are skipped."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.documents.models import Document
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.mail.models import OutboxMessage, OutboxStatus
from docdigest.settings import Settings
from docdigest.users import service
from tests.conftest import RunWorker, SmtpCatcher
from tests.users.steps import sign_up

NUDGE_SUBJECT = "Ann, your first summary is one upload away"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A second instead of a day, so the burst worker reaches the deferred job.
    return settings.model_copy(update={"onboarding_nudge_after_hours": 1 / 3600})


async def test_nudge_goes_only_to_users_who_uploaded_nothing(
    client: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    smtp: SmtpCatcher,
    run_worker: RunWorker,
) -> None:
    await sign_up(client, email="ann@example.com", name="Ann")
    busy = await sign_up(client, email="bea@example.com", name="Bea")
    async with db() as session:
        nudges = (
            await session.scalars(select(JobRun).where(JobRun.function == "send_onboarding_nudge"))
        ).all()
        assert [n.status for n in nudges] == [JobStatus.DEFERRED] * 2
        session.add(
            Document(
                user_id=busy["id"],
                filename="a.txt",
                content_type="text/plain",
                size=1,
                sha256="0" * 64,
                storage_key="originals/00/" + "0" * 32,
            )
        )
        await session.commit()

    await run_worker()

    assert sorted(smtp.subjects()) == sorted(
        ["Welcome to docdigest, Ann", "Welcome to docdigest, Bea", NUDGE_SUBJECT]
    )
    nudge = next(m for m in smtp.messages if m["Subject"] == NUDGE_SUBJECT)
    assert nudge["To"] == "ann@example.com"
    async with db() as session:
        skipped = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.key == f"nudge:{busy['id']}")
        )
        assert skipped is not None and skipped.status == OutboxStatus.SKIPPED
        assert skipped.note == "skipped: user has uploaded documents already"
        runs = (await session.scalars(select(JobRun))).all()
        assert {r.status for r in runs} == {JobStatus.SUCCEEDED}


async def test_signup_schedules_the_nudge_a_day_later(
    db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    daily = settings.model_copy(update={"onboarding_nudge_after_hours": 24})
    async with db(info={"settings": daily}) as session:
        user = await service.sign_up(
            session, email="cy@example.com", name="Cy", password="long enough password"
        )
        await session.commit()
        nudge = await session.scalar(select(JobRun).where(JobRun.key == f"nudge:{user.id}"))

    assert nudge is not None and nudge.status == JobStatus.DEFERRED
    assert nudge.scheduled_at is not None
    assert nudge.scheduled_at - nudge.enqueued_at == timedelta(hours=24)
