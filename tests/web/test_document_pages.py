"""The documents pages for their owner, a stranger and an anonymous visitor."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import utcnow
from docdigest.documents.models import Document, DocumentStatus, DocumentStep
from docdigest.documents.storage import Storage, new_key
from docdigest.settings import Settings
from docdigest.users.models import User
from tests.web.conftest import HTML, MakeClient, csrf_of, sign_up


async def user_id(db: async_sessionmaker[AsyncSession], email: str) -> int:
    async with db() as session:
        found = await session.scalar(select(User.id).where(User.email == email))
        assert found is not None
        return found


async def add_document(
    db: async_sessionmaker[AsyncSession],
    settings: Settings,
    owner: int,
    filename: str = "report.pdf",
    status: DocumentStatus = DocumentStatus.READY,
    text: str = "The quarterly report shows growth.",
) -> int:
    storage = Storage.from_settings(settings)
    original, text_key = new_key("originals"), new_key("texts")
    await storage.put_bytes(original, b"%PDF-1.4 fake")
    await storage.put_bytes(text_key, text.encode())
    started = utcnow() - timedelta(seconds=3)
    ready = status == DocumentStatus.READY
    document = Document(
        user_id=owner,
        filename=filename,
        content_type="application/pdf",
        size=2048,
        sha256=f"{owner}-{filename}".ljust(64, "0")[:64],
        storage_key=original,
        status=status,
        text_key=text_key if ready else None,
        text_chars=len(text) if ready else None,
        summary="Growth is strong this quarter." if ready else None,
        summary_source="extractive" if ready else None,
        failure_reason="file is corrupt" if status == DocumentStatus.FAILED else None,
        ready_at=utcnow() if ready else None,
        steps=[
            DocumentStep(step="extract", started_at=started, finished_at=started + timedelta(1)),
        ],
    )
    async with db() as session:
        session.add(document)
        await session.commit()
        return document.id


async def test_list_shows_only_the_owners_documents_with_status_and_excerpt(
    make_client: MakeClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    owner, stranger = await make_client(), await make_client()
    await sign_up(owner, "ada@example.com")
    await sign_up(stranger, "bob@example.com")
    await add_document(db, settings, await user_id(db, "ada@example.com"), "Résumé Ada.pdf")
    await add_document(
        db, settings, await user_id(db, "bob@example.com"), "bob-secret.pdf", DocumentStatus.QUEUED
    )

    page = await owner.get("/documents", headers=HTML)
    assert page.status_code == 200
    assert "Résumé Ada.pdf" in page.text
    assert "Growth is strong this quarter." in page.text
    assert "badge-ready" in page.text
    assert "bob-secret.pdf" not in page.text

    theirs = await stranger.get("/documents", headers=HTML)
    assert "bob-secret.pdf" in theirs.text
    assert "Résumé Ada.pdf" not in theirs.text
    assert 'hx-trigger="every 1s"' in theirs.text  # a queued document follows its status


async def test_empty_list_invites_an_upload(client: httpx.AsyncClient) -> None:
    await sign_up(client, "ada@example.com")
    page = await client.get("/documents", headers=HTML)
    assert "No documents yet." in page.text
    assert 'href="/upload"' in page.text


async def test_search_by_name_and_pages(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, "ada@example.com")
    owner = await user_id(db, "ada@example.com")
    for n in range(22):
        await add_document(db, settings, owner, f"invoice-{n:02d}.pdf")
    await add_document(db, settings, owner, "holiday plan.pdf")

    found = await client.get("/documents?q=holiday", headers=HTML)
    assert "holiday plan.pdf" in found.text
    assert "invoice-" not in found.text
    nothing = await client.get("/documents?q=zebra", headers=HTML)
    assert "No documents match" in nothing.text

    first = await client.get("/documents", headers=HTML)
    assert first.text.count('class="doc-name"') == 20
    assert "holiday plan.pdf" in first.text  # newest first
    older = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = await client.get(older.replace("&amp;", "&"), headers=HTML)
    assert second.text.count('class="doc-name"') == 3
    assert "invoice-00.pdf" in second.text
    assert "← Newest" in second.text


async def test_document_page_shows_summary_timeline_preview_and_downloads(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, "ada@example.com")
    doc = await add_document(db, settings, await user_id(db, "ada@example.com"))
    page = await client.get(f"/documents/{doc}", headers=HTML)
    assert page.status_code == 200
    assert "Growth is strong this quarter." in page.text
    assert "extractive summary (offline)" in page.text
    assert "<strong>extract</strong>" in page.text
    assert "The quarterly report shows growth." in page.text
    for kind in ("original", "text", "summary"):
        assert f'href="/api/documents/{doc}/{kind}"' in page.text
    assert "Yes, delete it" in page.text

    status = await client.get(f"/documents/{doc}/status", headers=HTML)
    assert "badge-ready" in status.text
    assert "hx-trigger" not in status.text  # final: polling stops


async def test_failed_document_shows_its_reason(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, "ada@example.com")
    doc = await add_document(
        db, settings, await user_id(db, "ada@example.com"), status=DocumentStatus.FAILED
    )
    page = await client.get(f"/documents/{doc}", headers=HTML)
    assert "file is corrupt" in page.text
    assert "No summary: processing failed." in page.text


async def test_strangers_and_anonymous_visitors_see_nothing_and_change_nothing(
    make_client: MakeClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    owner, stranger, anonymous = await make_client(), await make_client(), await make_client()
    await sign_up(owner, "ada@example.com")
    await sign_up(stranger, "bob@example.com")
    doc = await add_document(db, settings, await user_id(db, "ada@example.com"), "private.pdf")

    token = csrf_of((await stranger.get("/settings", headers=HTML)).text)
    for path in (f"/documents/{doc}", f"/documents/{doc}/status"):
        response = await stranger.get(path, headers=HTML)
        assert response.status_code == 404, path
        assert "private.pdf" not in response.text
        assert "Page not found" in response.text
    for path in (f"/documents/{doc}/reprocess", f"/documents/{doc}/delete"):
        response = await stranger.post(path, data={"csrf_token": token}, headers=HTML)
        assert response.status_code == 404, path

    for path in ("/documents", f"/documents/{doc}", "/upload", "/settings"):
        response = await anonymous.get(path, headers=HTML)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    response = await anonymous.post(f"/documents/{doc}/delete", data={}, headers=HTML)
    assert response.status_code in (303, 403)

    async with db() as session:
        kept = await session.get(Document, doc)
        assert kept is not None
        assert kept.status == DocumentStatus.READY
        steps = await session.scalar(
            select(func.count()).select_from(DocumentStep).where(DocumentStep.document_id == doc)
        )
        assert steps == 1
    assert (await owner.get(f"/documents/{doc}", headers=HTML)).status_code == 200


async def test_owner_deletes_a_document_after_confirming(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, "ada@example.com")
    doc = await add_document(db, settings, await user_id(db, "ada@example.com"))
    page = await client.get(f"/documents/{doc}", headers=HTML)
    response = await client.post(
        f"/documents/{doc}/delete", data={"csrf_token": csrf_of(page.text)}, headers=HTML
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/documents"
    async with db() as session:
        assert await session.get(Document, doc) is None
    assert (await client.get(f"/documents/{doc}", headers=HTML)).status_code == 404


async def test_api_errors_stay_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/documents/12345", headers=HTML)
    assert response.headers["content-type"].startswith("application/json")
    missing = await client.get("/no/such/page", headers=HTML)
    assert missing.status_code == 404
    assert "Page not found" in missing.text
    assert (
        (await client.get("/no/such/page")).headers["content-type"].startswith("application/json")
    )


async def test_owner_reprocesses_a_finished_document(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, "ada@example.com")
    doc = await add_document(db, settings, await user_id(db, "ada@example.com"))
    page = await client.get(f"/documents/{doc}", headers=HTML)
    response = await client.post(
        f"/documents/{doc}/reprocess", data={"csrf_token": csrf_of(page.text)}, headers=HTML
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/documents/{doc}"
    again = await client.get(f"/documents/{doc}", headers=HTML)
    assert "badge-queued" in again.text
    assert 'hx-trigger="every 1s"' in again.text  # the page follows the new run live
    assert "Reprocess" not in again.text.split("Downloads and actions")[1]


async def test_polling_stops_cleanly_when_the_document_or_the_session_is_gone(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, "ada@example.com")
    doc = await add_document(db, settings, await user_id(db, "ada@example.com"))
    poll = {"HX-Request": "true", **HTML}
    async with db() as session:
        document = await session.get(Document, doc)
        await session.delete(document)
        await session.commit()
    gone = await client.get(f"/documents/{doc}/status", headers=poll)
    assert gone.status_code == 200
    assert "deleted" in gone.text
    assert "hx-trigger" not in gone.text

    client.cookies.clear()
    from_page = {"HX-Current-URL": "http://testserver/upload", **poll}
    expired = await client.get(f"/documents/{doc}/status", headers=from_page)
    assert expired.headers["HX-Redirect"] == "/login?next=/upload"


async def test_a_ready_document_without_text_says_so_and_stops_waiting(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await sign_up(client, "ada@example.com")
    document_id = await add_document(db, settings, await user_id(db, "ada@example.com"), "scan.pdf")
    async with db() as session:
        document = await session.get(Document, document_id)
        assert document is not None
        document.summary, document.summary_source = None, None
        document.note = "No text found: this looks like a scanned PDF (no OCR yet)."
        await session.commit()

    page = await client.get(f"/documents/{document_id}", headers=HTML)

    assert "No text found: this looks like a scanned PDF" in page.text
    assert "No summary: no text was found to summarize." in page.text
    assert "on its way" not in page.text
    assert 'hx-trigger="every 1s"' not in page.text
