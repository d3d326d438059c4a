"""Browser-like HTTP clients for the page tests: each keeps its own cookies, like a person."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

HTML = {"Accept": "text/html,application/xhtml+xml"}
PASSWORD = "correct horse battery"

MakeClient = Callable[[], Awaitable[httpx.AsyncClient]]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def post_form(
    client: httpx.AsyncClient, page: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """Load `page` like a browser, then submit one of its forms with the page's CSRF token."""
    loaded = await client.get(page, headers=HTML)
    return await client.post(
        action, data={"csrf_token": csrf_of(loaded.text), **data}, headers=HTML
    )


async def sign_up(client: httpx.AsyncClient, email: str, name: str = "Ada") -> httpx.Response:
    response = await post_form(
        client, "/signup", "/signup", {"email": email, "name": name, "password": PASSWORD}
    )
    assert response.status_code == 303, response.text
    return response


@pytest.fixture
async def make_client(app: FastAPI) -> AsyncIterator[MakeClient]:
    clients: list[httpx.AsyncClient] = []

    async def make() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
