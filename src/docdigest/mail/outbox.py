"""Send each message once: the outbox row, keyed by what the message is about, says
whether it left already (a retried or duplicated job finds it `sent` and stops).

`send_once` commits the caller's session twice — after claiming the row and after
the send — because the "sent" mark must be durable the moment the mail is out;
a later rollback of the job must not forget it. Call it as a job's last effect.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import commit, utcnow
from docdigest.core.rows import dialect_insert
from docdigest.jobs import Transient
from docdigest.jobs.context import current_job_id
from docdigest.jobs.enqueue import settings_of
from docdigest.mail.mailer import Mailer
from docdigest.mail.message import new_message, set_bodies
from docdigest.mail.models import OutboxMessage, OutboxStatus
from docdigest.mail.render import RenderedMail, render_mail
from docdigest.settings import Settings

#: A `sending` row older than this belongs to a worker that died mid-send: take it over.
#: Longer than any mail-sending job's timeout, which bounds a live send.
SEND_LEASE = timedelta(minutes=2)


def message_id_for(key: str) -> str:
    """Stable per key, so a receiving server can drop the copy a crash between
    sending and marking `sent` would produce."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@docdigest>"


def public_base_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") or f"http://{settings.host}:{settings.port}"


def build_message(rendered: RenderedMail, *, to: str, key: str) -> EmailMessage:
    message = new_message()
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Message-ID"] = message_id_for(key)
    message["Date"] = format_datetime(utcnow())
    message["Auto-Submitted"] = "auto-generated"
    set_bodies(message, rendered.text, rendered.html)
    return message


async def send_once(
    session: AsyncSession,
    mailer: Mailer,
    *,
    key: str,
    to: str,
    template: str,
    context: dict[str, Any],
    on_sent: Callable[[], object] | None = None,
) -> bool:
    """Render `template` and send it to `to` unless `key` was sent already.

    Returns False when it was (or was skipped on purpose). Raises `Transient` while
    another worker is sending it. `on_sent` runs once the mail is out, before the
    "sent" mark is committed: what the caller records of the send (a step's finish)
    goes in with the mark, not in a transaction of its own.
    """
    settings = settings_of(session)
    rendered = render_mail(template, {"base_url": public_base_url(settings), **context})
    if not await _claim(session, key=key, to=to, template=template):
        return False
    try:
        await mailer.send(build_message(rendered, to=to, key=key))
    except Exception as exc:
        conn = await session.connection()
        await conn.execute(_PUT_BACK, {"outbox_key": key, "error": repr(exc)[:2000]})
        await commit(session)
        raise
    conn = await session.connection()
    await conn.execute(
        _MARK_SENT, {"outbox_key": key, "subject": rendered.subject, "sent_at": utcnow()}
    )
    if on_sent is not None:
        on_sent()
    await commit(session)
    return True


async def record_skipped(
    session: AsyncSession, *, key: str, to: str, template: str, reason: str
) -> None:
    """Keep, under the message's key, that it was deliberately not sent and why."""
    if await session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key)) is None:
        session.add(
            OutboxMessage(
                key=key,
                to=to,
                template=template,
                message_id=message_id_for(key),
                status=OutboxStatus.SKIPPED,
                note=reason,
            )
        )
        await session.flush()


async def _claim(session: AsyncSession, *, key: str, to: str, template: str) -> bool:
    """Mark the row `sending` for us; False if it is sent already.

    One statement: the row goes in `sending`, or, when it exists (an earlier try, or
    another sender first), it becomes `sending` for us only if it may be claimed.
    """
    now = utcnow()
    conn = await session.connection()
    result = await conn.execute(
        _claim_statement(conn.dialect.name),
        {
            "key": key,
            "to": to,
            "template": template,
            "message_id": message_id_for(key),
            "now": now,
            "lease_start": now - SEND_LEASE,
            "job_id": current_job_id.get(),
        },
    )
    if cast(CursorResult[Any], result).rowcount == 0:
        status = await session.scalar(select(OutboxMessage.status).where(OutboxMessage.key == key))
        if status in (OutboxStatus.SENT, OutboxStatus.SKIPPED):
            return False
        raise Transient(f"mail {key} is being sent by another worker")
    await commit(session)
    return True


@functools.cache
def _claim_statement(dialect: str) -> Executable:
    """The claim's upsert, built once per kind of database, its values parameters.

    Run on the session's connection, as a plain statement: through the session it
    would take the ORM's bulk path, which cost a mail job more than the statement.
    """
    # Arq runs a job again only once its previous attempt is gone, so a row claimed
    # by this same job id was left by a crashed attempt and is ours to take over.
    # (Outside a job the id is NULL, which matches no row.)
    abandoned = or_(
        OutboxMessage.claimed_at < bindparam("lease_start"),
        OutboxMessage.claimed_by == bindparam("job_id"),
    )
    claimable = or_(
        OutboxMessage.status == OutboxStatus.PENDING,
        and_(OutboxMessage.status == OutboxStatus.SENDING, abandoned),
    )
    claim = {
        "status": OutboxStatus.SENDING,
        "claimed_at": bindparam("now"),
        "claimed_by": bindparam("job_id"),
    }
    return (
        dialect_insert(dialect, OutboxMessage)
        .values(
            key=bindparam("key"),
            to=bindparam("to"),
            template=bindparam("template"),
            message_id=bindparam("message_id"),
            attempts=1,
            **claim,
        )
        .on_conflict_do_update(
            index_elements=[OutboxMessage.key],
            set_=claim | {"attempts": OutboxMessage.attempts + 1},
            where=claimable,
        )
    )


# The row's two ends, built once with their values as parameters and run on the
# session's connection, like the claim: put back for a later try after a failed send,
# or marked sent. (Built for each mail, the statement cost more than running it.)
_PUT_BACK = (
    update(OutboxMessage)
    .where(OutboxMessage.key == bindparam("outbox_key"))
    .values(status=OutboxStatus.PENDING, claimed_at=None, last_error=bindparam("error"))
)
_MARK_SENT = (
    update(OutboxMessage)
    .where(OutboxMessage.key == bindparam("outbox_key"))
    .values(
        status=OutboxStatus.SENT,
        subject=bindparam("subject"),
        sent_at=bindparam("sent_at"),
        last_error=None,
    )
)
