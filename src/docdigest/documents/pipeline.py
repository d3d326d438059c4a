"""The work of each processing step, and the timeline row that records each try of it."""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import utcnow
from docdigest.documents.extract import Extracted, ExtractionFailed, Limits, extract_file
from docdigest.documents.models import Document, DocumentStatus, DocumentStep
from docdigest.documents.removal import delete_files_after_commit
from docdigest.documents.storage import Storage, new_key
from docdigest.jobs.retry import is_transient
from docdigest.settings import Settings
from docdigest.users.models import User

log = logging.getLogger(__name__)

EXTRACT, SUMMARIZE, EMAIL = "extract", "summarize", "email"
# Extraction must end well inside its job's timeout, whatever the settings say.
MAX_EXTRACT_WALL_S = 100.0
LLM_DEADLINE_S = 100.0


def begin_step(
    session: AsyncSession, document_id: int, step: str, *, attempt: int, job_id: str
) -> DocumentStep:
    row = DocumentStep(
        document_id=document_id, step=step, attempt=attempt, job_id=job_id, started_at=utcnow()
    )
    session.add(row)
    return row


def finish_step(row: DocumentStep, error: str | None = None) -> None:
    row.finished_at = utcnow()
    row.error = error


def fail_document(document: Document, row: DocumentStep, reason: str) -> None:
    finish_step(row, reason)
    document.status = DocumentStatus.FAILED
    document.failure_reason = reason
    document.processed_at = utcnow()


async def extract(storage: Storage, settings: Settings, key: str, content_type: str) -> Extracted:
    """The text of the stored file `key`, extracted in the sandbox; raises ExtractionFailed."""
    limits = Limits.from_settings(settings)
    if limits.wall_s > MAX_EXTRACT_WALL_S:
        limits = Limits(limits.cpu_s, MAX_EXTRACT_WALL_S, limits.memory_mb, limits.max_chars)
    try:
        async with storage.local_path(key) as path:
            return await extract_file(path, content_type, limits)
    except FileNotFoundError:
        raise ExtractionFailed("the uploaded file is missing from storage") from None


async def store_text(
    session: AsyncSession, storage: Storage, document: Document, extracted: Extracted
) -> None:
    old_key, key = document.text_key, new_key("texts", ".txt")
    await storage.put_bytes(key, extracted.text.encode())
    # Only once the text is there: an error before leaves the document as it was.
    document.text_key = key
    document.text_chars = len(extracted.text)
    document.note = extracted.note
    if old_key:  # from an earlier run (reprocessing)
        delete_files_after_commit(session, storage, [old_key])


async def read_text(storage: Storage, document: Document) -> str:
    if not document.text_key:
        return ""
    return (await storage.read_bytes(document.text_key)).decode()


@dataclass(frozen=True)
class Summary:
    text: str | None
    source: str | None
    note: str | None = None


def load_summarizers(settings: Settings) -> None:
    """Import the summarizers `settings` asks for; a worker calls it as it starts.

    Only workers summarize. The web process imports this module for its jobs and is
    spared what the summarizers import: numpy (~17 MB) and, for LLM summaries,
    openai's client (~40 MB and 0.4 s of imports).
    """
    importlib.import_module("docdigest.documents.summarize")
    if settings.summarizer == "llm":
        importlib.import_module("docdigest.documents.summarize.llm")


async def summarize(text: str, settings: Settings, *, last_try: bool) -> Summary:
    """The configured summary of `text`.

    A transient LLM error propagates so the job tier retries it, except on the
    last try, where (like any permanent error) it falls back to the extractive
    summary and says why.
    """
    if not text.strip():
        return Summary(None, None)
    if settings.summarizer == "llm":
        from docdigest.documents.summarize.llm import LlmSummarizer

        llm = LlmSummarizer(settings)
        try:
            async with asyncio.timeout(LLM_DEADLINE_S):
                result = await llm.summarize(text)
            return Summary(result, llm.source)
        except Exception as exc:
            if is_transient(exc) and not last_try:
                raise
            reason = f"LLM summary failed ({describe_error(exc)}); used the extractive summary"
            log.warning("llm summary failed, falling back", extra={"error": reason})
            fallback = await _extractive(text, settings)
            return Summary(fallback, "extractive-fallback", reason)
        finally:
            await llm.close()
    return Summary(await _extractive(text, settings), "extractive")


async def _extractive(text: str, settings: Settings) -> str:
    from docdigest.documents.summarize import summarize_extractive

    return await asyncio.to_thread(summarize_extractive, text, settings.summary_sentences)


def describe_error(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # Not the path, which is the server's business: the job ledger keeps it.
        return exc.strerror
    message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {message}" if status else message


def mark_ready(document: Document, summary: Summary) -> None:
    document.summary = summary.text
    document.summary_source = summary.source
    if summary.note:
        document.note = f"{document.note}; {summary.note}" if document.note else summary.note
    document.status = DocumentStatus.READY
    document.ready_at = document.processed_at = utcnow()


#: The ready mail's filename, summary, note, summary source, and its user's name and email.
ReadyMail = Row[str, str | None, str | None, str | None, str, str]


async def ready_mail(session: AsyncSession, user_id: int, document_id: int) -> ReadyMail | None:
    """What the ready mail says, or None once there is nothing to send (see `_ready_mail`)."""
    conn = await session.connection()
    params = {"user_id": user_id, "document_id": document_id}
    return (await conn.execute(_READY_MAIL, params)).first()


def _ready_mail() -> Select[str, str | None, str | None, str | None, str, str]:
    """What the ready mail says, read in one query: no row unless the document is
    ready, its user is there and no earlier try of this step sent the mail.

    Columns, not instances: the job changes neither row, and loading the two and then
    looking for the step took three queries and the ORM's loading of each. Built once,
    with the ids as parameters, and run on the session's connection.
    """
    sent_before = (
        select(DocumentStep.id)
        .where(
            DocumentStep.document_id == Document.id,
            DocumentStep.step == EMAIL,
            DocumentStep.finished_at.is_not(None),
            DocumentStep.error.is_(None),
        )
        .exists()
    )
    return (
        select(
            Document.filename,
            Document.summary,
            Document.note,
            Document.summary_source,
            User.name,
            User.email,
        )
        .join(User, User.id == bindparam("user_id"))
        .where(
            Document.id == bindparam("document_id"),
            Document.status == DocumentStatus.READY,
            ~sent_before,
        )
    )


_READY_MAIL = _ready_mail()
