"""Local storage: generated keys only, ranges, idempotent deletes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from docdigest.documents.storage import Storage, new_key
from tests import pagecache


async def test_save_read_range_delete(tmp_path: Path) -> None:
    storage = Storage(root=tmp_path / "files")
    source = tmp_path / "upload.part"
    source.write_bytes(bytes(range(256)) * 4096)
    key = new_key("originals")

    await storage.save(key, source)

    assert not source.exists()
    assert await storage.exists(key)
    assert await storage.size(key) == 256 * 4096
    chunks = [c async for c in storage.open_range(key, 300, 299 + 600_000)]
    assert b"".join(chunks) == (bytes(range(256)) * 4096)[300 : 300 + 600_000]
    assert await storage.delete(key) is True
    assert await storage.delete(key) is False
    assert not await storage.exists(key)


async def test_a_file_on_another_file_system_is_copied_in_and_removed(tmp_path: Path) -> None:
    """A rename cannot cross file systems (an upload directory on a volume of its own)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system other than the test's temporary one")
    storage = Storage(root=tmp_path / "files")
    data = bytes(range(256)) * 1024
    with tempfile.TemporaryDirectory(dir=shm) as other:
        source = Path(other) / "upload.part"
        source.write_bytes(data)
        key = new_key("originals")

        await storage.save(key, source)

        assert not source.exists()
    assert (tmp_path / "files" / key).read_bytes() == data


@pytest.mark.parametrize("key", ["../etc/passwd", "originals/../../x", "/abs/path", "texts/a/b"])
async def test_keys_that_are_not_generated_are_refused(tmp_path: Path, key: str) -> None:
    storage = Storage(root=tmp_path)
    with pytest.raises(ValueError):
        await storage.exists(key)


async def test_stored_text_is_on_its_way_to_the_disk(tmp_path: Path) -> None:
    """Written files are not left for the kernel's periodic burst of writes, which a
    database's commits on the same disk would wait behind (core/disk.py)."""
    pagecache.skip_unless_measurable(tmp_path)
    storage = Storage(root=tmp_path / "files")
    key = new_key("texts", ".txt")

    await storage.put_bytes(key, b"extracted text\n" * 20_000)

    assert pagecache.wait_until_clean(storage.root / key) == 0
