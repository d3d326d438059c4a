"""An upload's multipart body: one that cannot be read is refused whole, with the
reason, and leaves nothing; several files in one body each get their own result."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from docdigest.documents.upload import FLUSH_BYTES, MAX_PARTS
from docdigest.settings import Settings
from tests.documents import files
from tests.documents.conftest import Account, Upload, leftovers, stored_files

BOUNDARY = "d0cd1ge5t"


def file_part(name: str, data: bytes, *headers: str) -> bytes:
    """One file part of a multipart body, opening delimiter included."""
    lines = [
        f"--{BOUNDARY}",
        f'Content-Disposition: form-data; name="file"; filename="{name}"',
        *headers,
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + data + b"\r\n"


CLOSE = f"--{BOUNDARY}--\r\n".encode()
MALFORMED = {
    "no multipart at all": (b"just some words", "not well-formed multipart"),
    "cut off inside a small file": (
        file_part("a.txt", files.text_bytes())[:-40],
        "ended before its closing boundary",
    ),
    # A whole first write (made in a thread while the body still arrives), then nothing.
    "cut off inside a file past its first write": (
        file_part("a.txt", (b"A long text, written in pieces.\n" * 40_000)[:FLUSH_BYTES])[:-2],
        "ended before its closing boundary",
    ),
    "cut off between two files": (
        file_part("a.txt", files.text_bytes()) + f"--{BOUNDARY}\r\nContent-Disp".encode(),
        "ended before its closing boundary",
    ),
    "no closing delimiter": (
        file_part("a.txt", files.text_bytes()),
        "ended before its closing boundary",
    ),
    "too many headers in a part": (
        file_part("a.txt", files.text_bytes(), *(f"X-Note-{i}: x" for i in range(12))) + CLOSE,
        "Maximum header count exceeded",
    ),
    "a header line of 10,000 bytes": (
        file_part("a" * 10_000 + ".txt", files.text_bytes()) + CLOSE,
        "Maximum header size exceeded",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_body_that_cannot_be_read_is_400_and_leaves_nothing(
    app: FastAPI, client: httpx.AsyncClient, alice: Account, settings: Settings, case: str
) -> None:
    body, reason = MALFORMED[case]
    response = await client.post(
        "/api/documents",
        content=body,
        headers=alice.headers | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )

    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert stored_files(settings) == [] and await leftovers(app) == []
    listed = await client.get("/api/documents", headers=alice.headers)
    assert listed.json()["items"] == []


async def test_a_body_of_too_many_parts_is_422_and_leaves_nothing(
    app: FastAPI, client: httpx.AsyncClient, alice: Account, settings: Settings
) -> None:
    fields = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note{i}"\r\n\r\nx\r\n'.encode()
        for i in range(MAX_PARTS)
    )
    response = await client.post(
        "/api/documents",
        content=file_part("a.txt", files.text_bytes()) + fields + CLOSE,
        headers=alice.headers | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )

    assert response.status_code == 422
    assert f"at most {MAX_PARTS} parts" in response.json()["detail"]
    assert stored_files(settings) == [] and await leftovers(app) == []


async def test_several_files_in_one_request_each_get_a_result(
    client: httpx.AsyncClient, alice: Account, upload: Upload
) -> None:
    await upload(alice, "known.md", files.markdown_bytes())
    response = await client.post(
        "/api/documents",
        headers=alice.headers,
        files=[
            ("files", ("a.pdf", files.pdf_bytes())),
            ("files", ("b.png", files.png_bytes())),
            ("files", ("c.md", files.markdown_bytes())),
            ("files", ("d.txt", b"")),
        ],
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status_code"] for r in results] == [202, 415, 200, 422]
    assert results[0]["document"]["status"] == "queued"
    assert results[2]["document"]["duplicate"] is True
    assert "image/png" in results[1]["detail"]


async def test_a_body_sent_in_many_pieces_stores_each_file_whole(
    client: httpx.AsyncClient, alice: Account, settings: Settings
) -> None:
    """Pieces of prose with no carriage return skip the parser's search, the others
    do not, and a delimiter may be cut between two pieces: every byte still lands in
    its own file."""
    prose = b"The keepers wrote the weather in the ledger every evening.\n" * 20_000
    crlf = prose.replace(b"\n", b"\r\n")[: len(prose) // 2]
    body = file_part("lf.txt", prose) + file_part("crlf.txt", crlf) + CLOSE
    cut_at = body.index(f"\r\n--{BOUNDARY}".encode()) + 5  # inside the first delimiter

    async def pieces() -> AsyncIterator[bytes]:
        for start, end in [(0, 50_000), (50_000, cut_at), (cut_at, len(body))]:
            for at in range(start, end, 65_536):
                yield body[at : min(at + 65_536, end)]

    response = await client.post(
        "/api/documents",
        content=pieces(),
        headers=alice.headers | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )

    assert response.status_code == 200, response.text
    documents = [r["document"] for r in response.json()["results"]]
    assert [d["sha256"] for d in documents] == [
        hashlib.sha256(prose).hexdigest(),
        hashlib.sha256(crlf).hexdigest(),
    ]
    assert sorted(p.read_bytes() for p in stored_files(settings)) == sorted([prose, crlf])
