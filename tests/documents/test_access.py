"""Owner only: someone else's document is a 404 on every route; no login is a 401."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunWorker
from tests.documents import files
from tests.documents.conftest import Account, Upload

ROUTES = [
    ("GET", ""),
    ("GET", "/original"),
    ("GET", "/text"),
    ("GET", "/summary"),
    ("POST", "/reprocess"),
    ("DELETE", ""),
]


@pytest.fixture
async def alices_document(alice: Account, upload: Upload, run_worker: RunWorker) -> int:
    document_id: int = (await upload(alice, "mine.txt", files.text_bytes())).json()["id"]
    await run_worker()
    return document_id


async def test_another_users_document_is_404_everywhere(
    client: httpx.AsyncClient, alice: Account, bob: Account, alices_document: int
) -> None:
    for method, suffix in ROUTES:
        url = f"/api/documents/{alices_document}{suffix}"
        response = await client.request(method, url, headers=bob.headers)
        assert response.status_code == 404, (method, url, response.status_code)
        missing = await client.request(
            method, f"/api/documents/999999{suffix}", headers=bob.headers
        )
        assert response.json() == missing.json()
    listing = await client.get("/api/documents", headers=bob.headers)
    assert listing.json()["items"] == []

    still_there = await client.get(f"/api/documents/{alices_document}", headers=alice.headers)
    assert still_there.json()["status"] == "ready"


async def test_anonymous_is_401_everywhere(client: httpx.AsyncClient, alices_document: int) -> None:
    for method, suffix in [*ROUTES, ("GET", "LIST")]:
        url = "/api/documents" if suffix == "LIST" else f"/api/documents/{alices_document}{suffix}"
        response = await client.request(method, url)
        assert response.status_code == 401, (method, url)


async def test_list_is_own_newest_first_paginated_and_searchable(
    client: httpx.AsyncClient, alice: Account, bob: Account, upload: Upload
) -> None:
    names = ["Alpha report.txt", "beta notes.txt", "Gamma REPORT.txt", "delta_%.txt"]
    for index, name in enumerate(names):
        assert (
            await upload(alice, name, files.text_bytes() + bytes([65 + index]))
        ).status_code == 202
    await upload(bob, "bob report.txt", files.text_bytes())

    first = (await client.get("/api/documents?limit=3", headers=alice.headers)).json()
    assert [d["filename"] for d in first["items"]] == names[::-1][:3]
    rest = await client.get(
        f"/api/documents?limit=3&before_id={first['next_before_id']}", headers=alice.headers
    )
    assert [d["filename"] for d in rest.json()["items"]] == ["Alpha report.txt"]
    assert rest.json()["next_before_id"] is None

    found = (await client.get("/api/documents?q=report", headers=alice.headers)).json()
    assert [d["filename"] for d in found["items"]] == ["Gamma REPORT.txt", "Alpha report.txt"]
    literal = (await client.get("/api/documents?q=_%25", headers=alice.headers)).json()
    assert [d["filename"] for d in literal["items"]] == ["delta_%.txt"]


async def test_delete_removes_the_row_and_its_files(
    client: httpx.AsyncClient, alice: Account, alices_document: int, settings: object
) -> None:
    files_dir = settings.files_dir  # type: ignore[attr-defined]
    assert len([p for p in files_dir.rglob("*") if p.is_file()]) == 2  # original and text

    response = await client.delete(f"/api/documents/{alices_document}", headers=alice.headers)

    assert response.status_code == 204
    gone = await client.get(f"/api/documents/{alices_document}", headers=alice.headers)
    assert gone.status_code == 404
    assert [p for p in files_dir.rglob("*") if p.is_file()] == []


async def test_an_upload_after_logout_is_refused(
    client: httpx.AsyncClient, alice: Account, upload: Upload
) -> None:
    """Checks are shared, answers are not kept: a session ended a moment ago no longer
    lets its uploads in."""
    assert (await upload(alice, "a.txt", b"first words")).status_code == 202

    assert (await client.post("/api/logout", headers=alice.headers)).status_code == 204

    refused = await upload(alice, "b.txt", b"second words")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "not logged in"
