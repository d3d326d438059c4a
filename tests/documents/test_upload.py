"""Uploads: streamed, capped, sniffed, deduplicated, with names that never reach the disk."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core import disk
from docdigest.core.blanks import BlankFiles
from docdigest.core.disk import on_local_disk
from docdigest.documents.intake import Intake
from docdigest.documents.models import Document
from docdigest.documents.received import INLINE_BYTES, FileSink, ReceivedFile
from docdigest.documents.sniff import HTML, TEXT
from docdigest.documents.storage import Storage
from docdigest.documents.upload import FLUSH_BYTES, MAX_PARTS
from docdigest.main import MAX_BODY_BYTES
from docdigest.settings import Settings
from tests import pagecache
from tests.documents import files
from tests.documents.conftest import Account, Upload
from tests.openfiles import unnamed_held


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 1 MB cap, so the over-the-cap test stays small."""
    return settings.model_copy(update={"max_upload_mb": 1})


def stored_files(settings: Settings) -> list[Path]:
    return [p for p in settings.files_dir.rglob("*") if p.is_file()]


async def leftovers(app: FastAPI) -> list[str]:
    """What uploads left behind: files in the temporary directory, and files made
    ahead (unnamed) that an upload took and did not close."""
    blanks: BlankFiles = app.state.blank_files
    await blanks.fill()
    tmp = blanks.directory
    named = [path.name for path in tmp.iterdir()] if tmp.exists() else []
    return named + ["(unnamed)"] * (unnamed_held(tmp) - blanks.ready)


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


@pytest.fixture
def file_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The threads that wrote each received file, renamed it into storage and made a
    directory for either."""
    threads: dict[str, list[str]] = {"write": [], "move": [], "mkdir": []}
    write, replace, mkdir = FileSink._write, Path.replace, Path.mkdir

    def recorded_write(sink: FileSink, data: bytearray, last: bool) -> None:
        threads["write"].append(threading.current_thread().name)
        write(sink, data, last)

    def recorded_replace(path: Path, target: Any) -> Path:
        threads["move"].append(threading.current_thread().name)
        return replace(path, target)

    def recorded_mkdir(path: Path, *args: Any, **kwargs: Any) -> None:
        threads["mkdir"].append(threading.current_thread().name)
        mkdir(path, *args, **kwargs)

    monkeypatch.setattr(FileSink, "_write", recorded_write)
    monkeypatch.setattr(Path, "replace", recorded_replace)
    monkeypatch.setattr(Path, "mkdir", recorded_mkdir)
    return threads


def text_of(size: int, label: str) -> bytes:
    line = b"A line of an uploaded text, long enough to fill the file quickly.\n"
    return label.encode() + b" " + line * (size // len(line))


async def test_a_small_file_is_written_on_the_event_loop_and_a_larger_one_in_a_thread(
    app: FastAPI,
    alice: Account,
    upload: Upload,
    settings: Settings,
    file_threads: dict[str, list[str]],
) -> None:
    """On a local disk, handing a small file to a thread costs more under load than
    writing it; a larger one still leaves the event loop free while it is written."""
    if not on_local_disk(settings.data_dir):
        pytest.skip("the test's temporary directory is not on a local file system")
    loop_thread = threading.current_thread().name
    for label, size in {"small": 100 * 1024, "larger": INLINE_BYTES + 100 * 1024}.items():
        file_threads["write"].clear()
        file_threads["move"].clear()
        data = text_of(size, label)

        response = await upload(alice, f"{label}.txt", data)

        assert response.status_code == 202, response.text
        assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
        [stored] = [p for p in stored_files(settings) if p.read_bytes() == data]
        assert stored.stat().st_size == len(data)
        # the rename into storage is a metadata call (two when the key's directory is
        # new): never worth a thread here
        assert set(file_threads["move"]) == {loop_thread}
        if label == "small":
            assert file_threads["write"] == [loop_thread]
        else:
            assert file_threads["write"] and loop_thread not in file_threads["write"]
    assert await leftovers(app) == []


@pytest.mark.parametrize("size", [100 * 1024, INLINE_BYTES + 100 * 1024])
async def test_an_upload_is_written_into_a_file_made_ahead(
    app: FastAPI, alice: Account, upload: Upload, settings: Settings, size: int
) -> None:
    """Making a file can cost the kernel a millisecond; the stock's were made in a
    thread at startup, and the upload's file is named only once it is whole."""
    blanks: BlankFiles = app.state.blank_files
    if blanks.ready == 0:
        pytest.skip("the temporary directory's file system cannot make unnamed files")
    before = blanks.ready
    data = text_of(size, "ahead")

    response = await upload(alice, "ahead.txt", data)

    assert response.status_code == 202, response.text
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert blanks.ready == before - 1
    [stored] = stored_files(settings)
    assert stored.read_bytes() == data
    assert await leftovers(app) == []


async def test_an_upload_is_on_its_way_to_the_disk_when_it_is_answered(
    alice: Account, upload: Upload, settings: Settings
) -> None:
    """Left to the kernel, uploads would reach the disk in one burst every few seconds,
    and the database's commits on the same disk would wait behind it (core/disk.py)."""
    pagecache.skip_unless_measurable(settings.data_dir)
    for label, size in {"small": 100 * 1024, "larger": INLINE_BYTES + 100 * 1024}.items():
        data = text_of(size, label)

        response = await upload(alice, f"{label}.txt", data)

        assert response.status_code == 202, response.text
        [stored] = [p for p in stored_files(settings) if p.read_bytes() == data]
        assert pagecache.wait_until_clean(stored) == 0


async def test_a_large_upload_starts_for_the_disk_piece_by_piece(tmp_path: Path) -> None:
    """Its first megabyte is on its way while the rest is still arriving, so a large
    file never leaves a pile of writes for one burst (nor queues them all at its end)."""
    pagecache.skip_unless_measurable(tmp_path)
    received = ReceivedFile(field="file", filename="large.bin", path=tmp_path / "large.part")
    sink = FileSink(received, inspect=None, inline=False)
    first, rest = os.urandom(FLUSH_BYTES), os.urandom(FLUSH_BYTES // 2)

    sink.buffer += first
    await sink.flush()
    assert sink.writing is not None
    await sink.writing  # the first piece is written; the upload has not ended
    assert pagecache.wait_until_clean(received.path) == 0

    sink.buffer += rest
    sink.ended = True
    await sink.flush()
    assert received.path.read_bytes() == first + rest
    assert received.sha256 == hashlib.sha256(first + rest).hexdigest()
    assert pagecache.wait_until_clean(received.path) == 0


async def test_on_a_network_file_system_every_file_call_is_in_a_thread(
    alice: Account,
    upload: Upload,
    settings: Settings,
    file_threads: dict[str, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """There each call is a round trip to a server, which must not stall the loop.
    No NFS server runs here, so the mount table is one that puts the data on NFS."""
    data_dir = os.path.realpath(settings.data_dir)
    mounts = tmp_path / "mountinfo"
    mounts.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        f"95 22 0:52 / {data_dir} rw,relatime - nfs4 files.example:/export rw,vers=4.2\n"
    )
    monkeypatch.setattr(disk, "MOUNT_TABLE", mounts)
    disk.on_local_disk.cache_clear()
    try:
        data = text_of(100 * 1024, "small")

        response = await upload(alice, "small.txt", data)

        assert response.status_code == 202, response.text
        assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
        loop_thread = threading.current_thread().name
        assert len(file_threads["write"]) == 1 and loop_thread not in file_threads["write"]
        assert file_threads["move"] and loop_thread not in file_threads["move"]
        assert loop_thread not in file_threads["mkdir"]
        assert [p.read_bytes() for p in stored_files(settings)] == [data]
    finally:
        disk.on_local_disk.cache_clear()
