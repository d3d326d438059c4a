"""The outbox: each keyed message leaves once, whatever retries or duplicates happen."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, utcnow
from docdigest.core.queue import connect_queue
from docdigest.devserver.redis import free_port
from docdigest.jobs import Transient, enqueue
from docdigest.jobs.context import current_job_id
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.mail.mailer import Mailer
from docdigest.mail.models import OutboxMessage, OutboxStatus
from docdigest.mail.outbox import SEND_LEASE, message_id_for, send_once
from docdigest.settings import Settings
from docdigest.users.jobs import send_welcome_email
from docdigest.users.models import User
from docdigest.worker import create_worker
from tests.conftest import RunWorker, SmtpCatcher


async def add_user(db: async_sessionmaker[AsyncSession], email: str = "ann@example.com") -> int:
    async with db() as session:
        user = User(email=email, name="Ann", password_hash="x")
        session.add(user)
        await session.commit()
        return user.id


async def send_welcome(
    db: async_sessionmaker[AsyncSession], mailer: Mailer, user_id: int, key: str
) -> bool:
    """`send_once` of the welcome mail to the user, under `key`, in a session of its own."""
    async with db() as session:
        user = await session.get(User, user_id)
        return await send_once(
            session,
            mailer,
            key=key,
            to="ann@example.com",
            template="welcome",
            context={"user": user},
        )


async def test_second_send_with_the_same_key_sends_nothing(
    settings: Settings, db: async_sessionmaker[AsyncSession], smtp: SmtpCatcher
) -> None:
    user_id = await add_user(db)
    mailer = Mailer.from_settings(settings)
    results = [await send_welcome(db, mailer, user_id, "welcome:test") for _ in range(2)]

    assert results == [True, False]
    assert smtp.subjects() == ["Welcome to docdigest, Ann"]
    expected_id = f"<{hashlib.sha256(b'welcome:test').hexdigest()[:32]}@docdigest>"
    assert smtp.messages[0]["Message-ID"] == expected_id
    async with db() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None
        assert (row.status, row.attempts, row.to) == (OutboxStatus.SENT, 1, "ann@example.com")
        assert row.sent_at is not None and row.sent_at.tzinfo is not None


async def test_a_duplicated_job_sends_the_welcome_mail_once(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    smtp: SmtpCatcher,
    run_worker: RunWorker,
) -> None:
    user_id = await add_user(db)
    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        # No ledger key: two separate jobs, as after an operator's requeue.
        await enqueue(session, send_welcome_email, user_id=user_id)
        await enqueue(session, send_welcome_email, user_id=user_id)
        await commit(session)

    await run_worker()

    assert smtp.subjects() == ["Welcome to docdigest, Ann"]
    async with db() as session:
        runs = (await session.scalars(select(JobRun))).all()
        assert [r.status for r in runs] == [JobStatus.SUCCEEDED] * 2
    await queue.aclose()


async def test_unknown_template_fails_the_job_at_once_with_the_reason(
    settings: Settings, db: async_sessionmaker[AsyncSession], smtp: SmtpCatcher
) -> None:
    from docdigest.jobs import Permanent

    mailer = Mailer.from_settings(settings)
    async with db() as session:
        with pytest.raises(Permanent, match="no mail template 'nope'"):
            await send_once(session, mailer, key="k", to="a@b.c", template="nope", context={})
    assert smtp.messages == []


async def test_a_failed_send_leaves_the_row_pending_with_its_error_until_one_goes_out(
    settings: Settings, db: async_sessionmaker[AsyncSession], smtp: SmtpCatcher
) -> None:
    user_id = await add_user(db)
    down = Mailer("127.0.0.1", free_port(), "docdigest@example.com", timeout_s=2)

    with pytest.raises(OSError):
        await send_welcome(db, down, user_id, "welcome:down")
    async with db() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None
        assert (row.status, row.claimed_at, row.sent_at) == (OutboxStatus.PENDING, None, None)
        assert row.last_error is not None and "connect" in row.last_error.lower()

    assert await send_welcome(db, Mailer.from_settings(settings), user_id, "welcome:down")
    assert smtp.subjects() == ["Welcome to docdigest, Ann"]
    async with db() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None
        assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 2, None)
        assert row.subject == "Welcome to docdigest, Ann" and row.sent_at is not None


async def test_smtp_down_retries_and_delivers_once_when_it_returns(
    settings: Settings, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    settings = settings.model_copy(update={"smtp_port": port, "job_max_tries": 1000})
    user_id = await add_user(db)
    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        run = await enqueue(session, send_welcome_email, user_id=user_id)
        await commit(session)

    worker = create_worker(settings, burst=True, handle_signals=False, poll_delay=0.02)
    working = asyncio.create_task(worker.main())
    while True:  # wait for the first failed attempt, whenever it comes
        async with db() as session:
            row = await session.get(JobRun, run.id)
            assert row is not None
            if row.attempts >= 2:
                break
        await asyncio.sleep(0.05)
    catcher = SmtpCatcher("127.0.0.1", port)
    server = Controller(catcher, hostname="127.0.0.1", port=port)
    server.start()
    try:
        await working
    finally:
        await worker.close()
        server.stop()

    assert catcher.subjects() == ["Welcome to docdigest, Ann"]
    async with db() as session:
        row = await session.get(JobRun, run.id)
        assert row is not None and row.status == JobStatus.SUCCEEDED and row.attempts > 2
        outbox = await session.scalar(select(OutboxMessage))
        assert outbox is not None and outbox.status == OutboxStatus.SENT
        assert outbox.attempts == row.attempts
    await queue.aclose()


async def left_sending(
    db: async_sessionmaker[AsyncSession], key: str, *, by: str, ago: timedelta
) -> None:
    """What a worker killed mid-send leaves behind: the row `sending`, claimed by `by`."""
    async with db() as session:
        session.add(
            OutboxMessage(
                key=key,
                to="ann@example.com",
                template="welcome",
                message_id=message_id_for(key),
                status=OutboxStatus.SENDING,
                attempts=1,
                claimed_at=utcnow() - ago,
                claimed_by=by,
            )
        )
        await session.commit()


async def send_as(
    db: async_sessionmaker[AsyncSession], settings: Settings, user_id: int, key: str, job_id: str
) -> bool:
    """`send_once` of a welcome mail from the job `job_id`."""
    token = current_job_id.set(job_id)
    try:
        async with db() as session:
            user = await session.get(User, user_id)
            return await send_once(
                session,
                Mailer.from_settings(settings),
                key=key,
                to="ann@example.com",
                template="welcome",
                context={"user": user},
            )
    finally:
        current_job_id.reset(token)


async def test_a_send_cut_short_by_a_crash_is_taken_over_by_the_same_jobs_next_try(
    settings: Settings, db: async_sessionmaker[AsyncSession], smtp: SmtpCatcher
) -> None:
    user_id = await add_user(db)
    await left_sending(db, "welcome:crash", by="job-1", ago=timedelta(0))

    with pytest.raises(Transient, match="being sent by another worker"):
        await send_as(db, settings, user_id, "welcome:crash", "job-2")  # may still be sending
    assert await send_as(db, settings, user_id, "welcome:crash", "job-1") is True
    assert await send_as(db, settings, user_id, "welcome:crash", "job-1") is False

    assert smtp.subjects() == ["Welcome to docdigest, Ann"]


async def test_a_send_left_longer_than_its_lease_is_taken_over_by_any_job(
    settings: Settings, db: async_sessionmaker[AsyncSession], smtp: SmtpCatcher
) -> None:
    user_id = await add_user(db)
    await left_sending(db, "welcome:stale", by="job-1", ago=SEND_LEASE + timedelta(seconds=5))

    assert await send_as(db, settings, user_id, "welcome:stale", "job-2") is True

    assert smtp.subjects() == ["Welcome to docdigest, Ann"]
    async with db() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None
        assert (row.status, row.attempts, row.claimed_by) == (OutboxStatus.SENT, 2, "job-2")
