"""Mail while the SMTP server is down: retried with backoff, delivered exactly once after."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.jobs.models import JobAttempt, JobRun, JobStatus
from docdigest.settings import Settings
from docdigest.users.service import sign_up
from tests.chaos.conftest import SmtpSwitch, StartWorker
from tests.jobs.conftest import eventually


async def test_mail_sent_during_an_smtp_outage_arrives_once_when_it_returns(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    queue: object,
    smtp_switch: SmtpSwitch,
    start_worker: StartWorker,
) -> None:
    smtp_switch.stop()
    async with db(info={"queue": queue}) as session:
        user = await sign_up(
            session, email="ada@example.com", name="Ada", password="a long passphrase 1"
        )
        await commit(session)
    start_worker(
        CHAOS_ALL_JOBS="1",
        DOCDIGEST_JOB_MAX_TRIES="12",
        DOCDIGEST_JOB_RETRY_BASE_S="0.2",
        DOCDIGEST_JOB_RETRY_CAP_S="1",
    )

    async def welcome_job() -> JobRun | None:
        async with db() as session:
            return await session.scalar(
                select(JobRun).where(JobRun.function == "send_welcome_email")
            )

    async def retried_twice() -> bool:
        run = await welcome_job()
        if run is None:
            return False
        async with db() as session:
            outcomes = await session.scalars(
                select(JobAttempt.outcome).where(JobAttempt.job_id == run.id)
            )
            return [*outcomes].count("retried") >= 2

    await eventually(retried_twice, within_s=60)
    assert smtp_switch.catcher.messages == []
    smtp_switch.start()

    async def delivered() -> bool:
        run = await welcome_job()
        return run is not None and run.status == JobStatus.SUCCEEDED

    await eventually(delivered, within_s=60)
    messages = smtp_switch.catcher.messages
    assert [str(m["To"]) for m in messages] == [user.email]
    run = await welcome_job()
    assert run is not None and run.attempts >= 3
    assert run.error_message is None
