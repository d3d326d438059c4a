"""The account's own settings: profile, password, and deleting everything."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.documents.models import Document, DocumentStatus
from docdigest.documents.storage import Storage, new_key
from docdigest.mail.models import OutboxMessage
from docdigest.settings import Settings
from docdigest.users.models import User
from tests.conftest import RunWorker
from tests.users.steps import PASSWORD, log_in, sign_up

NEW_PASSWORD = "a much better passphrase"


async def test_profile_changes_are_validated_and_saved(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    csrf = {"X-CSRF-Token": (await log_in(client))["csrf_token"]}

    bad = await client.patch(
        "/api/me", json={"digest_hour": 24, "timezone": "Mars/Olympus"}, headers=csrf
    )
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"digest_hour", "timezone"}

    good = await client.patch(
        "/api/me",
        json={
            "name": "Alice L.",
            "digest_opt_in": False,
            "digest_hour": 7,
            "timezone": "Europe/Paris",
        },
        headers=csrf,
    )
    assert good.status_code == 200
    me = (await client.get("/api/me")).json()
    assert (me["name"], me["digest_opt_in"], me["digest_hour"], me["timezone"]) == (
        "Alice L.",
        False,
        7,
        "Europe/Paris",
    )


async def test_changing_password_logs_out_the_other_sessions(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    await sign_up(client)
    await log_in(other_client)
    csrf = {"X-CSRF-Token": (await log_in(client))["csrf_token"]}

    wrong = await client.post(
        "/api/me/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=csrf,
    )
    assert wrong.status_code == 422
    assert "current_password" in wrong.json()["errors"]

    changed = await client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=csrf,
    )

    assert changed.status_code == 204
    assert (await client.get("/api/me")).status_code == 200
    assert (await other_client.get("/api/me")).status_code == 401
    old = await other_client.post(
        "/api/login", json={"email": "alice@example.com", "password": PASSWORD}
    )
    assert old.status_code == 401
    await log_in(other_client, password=NEW_PASSWORD)


async def test_deleting_the_account_removes_its_documents_and_files(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    settings: Settings,
    run_worker: RunWorker,
) -> None:
    alice = await sign_up(client)
    bob = await sign_up(other_client, email="bob@example.com", name="Bob")
    await run_worker()  # the welcome mails: the outbox holds both addresses now
    storage = Storage.from_settings(settings)
    keys: dict[int, list[str]] = {alice["id"]: [], bob["id"]: []}
    async with db() as session:
        for owner in (alice["id"], alice["id"], bob["id"]):
            original, text = new_key("originals", ".txt"), new_key("texts", ".txt")
            await storage.put_bytes(original, b"some words")
            await storage.put_bytes(text, b"some words")
            keys[owner] += [original, text]
            session.add(
                Document(
                    user_id=owner,
                    filename="notes.txt",
                    content_type="text/plain",
                    size=10,
                    sha256=original[-40:-4].ljust(64, "0"),
                    storage_key=original,
                    text_key=text,
                    status=DocumentStatus.READY,
                )
            )
        await session.commit()
    csrf = {"X-CSRF-Token": (await log_in(client))["csrf_token"]}

    refused = await client.request(
        "DELETE", "/api/me", json={"password": "wrong password"}, headers=csrf
    )
    assert refused.status_code == 422
    assert all([await storage.exists(k) for k in keys[alice["id"]]])

    deleted = await client.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=csrf)

    assert deleted.status_code == 204
    assert not any([await storage.exists(k) for k in keys[alice["id"]]])
    assert all([await storage.exists(k) for k in keys[bob["id"]]])
    async with db() as session:
        assert [u.email for u in (await session.scalars(select(User))).all()] == ["bob@example.com"]
        assert [d.user_id for d in (await session.scalars(select(Document))).all()] == [bob["id"]]
        outbox = (await session.scalars(select(OutboxMessage))).all()
        assert "alice@example.com" not in [m.to for m in outbox]
    gone = await client.post(
        "/api/login", json={"email": "alice@example.com", "password": PASSWORD}
    )
    assert gone.status_code == 401
