"""From upload to `ready` through the real worker and mail: every type, a document
processed twice, and what its owner sees on the way. Faults: test_processing_faults."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import commit
from docdigest.core.queue import connect_queue
from docdigest.documents import jobs, pipeline
from docdigest.documents.extract import extract_file
from docdigest.documents.jobs import process_document
from docdigest.documents.models import DocumentStep
from docdigest.jobs import enqueue
from docdigest.jobs.models import JobRun
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.documents import files
from tests.documents.conftest import (
    Account,
    Upload,
    document_past,
    fetch_document,
    load_document,
    ready_mails,
    timeline,
)


async def test_every_supported_type_becomes_ready_with_a_summary_and_one_mail(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    smtp: Any,
) -> None:
    ids = {}
    for name, (content_type, data) in files.good_files().items():
        response = await upload(alice, name, data)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        assert response.json()["content_type"] == content_type
        ids[name] = response.json()["id"]

    await run_worker()

    for name, document_id in ids.items():
        body = (await client.get(f"/api/documents/{document_id}", headers=alice.headers)).json()
        assert body["status"] == "ready", (name, body)
        assert body["summary_source"] == "extractive"
        assert {"keepers", "lens", "ships", "towers"} & set(body["summary"].lower().split())
        assert body["processed_at"] is not None
        assert [step["step"] for step in body["timeline"]] == ["extract", "summarize", "email"]
        assert all(step["finished_at"] and not step["error"] for step in body["timeline"])
    mails = ready_mails(smtp)
    assert sorted(mails) == sorted(f"Your document '{name}' is ready" for name in ids)
    html = next(m for m in smtp.messages if "lighthouses.html" in str(m["Subject"]))
    assert "alert" not in html.get_body(("plain",)).get_content()


async def test_processing_twice_gives_one_summary_and_one_mail(
    settings: Settings,
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    db: async_sessionmaker[AsyncSession],
    smtp: Any,
) -> None:
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]
    await run_worker()
    first = await load_document(db, document_id)

    queue = await connect_queue(settings)
    async with db(info={"queue": queue}) as session:
        await enqueue(session, process_document, document_id=document_id)
        await commit(session)
    await run_worker()
    await queue.aclose()

    again = await load_document(db, document_id)
    assert again.summary == first.summary
    assert again.processed_at == first.processed_at
    assert len(ready_mails(smtp)) == 1
    async with db() as session:
        steps = (await session.scalars(select(DocumentStep.step))).all()
    assert sorted(steps) == ["email", "extract", "summarize"]


async def test_reprocess_runs_the_chain_again_without_a_second_mail(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    smtp: Any,
) -> None:
    document_id = (await upload(alice, "notes.md", files.markdown_bytes())).json()["id"]
    busy = await client.post(f"/api/documents/{document_id}/reprocess", headers=alice.headers)
    assert busy.status_code == 409
    await run_worker()

    response = await client.post(f"/api/documents/{document_id}/reprocess", headers=alice.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    await run_worker()

    body = (await client.get(f"/api/documents/{document_id}", headers=alice.headers)).json()
    assert body["status"] == "ready"
    assert [s["step"] for s in body["timeline"]] == [
        "extract",
        "summarize",
        "email",
        "extract",
        "summarize",
    ]
    text = await client.get(f"/api/documents/{document_id}/text", headers=alice.headers)
    assert "Lighthouses" in text.text
    assert len(ready_mails(smtp)) == 1


async def test_scanned_pdf_is_ready_with_an_honest_note(
    client: httpx.AsyncClient, alice: Account, upload: Upload, run_worker: RunWorker, smtp: Any
) -> None:
    document_id = (await upload(alice, "scan.pdf", files.scanned_pdf_bytes())).json()["id"]
    await run_worker()
    body = (await client.get(f"/api/documents/{document_id}", headers=alice.headers)).json()
    assert body["status"] == "ready"
    assert "no text found" in body["note"]
    assert body["summary"] is None
    assert len(ready_mails(smtp)) == 1


async def test_in_a_burst_each_document_is_ready_before_the_next_is_extracted(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    db: async_sessionmaker[AsyncSession],
) -> None:
    """The extractive summary is made by the extraction job itself: no summary waits
    in the queue behind the extractions of everything uploaded after its document."""
    uploads = {
        "first.txt": files.text_bytes(),
        "second.md": files.markdown_bytes(),
        "third.html": files.html_bytes(),
    }
    ids = [(await upload(alice, name, data)).json()["id"] for name, data in uploads.items()]

    await run_worker(max_jobs=1)

    bodies = [(await client.get(f"/api/documents/{i}", headers=alice.headers)).json() for i in ids]
    assert [b["status"] for b in bodies] == ["ready"] * 3
    for body, later in itertools.pairwise(bodies):
        extract_of_later = later["timeline"][0]
        assert extract_of_later["step"] == "extract"
        ready_at = datetime.fromisoformat(body["ready_at"])
        assert ready_at < datetime.fromisoformat(extract_of_later["started_at"]), (body, later)
    async with db() as session:
        functions = (
            await session.scalars(
                select(JobRun.function).where(JobRun.subject == f"document:{ids[0]}")
            )
        ).all()
    assert sorted(functions) == ["email_user", "extract_text"]


async def test_while_its_text_is_extracted_the_owner_sees_extracting(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An extraction still running `WORTH_KEEPING_S` after its job began has
    "extracting" committed beside it, so the owner sees the step begin rather than
    a queued document."""
    real_extract_file = extract_file
    seen: list[tuple[str, list[tuple[str, str | None]], bool]] = []

    async def watched(*args: Any) -> Any:
        body = await document_past(client, alice, document_id, ("queued",))
        step = body["timeline"][0] if body["timeline"] else {}
        seen.append((body["status"], timeline(body), step.get("finished_at") is None))
        return await real_extract_file(*args)

    monkeypatch.setattr(pipeline, "extract_file", watched)
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]

    await run_worker()

    assert seen == [("extracting", [("extract", None)], True)]
    assert (await fetch_document(client, alice, document_id))["status"] == "ready"


async def test_while_a_slow_summary_runs_the_owner_sees_summarizing(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
) -> None:
    """A summary still running `WORTH_KEEPING_S` after its job began has the stored
    text and "summarizing" committed beside it, with the extraction finished and the
    summary's step begun on the timeline."""
    seen: list[tuple[str, list[tuple[str, bool]]]] = []

    async def watched(*args: Any, **kwargs: Any) -> Any:
        body = await document_past(client, alice, document_id, ("queued", "extracting"))
        steps = [(step["step"], step["finished_at"] is not None) for step in body["timeline"]]
        seen.append((body["status"], steps))
        return await real_summarize(*args, **kwargs)

    real_summarize = pipeline.summarize
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "summarize", watched)
        document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]
        await run_worker()

    assert seen == [("summarizing", [("extract", True), ("summarize", False)])]
    body = await fetch_document(client, alice, document_id)
    assert (body["status"], body["summary_source"]) == ("ready", "extractive")


async def test_a_quick_document_is_written_once_with_its_text_and_summary(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A document extracted and summarized within `WORTH_KEEPING_S` skips the
    "extracting" and "summarizing" commits: its job writes it once, ready, and the
    timeline still has both steps, each with its own times."""
    monkeypatch.setattr(jobs, "WORTH_KEEPING_S", 30.0)  # quick on any machine
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]
    writes: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DOCUMENTS"):
            writes.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        await run_worker()
    finally:
        event.remove(Engine, "before_cursor_execute", record)

    assert len(writes) == 1, writes
    body = await fetch_document(client, alice, document_id)
    assert (body["status"], body["summary_source"]) == ("ready", "extractive")
    assert timeline(body) == [("extract", None), ("summarize", None), ("email", None)]
    extract, summarize = body["timeline"][:2]
    assert extract["started_at"] <= extract["finished_at"] <= summarize["started_at"]
    assert summarize["started_at"] <= summarize["finished_at"]


async def test_the_mail_step_ends_in_the_transaction_that_marks_the_mail_sent(
    client: httpx.AsyncClient, alice: Account, upload: Upload, run_worker: RunWorker
) -> None:
    """Once the ready mail is out, its "sent" mark and the end of the email step are
    one commit: the job adds no transaction of its own after the send."""
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]
    events: list[tuple[int, str]] = []

    def statement(conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        text = text.lstrip().upper()
        if text.startswith("UPDATE MAIL_OUTBOX") and "SENT_AT" in text:
            events.append((id(conn), "mail marked sent"))
        elif text.startswith("UPDATE DOCUMENT_STEPS"):
            events.append((id(conn), "step ended"))

    def committed(conn: Any) -> None:
        events.append((id(conn), "commit"))

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", committed)
    try:
        await run_worker()
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", committed)

    [(mailer, _)] = [e for e in events if e[1] == "mail marked sent"]
    after_send = [name for conn, name in events if conn == mailer]
    after_send = after_send[after_send.index("mail marked sent") :]
    assert after_send[: after_send.index("commit") + 1] == [
        "mail marked sent",
        "step ended",
        "commit",
    ], after_send
    body = await fetch_document(client, alice, document_id)
    assert timeline(body) == [("extract", None), ("summarize", None), ("email", None)]
    assert all(step["finished_at"] for step in body["timeline"])
