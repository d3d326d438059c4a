"""Documents: accept an upload, find, list, reprocess and delete (callers commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from docdigest.core.db import utcnow
from docdigest.core.errors import AppError, Conflict, NotFound, Unprocessable, UnsupportedMediaType
from docdigest.core.rows import detached, insert_with_children
from docdigest.documents import sniff
from docdigest.documents.jobs import delete_document as delete_document_job
from docdigest.documents.jobs import extract_text
from docdigest.documents.models import Document, DocumentStatus
from docdigest.documents.received import ReceivedFile
from docdigest.documents.removal import remove_document, remove_user_documents
from docdigest.documents.storage import Storage
from docdigest.jobs import Call, enqueue
from docdigest.jobs.context import request_id
from docdigest.jobs.enqueue import ledger_rows
from docdigest.jobs.models import JobRun
from docdigest.settings import Settings

MAX_PAGE = 100
_documents = Document.__table__


@dataclass(frozen=True)
class Accepted:
    document: Document
    duplicate: bool


@dataclass(frozen=True)
class Stored:
    """An upload that passed its checks and sits in storage under `key`, waiting for its row."""

    user_id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    key: str
    request_id: str | None = field(default_factory=request_id.get)


async def check_upload(file: ReceivedFile) -> str:
    """The received file's content type, or the error that refuses it."""
    if file.error is not None:
        raise file.error
    if file.size == 0:
        raise Unprocessable(f"'{file.filename}' is empty")
    # Usually sniffed already, right after the file's last bytes were written.
    content_type = file.content_type or await asyncio.to_thread(sniff.sniff, file.path)
    if content_type not in sniff.ALLOWED:
        raise UnsupportedMediaType(
            f"'{file.filename}' is {content_type}; allowed: {sniff.ALLOWED_NAMES}",
            detected=content_type,
            allowed=sorted(sniff.ALLOWED),
        )
    return content_type


async def add_documents(
    conn: AsyncConnection, settings: Settings, uploads: Sequence[Stored]
) -> tuple[list[Accepted | AppError], list[JobRun]]:
    """The documents for stored uploads, with their first jobs, in `conn`'s
    transaction: one insert for the documents and one for the jobs, without a session
    (`core/rows.py` `insert_with_children`). The caller commits, then pushes the jobs
    returned.

    The same bytes uploaded again by the same user (before, or in this same batch)
    give the existing document, marked a duplicate, and no new job; its upload's
    stored copy is claimed by no row, and the caller removes it.
    """
    now = utcnow()
    keep = timedelta(days=settings.retention_days) if settings.retention_days else None
    rows = [
        {
            "user_id": upload.user_id,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": upload.size,
            "sha256": upload.sha256,
            "storage_key": upload.key,
            "status": DocumentStatus.QUEUED,
            "generation": 0,
            "created_at": now,
            "expires_at": now + keep if keep else None,
        }
        for upload in uploads
    ]
    requests = {upload.key: upload.request_id for upload in uploads}

    def first_jobs(document: Mapping[str, Any]) -> list[dict[str, Any]]:
        document_id, request = document["id"], requests[document["storage_key"]]
        # The chain's first step. No unique key: the document id is brand new, so
        # nothing can collide, and a keyed enqueue costs a lookup when one does.
        calls = [Call(extract_text, {"document_id": document_id}, request_id=request)]
        if keep:
            expire = Call(
                delete_document_job,
                {"document_id": document_id},
                defer_by=keep,
                key=f"expire:{document_id}",
                request_id=request,
            )
            calls.append(expire)
        return ledger_rows(calls, settings, now)

    added, runs = await insert_with_children(conn, Document, rows, JobRun, first_jobs)
    by_hash = {(document.user_id, document.sha256): document for document in added}
    for document in added:
        set_committed_value(document, "steps", [])
    missing = {(u.user_id, u.sha256) for u in uploads} - by_hash.keys()
    if missing:
        # The users uploaded these bytes before (or a concurrent request just did):
        # the unique (user, sha256) key turned their inserts into no-ops.
        for document in await _find_by_hashes(conn, missing):
            by_hash[document.user_id, document.sha256] = document
    outcomes: list[Accepted | AppError] = []
    for upload in uploads:
        found = by_hash.get((upload.user_id, upload.sha256))
        if found is None:
            outcomes.append(Conflict("the same file is being uploaded right now; try again"))
        else:
            outcomes.append(Accepted(found, duplicate=found.storage_key != upload.key))
    return outcomes, runs


async def _find_by_hashes(conn: AsyncConnection, pairs: set[tuple[int, str]]) -> list[Document]:
    users = {user_id for user_id, _ in pairs}
    hashes = {sha256 for _, sha256 in pairs}
    found = await conn.execute(
        select(*_documents.c).where(
            _documents.c.user_id.in_(users), _documents.c.sha256.in_(hashes)
        )
    )
    documents = [detached(Document, row._mapping) for row in found]
    return [document for document in documents if (document.user_id, document.sha256) in pairs]


async def list_documents(
    session: AsyncSession,
    user_id: int,
    *,
    query: str | None = None,
    limit: int = 20,
    before_id: int | None = None,
) -> Sequence[Document]:
    """The user's documents, newest first; `before_id` continues after a page."""
    statement = select(Document).where(Document.user_id == user_id)
    if query:
        statement = statement.where(
            func.lower(Document.filename).contains(query.lower(), autoescape=True)
        )
    if before_id is not None:
        statement = statement.where(Document.id < before_id)
    statement = statement.order_by(Document.id.desc()).limit(max(1, min(limit, MAX_PAGE + 1)))
    return (await session.scalars(statement)).all()


async def get_document(session: AsyncSession, user_id: int, document_id: int) -> Document:
    """The user's document; someone else's is indistinguishable from a missing one."""
    document = await session.get(Document, document_id)
    if document is None or document.user_id != user_id:
        raise NotFound("document not found")
    return document


async def reprocess_document(session: AsyncSession, user_id: int, document_id: int) -> Document:
    """Run the whole chain again (after a change of summarizer, say)."""
    document = await get_document(session, user_id, document_id)
    if document.status not in (DocumentStatus.READY, DocumentStatus.FAILED):
        raise Conflict("the document is still being processed")
    document.status = DocumentStatus.QUEUED
    document.failure_reason = None
    document.note = None
    document.processed_at = None
    document.generation += 1
    # The key `process_document` would use, so the chain starts once per generation.
    await enqueue(
        session,
        extract_text,
        key=f"extract:{document.id}:{document.generation}",
        document_id=document.id,
    )
    return document


async def delete_document(
    session: AsyncSession, user_id: int, document_id: int, *, storage: Storage
) -> None:
    document = await get_document(session, user_id, document_id)
    await remove_document(session, storage, document)


async def delete_user_documents(session: AsyncSession, storage: Storage, user_id: int) -> int:
    """Remove every document of a user (account deletion); returns how many."""
    return await remove_user_documents(session, storage, user_id)
