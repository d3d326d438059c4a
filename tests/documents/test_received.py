"""A received file's writer: on the event loop or in a thread, into a file made ahead,
on its way to the disk before the upload is answered."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from docdigest.core import disk
from docdigest.core.blanks import BlankFiles
from docdigest.core.disk import on_local_disk
from docdigest.documents.received import INLINE_BYTES, FileSink, ReceivedFile
from docdigest.documents.upload import FLUSH_BYTES
from docdigest.settings import Settings
from tests import pagecache
from tests.documents.conftest import Account, Upload, leftovers, stored_files


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
