"""Deleting documents: rows now, files once the deletion is committed."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import after_commit
from docdigest.documents.models import Document, DocumentStep
from docdigest.documents.storage import Storage


async def remove_document(session: AsyncSession, storage: Storage, document: Document) -> None:
    keys = [key for key in (document.storage_key, document.text_key) if key]
    await session.delete(document)
    delete_files_after_commit(session, storage, keys)


async def remove_user_documents(session: AsyncSession, storage: Storage, user_id: int) -> int:
    rows = (
        await session.execute(
            select(Document.id, Document.storage_key, Document.text_key).where(
                Document.user_id == user_id
            )
        )
    ).all()
    ids = [row.id for row in rows]
    if ids:
        await session.execute(delete(DocumentStep).where(DocumentStep.document_id.in_(ids)))
        await session.execute(delete(Document).where(Document.id.in_(ids)))
    keys = [key for row in rows for key in (row.storage_key, row.text_key) if key]
    delete_files_after_commit(session, storage, keys)
    return len(ids)


def delete_files_after_commit(session: AsyncSession, storage: Storage, keys: list[str]) -> None:
    """A rolled-back deletion keeps its files; a committed one loses them."""

    async def delete_files() -> None:
        for key in keys:
            await storage.delete(key)

    if keys:
        after_commit(session, delete_files)
