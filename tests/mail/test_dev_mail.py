"""Dev mail: in embedded mode the captured messages can be read back over the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.devserver.redis import free_port
from docdigest.devserver.smtp import KeepEverything
from docdigest.main import create_app
from docdigest.settings import Settings
from docdigest.users.models import User
from tests.conftest import RunWorker
from tests.users.steps import log_in, sign_up


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Mail goes to the embedded catcher, which keeps it in a DevMailbox directory."""
    mail_dir = tmp_path / "mail"
    port = free_port()
    server = Controller(KeepEverything(mail_dir), hostname="127.0.0.1", port=port)
    server.start()
    yield settings.model_copy(update={"smtp_port": port, "dev_mail_dir": mail_dir})
    server.stop()


async def test_each_person_reads_only_their_own_mail_and_an_admin_reads_all(
    client: httpx.AsyncClient, run_worker: RunWorker, db: async_sessionmaker[AsyncSession]
) -> None:
    await sign_up(client, email="ann@example.com", name="Ann")
    await sign_up(client, email="bob@example.com", name="Bob")
    await log_in(client, email="ann@example.com")
    assert (await client.get("/api/dev/mail")).json() == []

    await run_worker()

    listed = (await client.get("/api/dev/mail")).json()
    assert [m["to"] for m in listed] == ["ann@example.com"]
    one = (await client.get(f"/api/dev/mail/{listed[0]['id']}")).json()
    assert one["subject"].startswith("Welcome to docdigest, ")
    assert "Upload your first document" in one["html"]
    assert "/upload" in one["text"]
    assert set(one) == {"id", "to", "subject", "text", "html", "received_at"}

    await log_in(client, email="bob@example.com")
    bobs = (await client.get("/api/dev/mail")).json()
    assert [m["to"] for m in bobs] == ["bob@example.com"]
    assert (await client.get(f"/api/dev/mail/{listed[0]['id']}")).status_code == 404

    async with db() as session:
        await session.execute(update(User).values(is_admin=True))
        await session.commit()
    everything = (await client.get("/api/dev/mail")).json()
    assert sorted(m["to"] for m in everything) == ["ann@example.com", "bob@example.com"]
    assert everything[0]["received_at"] >= everything[1]["received_at"]  # newest first


async def test_anonymous_visitors_read_no_mail(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/dev/mail")).status_code == 401
    assert (await client.get("/api/dev/mail/" + "0" * 20 + "-" + "a" * 32)).status_code == 401


async def test_unknown_mail_is_404(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    await log_in(client)
    for mail_id in ["nope", "../../etc/passwd", "0" * 20 + "-" + "a" * 32]:
        response = await client.get(f"/api/dev/mail/{mail_id}")
        assert response.status_code == 404


async def test_absent_when_a_real_smtp_server_is_configured(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"dev_mail_dir": None}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/api/dev/mail")).status_code == 404
