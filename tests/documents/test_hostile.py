"""Hostile and broken files fail their own document with a reason; the worker goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.documents import files
from tests.documents.conftest import Account, RunWorkerWith, Upload

HOSTILE = [
    ("bomb.docx", files.zip_bomb_docx_bytes, "zip bomb"),
    ("locked.pdf", lambda: files.pdf_bytes(password="secret"), "PDF is password-protected"),
    ("broken.pdf", files.truncated_pdf_bytes, "file is corrupt"),
    ("broken.docx", files.corrupt_docx_bytes, "file is corrupt"),
]


async def status_of(
    client: httpx.AsyncClient, account: Account, document_id: int
) -> dict[str, Any]:
    response = await client.get(f"/api/documents/{document_id}", headers=account.headers)
    body: dict[str, Any] = response.json()
    return body


async def test_hostile_files_fail_with_reasons_and_the_next_document_is_processed(
    client: httpx.AsyncClient, alice: Account, upload: Upload, run_worker_with: RunWorkerWith
) -> None:
    hostile = {}
    for name, make, _ in HOSTILE:
        response = await upload(alice, name, make())
        assert response.status_code == 202, (name, response.text)
        hostile[name] = response.json()["id"]
    good = (await upload(alice, "good.txt", files.text_bytes())).json()["id"]

    await run_worker_with(worker_max_jobs=1)  # one at a time: the good one comes last

    for name, _, reason in HOSTILE:
        body = await status_of(client, alice, hostile[name])
        assert body["status"] == "failed", (name, body)
        assert reason in body["reason"], (name, body["reason"])
        assert body["timeline"][-1]["error"] == body["reason"]
    assert (await status_of(client, alice, good))["status"] == "ready"


async def test_pdf_with_a_broken_xref_is_repaired_and_read(
    client: httpx.AsyncClient, alice: Account, upload: Upload, run_worker_with: RunWorkerWith
) -> None:
    document_id = (await upload(alice, "xref.pdf", files.broken_xref_pdf_bytes())).json()["id"]
    await run_worker_with()
    body = await status_of(client, alice, document_id)
    assert body["status"] == "ready"
    assert "keepers" in body["summary"].lower()


def big_text() -> bytes:
    return (files.TEXT + "\n").encode() * 16_000  # ~10 MB


@pytest.mark.parametrize(
    ("limits", "make", "reason"),
    [
        ({"extract_wall_s": 0.3}, files.heavy_html_bytes, "extraction exceeded 0.3 s"),
        (
            {"extract_cpu_s": 1, "extract_wall_s": 30},
            files.heavy_html_bytes,
            "extraction exceeded 1 s of CPU time",
        ),
        (
            {"extract_memory_mb": 24, "extract_wall_s": 4},
            files.heavy_html_bytes,
            "extraction exceeded memory limit",
        ),
        ({"extract_max_chars": 1000}, big_text, None),
    ],
)
async def test_extraction_limits(
    client: httpx.AsyncClient,
    alice: Account,
    upload: Upload,
    run_worker_with: RunWorkerWith,
    limits: dict[str, float],
    make: Callable[[], bytes],
    reason: str | None,
) -> None:
    heavy = (await upload(alice, "heavy", make())).json()["id"]
    good = (await upload(alice, "good.txt", files.text_bytes())).json()["id"]

    await run_worker_with(worker_max_jobs=1, **limits)

    body = await status_of(client, alice, heavy)
    if reason is None:
        assert body["status"] == "ready"
        assert body["text_chars"] == 1000
        assert "cut at 1,000 characters" in body["note"]
    else:
        assert body["status"] == "failed"
        assert body["reason"] == reason
    assert (await status_of(client, alice, good))["status"] == "ready"
