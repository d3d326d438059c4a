"""The upload page, the documents list, one document's page and its live status fragment."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from docdigest.core.db import SessionDep
from docdigest.core.errors import NotFound
from docdigest.documents import service
from docdigest.documents.models import Document
from docdigest.documents.storage import Storage
from docdigest.settings import Settings
from docdigest.web.deps import PageUser, redirect, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
PREVIEW_BYTES = 6000


@router.get("/upload", response_class=HTMLResponse)
async def upload_page(request: Request, user: PageUser) -> HTMLResponse:
    return render(request, "upload.html", user=user)


@router.get("/documents", response_class=HTMLResponse)
async def documents_page(
    request: Request, session: SessionDep, user: PageUser, q: str = "", before: int | None = None
) -> HTMLResponse:
    query = q.strip()
    # One more than a page tells whether an older page exists.
    documents = list(
        await service.list_documents(
            session, user.id, query=query or None, limit=PAGE_SIZE + 1, before_id=before
        )
    )
    has_older = len(documents) > PAGE_SIZE
    documents = documents[:PAGE_SIZE]
    search = {"q": query} if query else {}
    older_url = (
        f"/documents?{urlencode(search | {'before': documents[-1].id})}" if has_older else None
    )
    first_url = f"/documents?{urlencode(search)}".rstrip("?") if before is not None else None
    return render(
        request,
        "documents.html",
        documents=documents,
        query=query,
        older_url=older_url,
        first_url=first_url,
    )


async def text_preview(settings: Settings, document: Document) -> tuple[str, bool]:
    """The start of the extracted text, cut at a character boundary."""
    if not document.text_key:
        return "", False
    storage = Storage.from_settings(settings)
    head = b""
    try:
        async for chunk in storage.iter_chunks(document.text_key, 0, PREVIEW_BYTES - 1):
            head += chunk
    except FileNotFoundError:
        return "", False
    truncated = (document.text_chars or 0) > len(head) or len(head) >= PREVIEW_BYTES
    return head.decode("utf-8", errors="ignore"), truncated


@router.get("/documents/{document_id}", response_class=HTMLResponse)
async def document_page(
    request: Request, session: SessionDep, user: PageUser, document_id: int
) -> HTMLResponse:
    document = await service.get_document(session, user.id, document_id)
    preview, truncated = await text_preview(request.app.state.settings, document)
    return render(
        request, "document.html", doc=document, preview=preview, preview_truncated=truncated
    )


@router.get("/documents/{document_id}/status", response_class=HTMLResponse)
async def document_status(
    request: Request, session: SessionDep, user: PageUser, document_id: int
) -> HTMLResponse:
    try:
        document = await service.get_document(session, user.id, document_id)
    except NotFound:
        if not request.headers.get("HX-Request"):
            raise
        # Deleted meanwhile (maybe in another tab): answer so that the polling stops.
        return render(request, "_status_gone.html")
    return render(request, "_status.html", doc=document)


@router.post("/documents/{document_id}/reprocess")
async def reprocess(session: SessionDep, user: PageUser, document_id: int) -> Response:
    await service.reprocess_document(session, user.id, document_id)
    return redirect(f"/documents/{document_id}")


@router.post("/documents/{document_id}/delete")
async def delete(
    request: Request, session: SessionDep, user: PageUser, document_id: int
) -> Response:
    storage = Storage.from_settings(request.app.state.settings)
    await service.delete_document(session, user.id, document_id, storage=storage)
    return redirect("/documents")
