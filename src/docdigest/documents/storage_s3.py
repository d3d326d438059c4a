"""Files in S3-compatible object storage (AWS S3, MinIO, Ceph, R2, ...), same contract as Storage.

Chosen with `DOCDIGEST_STORAGE_URL=s3://bucket/prefix`. Every web and worker
process then shares the files without a shared disk. boto3 is synchronous; each
call runs in a thread so the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from docdigest.documents.storage import CHUNK_SIZE, Storage
from docdigest.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class S3Storage(Storage):
    bucket: str = ""
    prefix: str = ""
    client: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        try:
            import boto3
            from botocore.config import Config
        except ModuleNotFoundError as exc:
            raise RuntimeError("object storage needs boto3: pip install 'docdigest[s3]'") from exc
        url = urlsplit(settings.storage_url)
        endpoint = settings.s3_endpoint_url or None
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=settings.s3_secret_access_key.get_secret_value() or None,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # Self-hosted servers (MinIO and friends) rarely have per-bucket DNS names.
                s3={"addressing_style": "path" if endpoint else "auto"},
            ),
        )
        # `root` holds the temporary copies local_path() hands to the extractor.
        return cls(
            root=settings.upload_tmp_dir,
            bucket=url.netloc,
            prefix=url.path.strip("/"),
            client=client,
        )

    def _name(self, key: str) -> str:
        self._path(key)  # refuses anything that is not a generated key
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(_translated, fn, self.bucket, **kwargs))

    async def save(self, key: str, source_path: Path) -> None:
        # upload_file switches to multipart uploads for large files by itself.
        await asyncio.to_thread(
            _translated_upload, self.client, str(source_path), self.bucket, self._name(key)
        )
        await asyncio.to_thread(source_path.unlink)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self._call(self.client.put_object, Key=self._name(key), Body=data)

    async def read_bytes(self, key: str) -> bytes:
        response = await self._call(self.client.get_object, Key=self._name(key))
        body = response["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def size(self, key: str) -> int:
        head = await self._call(self.client.head_object, Key=self._name(key))
        return int(head["ContentLength"])

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except FileNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> bool:
        # S3 deletes are idempotent and silent, so ask first to report whether it existed.
        existed = await self.exists(key)
        await self._call(self.client.delete_object, Key=self._name(key))
        return existed

    async def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        kwargs: dict[str, Any] = {"Key": self._name(key)}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = await self._call(self.client.get_object, **kwargs)
        except _RangeNotSatisfiable:
            return
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.iter_chunks(key, start, end)

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.root, prefix="s3-", suffix=Path(key).suffix)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as target:
                async for chunk in self.iter_chunks(key):
                    await asyncio.to_thread(target.write, chunk)
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)


class _RangeNotSatisfiable(Exception):
    pass


def _translated(fn: Callable[..., T], bucket: str, **kwargs: Any) -> T:
    """boto3's errors in the words the rest of the code uses (and the job tier retries)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(Bucket=bucket, **kwargs)
    except ClientError as exc:
        raise _client_error(exc, kwargs.get("Key", "")) from exc
    except BotoCoreError as exc:  # connection refused, timeouts, broken responses
        raise ConnectionError(f"object storage unreachable: {exc}") from exc


def _translated_upload(client: Any, source: str, bucket: str, name: str) -> None:
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.upload_file(source, bucket, name)
    except ClientError as exc:
        raise _client_error(exc, name) from exc
    except (BotoCoreError, S3UploadFailedError) as exc:
        raise ConnectionError(f"object storage upload failed: {exc}") from exc


def _client_error(exc: Any, name: str) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code in {"NoSuchKey", "404", "NotFound"} or status == 404:
        return FileNotFoundError(name)
    if code == "InvalidRange" or status == 416:
        return _RangeNotSatisfiable(name)
    if status >= 500 or status == 429 or code in {"SlowDown", "Throttling", "RequestTimeout"}:
        return ConnectionError(f"object storage busy ({code or status}); try again")
    return RuntimeError(f"object storage refused {name!r}: {code} {error.get('Message', '')}")
