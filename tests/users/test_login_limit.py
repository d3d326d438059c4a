"""Guessing passwords: failures are counted per account and per address, in Redis."""

from __future__ import annotations

import httpx

from tests.users.steps import PASSWORD, log_in, sign_up


async def test_account_locks_after_five_failures_with_a_clear_message(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    for _ in range(5):
        wrong = await client.post(
            "/api/login", json={"email": "alice@example.com", "password": "guess guess guess"}
        )
        assert wrong.status_code == 401

    locked = await client.post(
        "/api/login", json={"email": "alice@example.com", "password": PASSWORD}
    )

    assert locked.status_code == 429
    body = locked.json()
    assert body["detail"] == "Too many failed logins for this account. Try again in 15 minutes."
    assert 0 < body["retry_after_s"] <= 900
    assert locked.headers["Retry-After"] == str(body["retry_after_s"])


async def test_success_resets_the_account_counter(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    for _ in range(3):
        await client.post("/api/login", json={"email": "alice@example.com", "password": "nope"})
    await log_in(client)
    for _ in range(3):
        response = await client.post(
            "/api/login", json={"email": "alice@example.com", "password": "nope"}
        )
        assert response.status_code == 401


async def test_one_address_guessing_many_accounts_is_stopped(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    for n in range(8):
        response = await client.post(
            "/api/login", json={"email": f"user{n}@example.com", "password": "guess"}
        )
        assert response.status_code == 401

    blocked = await client.post(
        "/api/login", json={"email": "alice@example.com", "password": PASSWORD}
    )

    assert blocked.status_code == 429
    assert "for this address" in blocked.json()["detail"]
