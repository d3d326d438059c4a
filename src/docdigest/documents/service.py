"""Documents: accept an upload, find, list, reprocess and delete (callers commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from docdigest.core.db import add_unless_exists, utcnow
from docdigest.core.errors import Conflict, NotFound, Unprocessable, UnsupportedMediaType
from docdigest.documents import sniff
from docdigest.documents.jobs import delete_document as delete_document_job
from docdigest.documents.jobs import extract_text
from docdigest.documents.models import Document, DocumentStatus
from docdigest.documents.removal import remove_document, remove_user_documents
from docdigest.documents.storage import Storage, new_key
from docdigest.documents.upload import ReceivedFile
from docdigest.jobs import enqueue
from docdigest.settings import Settings

MAX_PAGE = 100


@dataclass(frozen=True)
class Accepted:
    document: Document
    duplicate: bool


async def accept_upload(
    session: AsyncSession, storage: Storage, settings: Settings, *, user_id: int, file: ReceivedFile
) -> Accepted:
    """Store a received file as a new document and queue its processing.

    The same bytes uploaded again by the same user return the existing document.
    The temporary file is consumed (moved into storage or removed) in every case,
    and a stored copy no new document took is removed again.
    """
    unclaimed: str | None = None  # a storage key no document row holds (yet)
    try:
        if file.error is not None:
            raise file.error
        if file.size == 0:
            raise Unprocessable(f"'{file.filename}' is empty")
        # Usually sniffed already, in the thread that wrote the file's last bytes.
        content_type = file.content_type or await asyncio.to_thread(sniff.sniff, file.path)
        if content_type not in sniff.ALLOWED:
            raise UnsupportedMediaType(
                f"'{file.filename}' is {content_type}; allowed: {sniff.ALLOWED_NAMES}",
                detected=content_type,
                allowed=sorted(sniff.ALLOWED),
            )
        # Stored before the row is written: on SQLite the insert takes the database's
        # write lock until commit, and other uploads should not wait on a file move.
        key = unclaimed = new_key("originals")
        await storage.save(key, file.path)
        document = await add_unless_exists(
            session,
            Document,
            {
                "user_id": user_id,
                "filename": file.filename,
                "content_type": content_type,
                "size": file.size,
                "sha256": file.sha256,
                "storage_key": key,
                "status": DocumentStatus.QUEUED,
                "generation": 0,
                "created_at": utcnow(),
            },
        )
        if document is None:
            # The user uploaded these bytes before (or a concurrent request just did):
            # the unique (user, sha256) key turned the insert into a no-op.
            existing = await _find_by_hash(session, user_id, file.sha256)
            if existing is None:
                raise Conflict("the same file is being uploaded right now; try again")
            return Accepted(existing, duplicate=True)
        unclaimed = None
        set_committed_value(document, "steps", [])
        # The chain's first step, queued straight away. No unique key: the document
        # id is brand new, so nothing can collide, and a keyed enqueue costs three
        # more statements (lookup, savepoint, release).
        await enqueue(session, extract_text, document_id=document.id)
        if settings.retention_days:
            keep = timedelta(days=settings.retention_days)
            document.expires_at = document.created_at + keep
            await enqueue(
                session,
                delete_document_job,
                defer_by=keep,
                key=f"expire:{document.id}",
                document_id=document.id,
            )
        return Accepted(document, duplicate=False)
    finally:
        file.path.unlink(missing_ok=True)
        if unclaimed is not None:
            await storage.delete(unclaimed)


async def _find_by_hash(session: AsyncSession, user_id: int, sha256: str) -> Document | None:
    return await session.scalar(
        select(Document).where(Document.user_id == user_id, Document.sha256 == sha256)
    )


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
