"""Where one document's time goes, measured: the upload request, then each job's wait in
the queue and run, the work inside each step, and the mail's arrival.

Read from the client's clock, the job ledger (enqueued/started/finished), the
document's step timeline and the SMTP server's receipt time; all in ms from the
moment the upload request was sent.

The request goes out as raw HTTP on a connection opened beforehand, as the load
generator sends its own: an HTTP client library's first request costs it several
milliseconds before a byte is sent (httpx's took 8-20 ms, besides 20 ms to build the
client), which the server's timeline would otherwise be measured from.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from bench._loadgen import UPLOAD_CONTENT_TYPE, Connection, file_body, post
from docdigest.documents.models import Document, DocumentStep
from docdigest.jobs.models import JobRun


class Mailbox(Protocol):
    def arrivals(self, recipient: str) -> list[datetime]: ...


#: The pause before the second probe: long enough for every process to go idle.
PAUSE_S = 1.0


async def one_document(
    port: int, token: str, engine: Any, mailbox: Mailbox, email: str, paths: tuple[Path, Path]
) -> dict[str, Any]:
    """Two documents' timelines, one after the other on an otherwise idle system.

    `first` is the web process's and the workers' first document, which pays for what
    each does once (SQLAlchemy compiles each statement the first time it runs); `warm`
    is the second, sent `PAUSE_S` after the first is done: what a user's lone upload
    meets.
    """
    first = await _timeline(port, token, engine, mailbox, email, paths[0])
    await asyncio.sleep(PAUSE_S)
    return {"first": first, "warm": await _timeline(port, token, engine, mailbox, email, paths[1])}


async def _timeline(
    port: int, token: str, engine: Any, mailbox: Mailbox, email: str, path: Path
) -> dict[str, Any]:
    """Upload `path` and return its measured timeline once its jobs are done."""
    mails_before = len(mailbox.arrivals(email))
    host = f"127.0.0.1:{port}"
    request = post(
        host,
        "/api/documents",
        file_body(path.name, path.read_bytes(), "application/pdf"),
        UPLOAD_CONTENT_TYPE,
        token,
    )
    connection = await Connection.open("127.0.0.1", port)
    try:
        sent = datetime.now(UTC)
        status, body = await connection.exchange(request)
        answered = datetime.now(UTC)
    finally:
        connection.close()
    if status != 202:
        raise RuntimeError(f"the probe's upload: {status} {body[:200]!r}, expected 202")
    document_id = json.loads(body)["id"]
    deadline = time.monotonic() + 300
    while len(mailbox.arrivals(email)) <= mails_before:
        if time.monotonic() > deadline:
            raise TimeoutError("the document's mail never came")
        await asyncio.sleep(0.02)
    mailed = mailbox.arrivals(email)[-1]
    # The worker writes a job's end to the ledger in small batches, just after the mail.
    while time.monotonic() < deadline and await _unfinished(engine, document_id):
        await asyncio.sleep(0.05)
    async with engine.connect() as conn:
        document = (
            await conn.execute(
                select(Document.created_at, Document.ready_at).where(Document.id == document_id)
            )
        ).one()
        jobs = (
            await conn.execute(
                select(JobRun.function, JobRun.enqueued_at, JobRun.started_at, JobRun.finished_at)
                .where(JobRun.subject == f"document:{document_id}")
                .order_by(JobRun.enqueued_at)
            )
        ).all()
        steps = (
            await conn.execute(
                select(DocumentStep.step, DocumentStep.started_at, DocumentStep.finished_at)
                .where(DocumentStep.document_id == document_id)
                .order_by(DocumentStep.id)
            )
        ).all()

    def ms(at: datetime | None) -> float | None:
        return None if at is None else round((at - sent).total_seconds() * 1000, 1)

    def span(start: datetime | None, end: datetime | None) -> float | None:
        if start is None or end is None:
            return None
        return round((end - start).total_seconds() * 1000, 1)

    return {
        "file": path.name,
        "upload_request_ms": span(sent, answered),
        "row_created_ms": ms(document.created_at),
        "jobs": [
            {
                "function": job.function,
                "enqueued_ms": ms(job.enqueued_at),
                "queue_wait_ms": span(job.enqueued_at, job.started_at),
                "run_ms": span(job.started_at, job.finished_at),
            }
            for job in jobs
        ],
        "steps": [
            {"step": step.step, "work_ms": span(step.started_at, step.finished_at)}
            for step in steps
        ],
        "ready_ms": ms(document.ready_at),
        "mail_received_ms": ms(mailed),
    }


async def _unfinished(engine: Any, document_id: int) -> bool:
    async with engine.connect() as conn:
        unfinished = await conn.scalar(
            select(JobRun.id).where(
                JobRun.subject == f"document:{document_id}", JobRun.finished_at.is_(None)
            )
        )
    return unfinished is not None
