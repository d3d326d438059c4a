"""Small steps the account tests share: sign up and log in through the API."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORD = "correct horse battery"


async def sign_up(
    client: httpx.AsyncClient, email: str = "alice@example.com", name: str = "Alice"
) -> dict[str, Any]:
    response = await client.post(
        "/api/signup", json={"email": email, "name": name, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_in(
    client: httpx.AsyncClient, email: str = "alice@example.com", password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post("/api/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
