"""The daily digest: one mail per opted-in user with new documents, never two a day."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit, utcnow
from docdigest.core.queue import connect_queue
from docdigest.digest.jobs import send_digest
from docdigest.digest.service import latest_period, next_send_time, send_user_digest, user_period
from docdigest.documents.models import Document, DocumentStatus
from docdigest.jobs import JobContext, enqueue
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.mail.mailer import Mailer
from docdigest.settings import Settings
from docdigest.users.models import User
from tests.conftest import RunWorker, SmtpCatcher


async def arrange_users(db: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    period = latest_period(settings, utcnow())
    inside, before = period.end - timedelta(hours=1), period.start - timedelta(hours=1)
    async with db() as session:
        people = {
            "ann": User(email="ann@example.com", name="Ann", password_hash="x"),
            "bob": User(email="bob@example.com", name="Bob", password_hash="x"),
            "cat": User(
                email="cat@example.com", name="Cat", password_hash="x", digest_opt_in=False
            ),
            "dan": User(email="dan@example.com", name="Dan", password_hash="x"),
        }
        session.add_all(people.values())
        await session.flush()
        docs = [
            ("ann", "q3-report.pdf", DocumentStatus.READY, inside),
            ("ann", "minutes.docx", DocumentStatus.READY, inside - timedelta(hours=5)),
            ("ann", "broken.pdf", DocumentStatus.FAILED, None),
            ("cat", "secret.txt", DocumentStatus.READY, inside),
            ("dan", "old.txt", DocumentStatus.READY, before),
        ]
        for n, (owner, name, status, ready_at) in enumerate(docs):
            session.add(
                Document(
                    user_id=people[owner].id,
                    filename=name,
                    content_type="text/plain",
                    size=1,
                    sha256=f"{n:064d}",
                    storage_key=f"originals/00/{n:032d}",
                    status=status,
                    summary=f"What {name} says.",
                    ready_at=ready_at,
                )
            )
        await session.commit()


async def run_digest(
    settings: Settings, db: async_sessionmaker[AsyncSession], run_worker: RunWorker
) -> None:
    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        await enqueue(session, send_digest)
        await commit(session)
    await run_worker()
    await queue.aclose()


async def test_one_digest_per_opted_in_user_with_new_documents_even_when_run_twice(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    smtp: SmtpCatcher,
    run_worker: RunWorker,
) -> None:
    await arrange_users(db, settings)

    await run_digest(settings, db, run_worker)
    await run_digest(settings, db, run_worker)  # a lagging cron, or a second worker

    day = latest_period(settings, utcnow()).date.isoformat()
    assert smtp.subjects() == [f"Your docdigest for {day}: 2 documents"]
    mail = smtp.messages[0]
    assert mail["To"] == "ann@example.com"
    text = mail.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "q3-report.pdf" in body and "minutes.docx" in body
    assert "What q3-report.pdf says." in body
    assert "broken.pdf" not in body
    async with db() as session:
        runs = (await session.scalars(select(JobRun))).all()
        assert {r.status for r in runs} == {JobStatus.SUCCEEDED}
        per_user = [r for r in runs if r.function == "send_user_digest"]
        assert [r.key for r in per_user] == [f"digest:1:{day}"]


async def test_no_digest_when_nothing_became_ready(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    smtp: SmtpCatcher,
    run_worker: RunWorker,
) -> None:
    async with db() as session:
        session.add(User(email="eve@example.com", name="Eve", password_hash="x"))
        await session.commit()

    await run_digest(settings, db, run_worker)

    assert smtp.messages == []


async def test_each_user_gets_the_digest_at_their_own_hour_in_their_zone(
    settings: Settings, db: async_sessionmaker[AsyncSession], smtp: SmtpCatcher
) -> None:
    now = utcnow()
    async with db() as session:
        fay = User(
            email="fay@example.com",
            name="Fay",
            password_hash="x",
            timezone="Asia/Tokyo",
            digest_hour=(now.hour + 12) % 24,
        )
        session.add(fay)
        await session.flush()
        send_at = next_send_time(fay, latest_period(settings, now).end, settings.tz)
        day = send_at.date()
        period = user_period(fay, day, settings.tz)
        assert period.end == send_at and period.end.tzinfo == ZoneInfo("Asia/Tokyo")
        for n, ready_at in enumerate(
            [period.end - timedelta(hours=2), period.start - timedelta(hours=1)]
        ):
            session.add(
                Document(
                    user_id=fay.id,
                    filename=f"doc{n}.txt",
                    content_type="text/plain",
                    size=1,
                    sha256=f"{n:064d}",
                    storage_key=f"originals/00/{n:032d}",
                    status=DocumentStatus.READY,
                    summary="Words.",
                    ready_at=ready_at,
                )
            )
        await session.commit()

    async with db() as session:  # the cron job's body; its deferred child is not run here
        await send_digest.fn(
            JobContext(
                settings=settings,
                job_id="cron",
                attempt=1,
                max_tries=1,
                sessionmaker=db,
                opened=session,
            )
        )
        await session.commit()
        planned = await session.scalar(select(JobRun).where(JobRun.function == "send_user_digest"))

    assert planned is not None
    assert planned.key == f"digest:{fay.id}:{day.isoformat()}"
    if send_at > now:
        assert planned.status == JobStatus.DEFERRED and planned.scheduled_at == send_at
    async with db() as session:  # what that job does when its time comes
        outcome = await send_user_digest_now(session, settings, fay.id, day)
    assert outcome == "sent 1 documents"
    assert smtp.subjects() == [f"Your docdigest for {day.isoformat()}: 1 document"]


async def send_user_digest_now(
    session: AsyncSession, settings: Settings, user_id: int, day: date
) -> str:
    outcome = await send_user_digest(session, Mailer.from_settings(settings), user_id, day)
    await session.commit()
    return outcome
