"""The processing chain: extract_text → summarize_document (LLM summaries only) → email_user.

An upload queues `extract_text` itself. `process_document` starts the same chain
by name for callers that have only a document id (and for jobs queued before the
upload did so); it only queues `extract_text`, so the upload skips that hop.

Each step loads its document by id, returns at once if its work is done, and
enqueues the next step in the same transaction as its own result.

`extract_text` commits its progress ("extracting", then "summarizing" with the
stored text) only once it has run `WORTH_KEEPING_S`, beside the slow part that is
then under way. A document done sooner is written once, when the job ends, with
both steps on its timeline: a state shown for less than half the page's refresh
is one nobody sees, and each of those commits cost the document a transaction.
A document that takes longer shows each step as it runs, and a retry after a
crash resumes from its stored text.

The extractive summary is made by `extract_text` itself, right after the text:
it is local CPU work of a fraction of a second that no retry could help, so a job
of its own would only add a queue hop, a transaction and a second read of the
text, and in a burst of uploads it would wait behind every extraction queued
before it. `summarize_document` is the step for the LLM summarizer, whose calls
are slow and fail in ways worth retrying on their own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from docdigest.core.db import commit, rollback
from docdigest.core.rows import load
from docdigest.documents import pipeline
from docdigest.documents.extract import ExtractionFailed
from docdigest.documents.models import Document, DocumentStatus, DocumentStep
from docdigest.documents.removal import remove_document
from docdigest.documents.storage import Storage
from docdigest.jobs import JobContext, JobSpec, enqueue, job
from docdigest.mail.mailer import Mailer
from docdigest.mail.outbox import public_base_url, send_once

#: How long `extract_text` runs before it commits its progress: the most of its work
#: a crash can lose, and half the document page's refresh (every second).
WORTH_KEEPING_S = 0.5


@job(timeout_s=30, subject="document:{document_id}")
async def process_document(jc: JobContext, document_id: int) -> None:
    document = await _document(jc, document_id)
    if document is None or document.status != DocumentStatus.QUEUED:
        return
    await enqueue(
        jc.session,
        extract_text,
        key=f"extract:{document_id}:{document.generation}",
        document_id=document_id,
    )


@job(timeout_s=120, subject="document:{document_id}")
async def extract_text(jc: JobContext, document_id: int) -> None:
    document = await _document(jc, document_id)
    if document is None:
        return
    _revive(jc, document, DocumentStatus.EXTRACTING)
    if document.status == DocumentStatus.SUMMARIZING:
        # An earlier try of this job stored the text and began the summary.
        await _summarize_next(jc, document, None)
        return
    if document.status not in (DocumentStatus.QUEUED, DocumentStatus.EXTRACTING):
        return
    document.status = DocumentStatus.EXTRACTING
    step = pipeline.begin_step(
        jc.session, document.id, pipeline.EXTRACT, attempt=jc.attempt, job_id=jc.job_id
    )
    storage = jc.resource(Storage)
    keep_by = time.monotonic() + WORTH_KEEPING_S
    # The extraction runs in a process of its own: "extracting" is committed beside
    # it once the job has run WORTH_KEEPING_S, and not at all if it is done by then.
    extraction = asyncio.ensure_future(
        pipeline.extract(storage, jc.settings, document.storage_key, document.content_type)
    )
    kept = await _kept_unless_done(jc, extraction, keep_by)
    try:
        extracted = await extraction
        await pipeline.store_text(jc.session, storage, document, extracted)
    except ExtractionFailed as exc:
        pipeline.fail_document(document, step, str(exc))
        return
    except Exception as exc:
        await _record_error(jc, document.id, step, exc, kept=kept)
        raise
    pipeline.finish_step(step)
    document.status = DocumentStatus.SUMMARIZING
    await _summarize_next(jc, document, extracted.text, keep_by=keep_by)


async def _summarize_next(
    jc: JobContext, document: Document, text: str | None, *, keep_by: float = 0.0
) -> None:
    """The extractive summary here and now; an LLM summary as a job of its own."""
    if jc.settings.summarizer == "extractive":
        await _summarize(jc, document, text, keep_by=keep_by)
        return
    await enqueue(
        jc.session,
        summarize_document,
        key=f"summarize:{document.id}:{document.generation}",
        document_id=document.id,
    )


@job(timeout_s=120, subject="document:{document_id}")
async def summarize_document(jc: JobContext, document_id: int) -> None:
    document = await _document(jc, document_id)
    if document is None:
        return
    if document.text_key is not None:
        _revive(jc, document, DocumentStatus.SUMMARIZING)
    if document.status != DocumentStatus.SUMMARIZING:
        return
    await _summarize(jc, document, None)


async def _summarize(
    jc: JobContext, document: Document, text: str | None, *, keep_by: float = 0.0
) -> None:
    """Summarize `text` (None: the stored text), mark the document ready, queue its mail.

    "summarizing" is committed before the summary, or, given `keep_by` (a monotonic
    time), only if the summary is not done by then.
    """
    step = pipeline.begin_step(
        jc.session, document.id, pipeline.SUMMARIZE, attempt=jc.attempt, job_id=jc.job_id
    )
    stored = text is None
    if stored:
        await commit(jc.session)
    try:
        if text is None:
            text = await pipeline.read_text(jc.resource(Storage), document)
    except Exception as exc:
        await _record_error(jc, document.id, step, exc)
        raise
    summarizing = asyncio.ensure_future(
        pipeline.summarize(text, jc.settings, last_try=jc.is_last_try)
    )
    kept = stored or await _kept_unless_done(jc, summarizing, keep_by)
    try:
        summary = await summarizing
    except Exception as exc:
        await _record_error(jc, document.id, step, exc, kept=kept)
        raise
    pipeline.mark_ready(document, summary)
    pipeline.finish_step(step)
    await enqueue(jc.session, email_user, user_id=document.user_id, document_id=document.id)


@job(timeout_s=60, subject="document:{document_id}")
async def email_user(jc: JobContext, user_id: int, document_id: int) -> None:
    mail = await pipeline.ready_mail(jc.session, user_id, document_id)
    if mail is None:
        return
    step = pipeline.begin_step(
        jc.session, document_id, pipeline.EMAIL, attempt=jc.attempt, job_id=jc.job_id
    )
    context = {
        "user": {"name": mail.name, "email": mail.email},
        "document": {"id": document_id, "filename": mail.filename},
        "summary": mail.summary or mail.note or "",
        "summary_source": mail.summary_source,
        "url": f"{public_base_url(jc.settings)}/documents/{document_id}",
    }
    try:
        # The step ends in the transaction that marks the mail sent.
        sent = await send_once(
            jc.session,
            jc.resource(Mailer),
            key=f"doc-ready:{document_id}",
            to=mail.email,
            template="document_ready",
            context=context,
            on_sent=lambda: pipeline.finish_step(step),
        )
    except Exception as exc:
        # The document stays ready: only the mail is late.
        await _record_error(jc, document_id, step, exc, fails_document=False)
        raise
    if not sent:
        pipeline.finish_step(step)


@job(timeout_s=60, subject="document:{document_id}")
async def delete_document(jc: JobContext, document_id: int) -> None:
    """Retention: remove a document once its time is up."""
    document = await jc.session.get(Document, document_id)
    if document is not None:
        await remove_document(jc.session, jc.resource(Storage), document)


async def _kept_unless_done(jc: JobContext, work: asyncio.Future[Any], keep_by: float) -> bool:
    """Commit the session's changes unless `work` is done by `keep_by`; whether it committed.

    If the commit fails or the job is cancelled meanwhile, `work` is cancelled too.
    """
    try:
        wait_s = keep_by - time.monotonic()
        if wait_s > 0 and (await asyncio.wait({work}, timeout=wait_s))[0]:
            return False
        await commit(jc.session)
    except BaseException:
        work.cancel()
        work.add_done_callback(_discard)
        raise
    return True


def _discard(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of work no longer wanted, so it is not logged as lost."""
    if not task.cancelled():
        task.exception()


async def _document(jc: JobContext, document_id: int) -> Document | None:
    # Without its steps: no step reads them, and loading them is one more query a job.
    return await load(jc.session, Document, document_id)


def _revive(jc: JobContext, document: Document, status: DocumentStatus) -> None:
    """Take up a document this job failed, once an operator has requeued the job.

    A step's error fails its document when no try follows (`_record_error`); the
    runbook's answer, after a fix, is to requeue the failed jobs. A file that cannot
    be extracted fails its document without failing the job, so only a job's own
    failure can be requeued.
    """
    if document.status == DocumentStatus.FAILED and jc.requeued:
        document.status = status
        document.failure_reason = None
        document.processed_at = None


async def _record_error(
    jc: JobContext,
    document_id: int,
    step: DocumentStep,
    exc: Exception,
    *,
    fails_document: bool = True,
    kept: bool = True,
) -> None:
    """Keep the failed try on the timeline; when no try follows, the document fails with it.

    No try follows the last one, nor an error that another try cannot help (a file
    missing from storage, a bug): the job fails at once, and a document left in its
    step would look busy for ever. Progress not yet `kept` is committed first: the
    step that failed, and a stored text for the next try to resume from.
    """
    if not kept:
        await commit(jc.session)
    step_id, step_name = step.id, step.step
    # The error may have broken the transaction: start clean and reload.
    await rollback(jc.session)
    step = await jc.session.get_one(DocumentStep, step_id)
    document = await jc.session.get_one(Document, document_id)
    error = pipeline.describe_error(exc)
    pipeline.finish_step(step, error)
    if fails_document and not jc.will_retry(exc):
        pipeline.fail_document(document, step, f"{step_name} failed: {error}")
    await commit(jc.session)


JOBS: list[JobSpec] = [
    process_document,
    extract_text,
    summarize_document,
    email_user,
    delete_document,
]
