"""The whole app on object storage: upload, process in a worker, download, all through S3."""

from __future__ import annotations

import httpx
import pytest

from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.documents import files
from tests.documents.conftest import Account, Upload, alice, upload  # noqa: F401  (fixtures)
from tests.ops.test_storage_s3 import create_bucket, s3_client, s3_options


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return create_bucket(s3_endpoint)


@pytest.fixture
def settings(settings: Settings, s3_endpoint: str, bucket: str) -> Settings:
    return settings.model_copy(update=s3_options(s3_endpoint, bucket))


async def test_documents_go_through_object_storage(
    alice: Account,  # noqa: F811
    upload: Upload,  # noqa: F811
    client: httpx.AsyncClient,
    run_worker: RunWorker,
    settings: Settings,
    s3_endpoint: str,
    bucket: str,
) -> None:
    original = files.docx_bytes()
    response = await upload(alice, "minutes.docx", original)
    assert response.status_code == 202
    document_id = response.json()["id"]

    await run_worker()

    document = (await client.get(f"/api/documents/{document_id}", headers=alice.headers)).json()
    assert document["status"] == "ready", document
    assert document["summary"]
    download = await client.get(f"/api/documents/{document_id}/original", headers=alice.headers)
    assert download.content == original
    text = await client.get(f"/api/documents/{document_id}/text", headers=alice.headers)
    assert text.status_code == 200 and text.text.strip()
    # The bytes live in the bucket, under the prefix, and nowhere on the local disk.
    listing = s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)
    names = [item["Key"] for item in listing.get("Contents", [])]
    assert len(names) >= 2 and all(n.startswith("docdigest/files/") for n in names)
    local = [p for p in settings.files_dir.rglob("*") if p.is_file()]
    assert local == []
