"""A document's steps under faults: a lost commit, a summary cut short, an error no
retry can help. Each ends with one text, one summary and one mail, or an honest
failure that a requeue clears."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.documents import jobs, pipeline
from docdigest.jobs.models import JobStatus
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.documents import files
from tests.documents.conftest import (
    Account,
    Upload,
    fail_first_call,
    fetch_document,
    job_of,
    ready_mails,
    requeue,
    timeline,
)


async def test_a_lost_commit_of_extracting_retries_and_leaves_one_text(
    settings: Settings,
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    smtp: Any,
) -> None:
    """When "extracting" cannot be committed, the extraction already under way is
    given up with it: the job's next try does the step again, and the document ends
    ready with one stored text, one summary and one mail."""
    monkeypatch.setattr(jobs, "WORTH_KEEPING_S", 0.0)  # "extracting" committed at once
    fail_first_call(monkeypatch, jobs, "commit", ConnectionError("lost the connection"))
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]

    await run_worker()

    body = await fetch_document(client, alice, document_id)
    assert body["status"] == "ready"
    assert timeline(body) == [("extract", None), ("summarize", None), ("email", None)]
    run = await job_of(db, "extract_text", document_id)
    assert (run.status, run.attempts) == (JobStatus.SUCCEEDED, 2)
    texts = [p for p in (settings.files_dir / "texts").rglob("*") if p.is_file()]
    assert len(texts) == 1
    assert len(ready_mails(smtp)) == 1


async def test_a_summary_cut_short_resumes_from_the_stored_text(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    monkeypatch: pytest.MonkeyPatch,
    smtp: Any,
) -> None:
    """A try of the extraction job that stored the text but failed in its summary is
    followed by one that summarizes the stored text, without extracting it again."""
    error = ConnectionError("lost the connection mid-summary")
    fail_first_call(monkeypatch, pipeline, "summarize", error)
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]

    await run_worker()

    body = await fetch_document(client, alice, document_id)
    assert body["status"] == "ready"
    assert body["summary_source"] == "extractive"
    assert timeline(body) == [
        ("extract", None),
        ("summarize", "lost the connection mid-summary"),
        ("summarize", None),
        ("email", None),
    ]
    assert len(ready_mails(smtp)) == 1


async def test_an_error_no_retry_can_help_fails_the_document_at_once(
    settings: Settings,
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker: RunWorker,
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    smtp: Any,
) -> None:
    """The job tier does not retry an error such as a refused write: the job fails on
    its first try, and the document says so instead of staying "extracting"."""

    async def refused(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", "/srv/docdigest/files/texts/ab/cd.txt")

    monkeypatch.setattr(pipeline, "store_text", refused)
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]

    await run_worker()

    body = await fetch_document(client, alice, document_id)
    # What went wrong, without the server's path (the job ledger keeps the whole error).
    assert (body["status"], body["reason"]) == ("failed", "extract failed: Permission denied")
    assert timeline(body) == [("extract", "extract failed: Permission denied")]
    run = await job_of(db, "extract_text", document_id)
    assert (run.status, run.attempts, run.error_type) == (JobStatus.FAILED, 1, "PermissionError")
    assert "/srv/docdigest/files" in (run.error_message or "")
    assert settings.job_max_tries > 1
    assert ready_mails(smtp) == []

    # The runbook's answer once the cause is fixed: requeue the failed job.
    monkeypatch.undo()
    await requeue(settings, db, run.id)
    await run_worker()

    body = await fetch_document(client, alice, document_id)
    assert (body["status"], body["reason"]) == ("ready", None)
    assert timeline(body) == [
        ("extract", "extract failed: Permission denied"),
        ("extract", None),
        ("summarize", None),
        ("email", None),
    ]
    assert len(ready_mails(smtp)) == 1
