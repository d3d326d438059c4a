"""Uploads: streamed, capped, sniffed, deduplicated, with names that never reach the disk."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.documents.intake import Intake
from docdigest.documents.models import Document
from docdigest.documents.received import ReceivedFile
from docdigest.documents.sniff import HTML, TEXT
from docdigest.documents.storage import Storage
from docdigest.main import MAX_BODY_BYTES
from docdigest.settings import Settings
from tests.documents import files
from tests.documents.conftest import Account, Upload, leftovers, stored_files


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 1 MB cap, so the over-the-cap test stays small."""
    return settings.model_copy(update={"max_upload_mb": 1})


async def test_upload_is_queued_with_sniffed_type_size_and_hash(
    app: FastAPI, alice: Account, upload: Upload, settings: Settings
) -> None:
    data = files.pdf_bytes()
    response = await upload(alice, "report.pdf", data)

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["content_type"] == "application/pdf"
    assert body["size"] == len(data)
    assert len(body["sha256"]) == 64
    assert body["duplicate"] is False
    [stored] = stored_files(settings)
    assert stored.read_bytes() == data
    assert "report" not in str(stored)
    assert await leftovers(app) == []


async def test_same_bytes_again_returns_the_existing_document(
    app: FastAPI,
    alice: Account,
    bob: Account,
    upload: Upload,
    db: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    first = (await upload(alice, "a.txt", files.text_bytes())).json()
    again = await upload(alice, "renamed.txt", files.text_bytes())
    other_user = await upload(bob, "a.txt", files.text_bytes())

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["duplicate"] is True
    assert again.json()["filename"] == "a.txt"
    assert other_user.status_code == 202
    async with db() as session:
        assert len((await session.scalars(select(Document))).all()) == 2
    # The repeat's bytes were not kept: one stored file per document.
    assert len(stored_files(settings)) == 2
    assert await leftovers(app) == []


async def test_uploads_go_on_after_the_temporary_directory_is_removed(
    app: FastAPI, alice: Account, upload: Upload, settings: Settings
) -> None:
    """An operator clearing the upload directory by hand, or a cleaner of temporary
    files, does not break uploads: the directory is made again when it is missing."""
    first = await upload(alice, "first.txt", b"The first upload.\n" + files.text_bytes())
    assert first.status_code == 202
    settings.upload_tmp_dir.rmdir()  # empty: the first upload's file was moved out

    second = await upload(alice, "second.txt", b"The second upload.\n" + files.text_bytes())

    assert second.status_code == 202
    assert len(stored_files(settings)) == 2
    assert await leftovers(app) == []


async def test_empty_file_is_422(
    app: FastAPI, alice: Account, upload: Upload, settings: Settings
) -> None:
    response = await upload(alice, "empty.txt", b"")
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]
    assert stored_files(settings) == [] and await leftovers(app) == []


@pytest.mark.parametrize(
    ("name", "data", "detected"),
    [
        ("photo.pdf", files.png_bytes(), "image/png"),
        ("notes.txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "application/x-executable"),
        ("archive.docx", b"PK\x03\x04" + b"\x00" * 100, "application/zip"),
        ("book.epub", files.damaged_zip_bytes(), "application/zip"),
        (
            "drawing.html",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            "image/svg+xml",
        ),
    ],
)
async def test_type_comes_from_the_bytes_not_the_name(
    app: FastAPI,
    alice: Account,
    upload: Upload,
    settings: Settings,
    name: str,
    data: bytes,
    detected: str,
) -> None:
    response = await upload(alice, name, data)

    assert response.status_code == 415
    body = response.json()
    assert detected in body["detail"]
    assert "PDF" in body["detail"] and "DOCX" in body["detail"]
    assert body["detected"] == detected
    assert stored_files(settings) == [] and await leftovers(app) == []


@pytest.mark.parametrize(
    ("name", "data", "detected"),
    [
        # Its first letters are a bitmap's signature.
        ("bm25.txt", b"BM25 ranking: how a search engine scores a document.\n" * 20, TEXT),
        # It begins as XML does.
        (
            "log.xhtml",
            b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
            b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Lamp lit.</p></body></html>',
            HTML,
        ),
    ],
    ids=["note-starting-like-a-bitmap", "xhtml"],
)
async def test_a_document_that_looks_like_another_format_at_first_is_accepted(
    alice: Account, upload: Upload, settings: Settings, name: str, data: bytes, detected: str
) -> None:
    response = await upload(alice, name, data)

    assert response.status_code == 202
    assert response.json()["content_type"] == detected
    [stored] = stored_files(settings)
    assert stored.read_bytes() == data


async def test_over_the_cap_is_413_naming_the_limit_and_leaves_nothing(
    app: FastAPI, alice: Account, upload: Upload, settings: Settings
) -> None:
    response = await upload(alice, "big.txt", b"word " * 300_000)

    assert response.status_code == 413
    assert "1 MB" in response.json()["detail"]
    assert stored_files(settings) == [] and await leftovers(app) == []


async def test_an_upload_may_be_larger_than_any_other_request(
    alice: Account, upload: Upload, settings: Settings
) -> None:
    """Other requests' bodies are capped at MAX_BODY_BYTES; an upload's at its own limit."""
    data = (b"A line of a long note.\n" * 50_000)[: settings.max_upload_bytes]
    response = await upload(alice, "long.txt", data)

    assert len(data) >= MAX_BODY_BYTES
    assert response.status_code == 202, response.text
    [stored] = stored_files(settings)
    assert stored.read_bytes() == data


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\boot.ini.txt", "boot.ini.txt"),
        ("report\x00.exe.txt", "report.exe.txt"),
        ("invoice\u202egpj.txt", "invoicegpj.txt"),
        ("<script>alert(1)</script>.txt", "script>.txt"),
        ("<b onmouseover=alert(1)>x.txt", "<b onmouseover=alert(1)>x.txt"),
        ("Übersicht \u2013 東京 📄.txt", "Übersicht \u2013 東京 📄.txt"),
        ("..", "document"),
    ],
)
async def test_filenames_are_kept_for_display_but_never_used_as_paths(
    client: httpx.AsyncClient, alice: Account, settings: Settings, raw: str, shown: str
) -> None:
    # Built by hand: HTTP clients would percent-encode the NUL and the quotes.
    boundary = "d0cd1ge5t"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{raw}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + files.text_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await client.post(
        "/api/documents",
        content=body,
        headers=alice.headers | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )

    assert response.status_code == 202, response.text
    assert response.json()["filename"] == shown
    [stored] = stored_files(settings)
    assert stored.resolve().is_relative_to(settings.files_dir.resolve())
    assert stored.name.isalnum()


async def test_anonymous_upload_is_401(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post("/api/documents", files={"file": ("a.txt", b"hello there")})
    assert response.status_code == 401
    assert await leftovers(app) == []


async def test_cookie_upload_needs_the_csrf_token(client: httpx.AsyncClient) -> None:
    signup = {"email": "carol@example.com", "name": "Carol", "password": "correct horse battery"}
    assert (await client.post("/api/signup", json=signup)).status_code == 201
    login = await client.post(
        "/api/login", json={"email": signup["email"], "password": signup["password"]}
    )
    assert login.status_code == 200
    page = await client.get("/upload")
    token = page.text.split('name="csrf-token" content="')[1].split('"')[0]

    refused = await client.post("/api/documents", files={"file": ("a.txt", files.text_bytes())})
    assert refused.status_code == 403

    by_header = await client.post(
        "/api/documents",
        files={"file": ("a.txt", files.text_bytes())},
        headers={"X-CSRF-Token": token},
    )
    assert by_header.status_code == 202
    by_field = await client.post(
        "/api/documents",
        data={"csrf_token": token},
        files={"file": ("b.txt", files.markdown_bytes())},
    )
    assert by_field.status_code == 202


async def test_a_failed_insert_keeps_no_stored_copy(
    db: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """The file is stored before its row is written; when the row cannot be written
    (here: an owner that does not exist), the stored copy goes too."""
    received = settings.upload_tmp_dir / "upload-orphan.part"
    received.parent.mkdir(parents=True, exist_ok=True)
    received.write_bytes(files.text_bytes())
    file = ReceivedFile(
        field="file",
        filename="a.txt",
        path=received,
        size=received.stat().st_size,
        sha256="0" * 64,
        content_type=TEXT,
    )
    intake = Intake(db.kw["bind"], None, Storage.from_settings(settings), settings)
    with pytest.raises(IntegrityError):
        await intake.accept(999_999, file)
    assert stored_files(settings) == []
    assert list(settings.upload_tmp_dir.iterdir()) == []
