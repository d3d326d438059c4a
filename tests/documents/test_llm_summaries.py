"""The LLM summarizer against a real local chat-completions server: answers, errors, slowness."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.documents import pipeline
from docdigest.settings import Settings
from tests.documents import files
from tests.documents.conftest import (
    Account,
    RunWorkerWith,
    Upload,
    job_of,
    requeue,
)
from tests.documents.conftest import fetch_document as document
from tests.documents.llm_server import fake_llm

LONG_TEXT = "\n\n".join(
    " ".join(f"{sentence[:-1]} in {1800 + year}." for sentence in files.SENTENCES)
    for year in range(40)
)


def llm_settings(url: str, **more: Any) -> dict[str, Any]:
    return {"summarizer": "llm", "llm_base_url": url, "llm_model": "test-model"} | more


async def test_long_document_is_summarized_map_reduce_by_the_model(
    client: httpx.AsyncClient, alice: Account, upload: Upload, run_worker_with: RunWorkerWith
) -> None:
    document_id = (await upload(alice, "long.txt", LONG_TEXT.encode())).json()["id"]
    with fake_llm("ok") as llm:
        await run_worker_with(**llm_settings(llm.url, llm_context_tokens=1200))

    body = await document(client, alice, document_id)
    assert body["status"] == "ready"
    assert body["summary_source"] == "llm:test-model"
    assert body["summary"].startswith(f"Model summary {len(llm.requests)}:")
    assert len(llm.requests) >= 3  # several chunks, then the reduce
    assert all(r["model"] == "test-model" and r["stream"] is False for r in llm.requests)
    assert all(len(r["messages"][-1]["content"]) <= (1200 - 712) * 3 for r in llm.requests)


async def test_a_rate_limited_call_is_retried_by_the_job_tier(
    client: httpx.AsyncClient, alice: Account, upload: Upload, run_worker_with: RunWorkerWith
) -> None:
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]
    with fake_llm("429", "ok") as llm:
        await run_worker_with(**llm_settings(llm.url))

    body = await document(client, alice, document_id)
    assert body["summary_source"] == "llm:test-model"
    summarize = [s for s in body["timeline"] if s["step"] == "summarize"]
    assert [s["attempt"] for s in summarize] == [1, 2]
    assert "429" in summarize[0]["error"]
    assert summarize[1]["error"] is None


async def test_after_the_last_try_the_extractive_summary_is_used_and_the_reason_kept(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker_with: RunWorkerWith,
    smtp: Any,
) -> None:
    first = (await upload(alice, "a.txt", files.text_bytes())).json()["id"]
    second = (await upload(alice, "b.md", files.markdown_bytes())).json()["id"]
    with fake_llm("500") as llm:
        await run_worker_with(**llm_settings(llm.url, job_max_tries=2))

    for document_id in (first, second):
        body = await document(client, alice, document_id)
        assert body["status"] == "ready"
        assert body["summary_source"] == "extractive-fallback"
        assert "LLM summary failed (HTTP 500" in body["note"]
        assert "keepers" in body["summary"].lower() or "lens" in body["summary"].lower()
    assert len([s for s in smtp.subjects() if "is ready" in s]) == 2


async def test_a_slow_model_times_out_into_the_fallback(
    client: httpx.AsyncClient, alice: Account, upload: Upload, run_worker_with: RunWorkerWith
) -> None:
    document_id = (await upload(alice, "a.txt", files.text_bytes())).json()["id"]
    with fake_llm("slow", slow_s=3) as llm:
        await run_worker_with(**llm_settings(llm.url, llm_timeout_s=0.3, job_max_tries=1))

    body = await document(client, alice, document_id)
    assert body["status"] == "ready"
    assert body["summary_source"] == "extractive-fallback"
    assert "timed out" in body["note"]


async def test_a_requeued_summary_job_takes_up_the_document_it_failed(
    settings: Settings,
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker_with: RunWorkerWith,
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error no retry can help (here, the stored text cannot be read) fails the
    document at once; requeued after the fix, the job summarizes the stored text."""

    async def refused(*args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", "/srv/docdigest/files/texts/ab/cd.txt")

    monkeypatch.setattr(pipeline, "read_text", refused)
    document_id = (await upload(alice, "notes.txt", files.text_bytes())).json()["id"]
    with fake_llm("ok") as llm:
        await run_worker_with(**llm_settings(llm.url))
        failed = await document(client, alice, document_id)
        assert (failed["status"], failed["reason"]) == (
            "failed",
            "summarize failed: Permission denied",
        )
        run = await job_of(db, "summarize_document", document_id)
        assert run.attempts == 1

        monkeypatch.undo()
        await requeue(settings, db, run.id)
        await run_worker_with(**llm_settings(llm.url))

    body = await document(client, alice, document_id)
    assert (body["status"], body["reason"]) == ("ready", None)
    assert body["summary_source"] == "llm:test-model"
    assert [s["step"] for s in body["timeline"]] == ["extract", "summarize", "summarize", "email"]
