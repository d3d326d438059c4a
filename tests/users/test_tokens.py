"""Personal access tokens: created once, used as bearer tokens, revoked for good."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.users.steps import log_in, sign_up


async def test_token_is_shown_once_works_as_bearer_and_stops_when_revoked(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await sign_up(client)
    login = await log_in(client)
    csrf = {"X-CSRF-Token": login["csrf_token"]}

    created = await client.post("/api/tokens", json={"name": "backup script"}, headers=csrf)
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("ddp_")

    listed = (await client.get("/api/tokens")).json()
    assert [t["name"] for t in listed] == ["backup script"]
    assert "token" not in listed[0]
    assert token.startswith(listed[0]["prefix"])

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as script:
        bearer = {"Authorization": f"Bearer {token}"}
        me = await script.get("/api/me", headers=bearer)
        assert me.status_code == 200 and me.json()["email"] == "alice@example.com"
        changed = await script.patch("/api/me", json={"digest_opt_in": False}, headers=bearer)
        assert changed.status_code == 200 and changed.json()["digest_opt_in"] is False

        revoked = await client.delete(f"/api/tokens/{listed[0]['id']}", headers=csrf)
        assert revoked.status_code == 204

        assert (await script.get("/api/me", headers=bearer)).status_code == 401
    assert (await client.get("/api/tokens")).json() == []


async def test_someone_elses_token_cannot_be_revoked(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    await sign_up(client)
    alice = await log_in(client)
    created = await client.post(
        "/api/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": alice["csrf_token"]}
    )
    token_id = created.json()["id"]
    await sign_up(other_client, email="eve@example.com", name="Eve")
    eve = await log_in(other_client, email="eve@example.com")

    response = await other_client.delete(
        f"/api/tokens/{token_id}", headers={"X-CSRF-Token": eve["csrf_token"]}
    )

    assert response.status_code == 404
    assert len((await client.get("/api/tokens")).json()) == 1


async def test_anonymous_cannot_use_the_account_api(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/me"),
        ("PATCH", "/api/me"),
        ("GET", "/api/tokens"),
        ("POST", "/api/tokens"),
        ("POST", "/api/logout"),
    ]:
        response = await client.request(method, path, json={"name": "x"})
        assert response.status_code == 401, path
