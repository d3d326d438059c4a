"""Object storage keeps the Storage contract: the same story on a directory and on S3.

The S3 side talks HTTP to a real S3-compatible server (moto's standalone server)
started for these tests.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from docdigest.devserver.redis import free_port
from docdigest.documents.storage import Storage, new_key
from docdigest.documents.storage_s3 import S3Storage
from docdigest.settings import Settings


def s3_settings(tmp_path: Path, endpoint: str, bucket: str) -> Settings:
    return Settings(data_dir=tmp_path, **s3_options(endpoint, bucket))


def s3_options(endpoint: str, bucket: str) -> dict[str, Any]:
    return dict(
        storage_url=f"s3://{bucket}/docdigest/files",
        s3_endpoint_url=endpoint,
        s3_access_key_id="test-access-key",
        s3_secret_access_key=SecretStr("test-secret-key"),
    )


def create_bucket(endpoint: str) -> str:
    bucket = f"docdigest-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return bucket


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-access-key",
        aws_secret_access_key="test-secret-key",
    )


@pytest.fixture(params=["directory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "directory":
        return Storage.from_settings(Settings(data_dir=tmp_path))
    endpoint = request.getfixturevalue("s3_endpoint")
    return Storage.from_settings(s3_settings(tmp_path, endpoint, create_bucket(endpoint)))


async def test_stored_bytes_come_back_whole_and_in_ranges(storage: Storage) -> None:
    key = new_key("originals", ".txt")
    data = b"".join(f"line {n}\n".encode() for n in range(50_000))

    await storage.put_bytes(key, data)

    assert await storage.exists(key)
    assert await storage.size(key) == len(data)
    assert await storage.read_bytes(key) == data
    assert b"".join([c async for c in storage.iter_chunks(key)]) == data
    assert b"".join([c async for c in storage.open_range(key, 10, 19)]) == data[10:20]
    assert b"".join([c async for c in storage.iter_chunks(key, len(data) - 5)]) == data[-5:]


async def test_a_finished_upload_moves_into_storage(storage: Storage, tmp_path: Path) -> None:
    upload = tmp_path / "partial-upload"
    upload.write_bytes(b"%PDF-1.7 pretend")
    key = new_key("originals", ".pdf")

    await storage.save(key, upload)

    assert not upload.exists()
    assert await storage.read_bytes(key) == b"%PDF-1.7 pretend"
    async with storage.local_path(key) as path:
        assert path.read_bytes() == b"%PDF-1.7 pretend"
        assert path.suffix == ".pdf"


async def test_delete_says_whether_there_was_something(storage: Storage) -> None:
    key = new_key("texts", ".txt")
    await storage.put_bytes(key, b"text")

    assert await storage.delete(key) is True
    assert await storage.delete(key) is False
    assert not await storage.exists(key)
    with pytest.raises(FileNotFoundError):
        await storage.read_bytes(key)
    with pytest.raises(FileNotFoundError):
        await storage.size(key)


async def test_only_generated_keys_are_accepted(storage: Storage) -> None:
    for bad in ("../../etc/passwd", "originals/report.pdf", ""):
        with pytest.raises(ValueError, match="not a storage key"):
            await storage.put_bytes(bad, b"x")


def test_an_s3_url_selects_object_storage(tmp_path: Path) -> None:
    storage = Storage.from_settings(s3_settings(tmp_path, "http://127.0.0.1:9", "bucket"))
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == ("bucket", "docdigest/files")


async def test_an_unreachable_object_store_is_a_retryable_connection_error(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    storage = Storage.from_settings(s3_settings(tmp_path, f"http://127.0.0.1:{port}", "bucket"))
    with pytest.raises(ConnectionError, match="object storage"):
        await storage.put_bytes(new_key("originals"), b"x")
