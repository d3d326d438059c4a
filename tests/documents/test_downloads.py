"""Downloads: attachments with safe names, nosniff, ranges and revalidation."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunWorker
from tests.documents import files
from tests.documents.conftest import Account, Upload

NAME = "Résumé <b>x<b> 東京; final.html"


@pytest.fixture
async def document_id(alice: Account, upload: Upload, run_worker: RunWorker) -> int:
    response = await upload(alice, NAME, files.html_bytes())
    await run_worker()
    return int(response.json()["id"])


async def test_original_is_an_attachment_that_never_renders(
    client: httpx.AsyncClient, alice: Account, document_id: int
) -> None:
    response = await client.get(f"/api/documents/{document_id}/original", headers=alice.headers)

    assert response.status_code == 200
    assert response.content == files.html_bytes()
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote(NAME, safe='')}" in disposition
    fallback = disposition.split('filename="')[1].split('"')[0]
    assert fallback.isascii() and fallback.startswith("Resume") and ";" not in fallback
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


async def test_text_and_summary_downloads(
    client: httpx.AsyncClient, alice: Account, document_id: int
) -> None:
    text = await client.get(f"/api/documents/{document_id}/text", headers=alice.headers)
    summary = await client.get(f"/api/documents/{document_id}/summary", headers=alice.headers)

    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Fresnel lens" in text.text
    assert "alert(" not in text.text
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9" in text.headers["content-disposition"]
    assert ".txt" in text.headers["content-disposition"]
    assert summary.headers["content-type"] == "text/markdown; charset=utf-8"
    assert summary.text.startswith(f"# {NAME}")
    assert "-summary.md" in summary.headers["content-disposition"]


async def test_ranges_and_etags(
    client: httpx.AsyncClient, alice: Account, document_id: int
) -> None:
    url = f"/api/documents/{document_id}/original"
    data = files.html_bytes()
    full = await client.get(url, headers=alice.headers)
    etag = full.headers["etag"]
    assert full.headers["accept-ranges"] == "bytes"

    part = await client.get(url, headers=alice.headers | {"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"

    tail = await client.get(url, headers=alice.headers | {"Range": "bytes=-5"})
    assert tail.content == data[-5:]

    beyond = await client.get(url, headers=alice.headers | {"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"

    cached = await client.get(url, headers=alice.headers | {"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""

    stale = await client.get(
        url, headers=alice.headers | {"Range": "bytes=0-3", "If-Range": '"something-else"'}
    )
    assert stale.status_code == 200 and stale.content == data

    for kind in ("text", "summary"):
        first = await client.get(f"/api/documents/{document_id}/{kind}", headers=alice.headers)
        again = await client.get(
            f"/api/documents/{document_id}/{kind}",
            headers=alice.headers | {"If-None-Match": first.headers["etag"]},
        )
        assert again.status_code == 304
