"""CSRF: cookie-authenticated changes need the page's token; bearer requests do not."""

from __future__ import annotations

import re

import httpx

from docdigest.users.csrf import CSRF_COOKIE
from tests.users.steps import PASSWORD, log_in, sign_up


async def test_cookie_request_without_token_is_rejected_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    await log_in(client)

    response = await client.patch("/api/me", json={"name": "Mallory"})

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert (await client.get("/api/me")).json()["name"] == "Alice"


async def test_wrong_token_is_rejected(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    await log_in(client)

    response = await client.patch(
        "/api/me", json={"name": "Mallory"}, headers={"X-CSRF-Token": "0" * 64}
    )

    assert response.status_code == 403


async def test_cookie_request_with_token_is_accepted(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    login = await log_in(client)

    response = await client.patch(
        "/api/me", json={"name": "Alice B."}, headers={"X-CSRF-Token": login["csrf_token"]}
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Alice B."


async def test_token_of_an_old_session_is_rejected_after_login(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    old = await log_in(client)
    await log_in(client)

    response = await client.patch(
        "/api/me", json={"name": "x"}, headers={"X-CSRF-Token": old["csrf_token"]}
    )

    assert response.status_code == 403


async def test_bearer_requests_need_no_csrf_token(app: object, client: httpx.AsyncClient) -> None:
    await sign_up(client)
    token = (await log_in(client))["access_token"]
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        response = await api.patch(
            "/api/me", json={"name": "Bot"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    assert response.json()["name"] == "Bot"


async def test_login_form_needs_the_token_from_the_page(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    page = await client.get("/login")
    assert CSRF_COOKIE in client.cookies
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert match is not None
    form = {"email": "alice@example.com", "password": PASSWORD}

    rejected = await client.post("/login", data=form)
    accepted = await client.post("/login", data=form | {"csrf_token": match.group(1)})

    assert rejected.status_code == 403
    assert accepted.status_code == 303
    assert (await client.get("/api/me")).status_code == 200


async def test_garbage_token_is_a_plain_403(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    await log_in(client)

    response = await client.patch(
        "/api/me", json={"name": "x"}, headers={b"X-CSRF-Token": "é".encode("latin-1")}
    )

    assert response.status_code == 403
