"""The settings page: profile, password, access tokens, sessions, deleting the account."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.users.models import User
from tests.web.conftest import HTML, PASSWORD, MakeClient, post_form, sign_up


async def test_profile_is_saved_and_the_digest_time_is_shown_in_the_users_zone(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    await sign_up(client, "ada@example.com")
    response = await post_form(
        client,
        "/settings",
        "/settings/profile",
        {"name": "Ada L.", "digest_hour": "7", "timezone": "Europe/Berlin"},
    )
    assert response.status_code == 303
    page = await client.get("/settings?saved=profile", headers=HTML)
    assert "Your profile is saved." in page.text
    assert "The digest arrives at 07:00 in Europe/Berlin." in page.text
    assert 'value="Ada L."' in page.text
    async with db() as session:
        user = await session.scalar(select(User).where(User.email == "ada@example.com"))
        assert user is not None
        assert (user.name, user.digest_hour, user.timezone, user.digest_opt_in) == (
            "Ada L.",
            7,
            "Europe/Berlin",
            False,
        )


async def test_profile_errors_are_shown_on_the_form(client: httpx.AsyncClient) -> None:
    await sign_up(client, "ada@example.com")
    response = await post_form(
        client,
        "/settings",
        "/settings/profile",
        {"name": "  ", "digest_hour": "7", "timezone": "Mars/Olympus", "digest_opt_in": "true"},
    )
    assert response.status_code == 422
    assert 'id="name-error"' in response.text
    assert "Unknown time zone: Mars/Olympus" in response.text


async def test_change_password_needs_the_current_one(make_client: MakeClient) -> None:
    browser = await make_client()
    await sign_up(browser, "ada@example.com")
    wrong = await post_form(
        browser,
        "/settings",
        "/settings/password",
        {"current_password": "not it at all", "new_password": "a whole new password"},
    )
    assert wrong.status_code == 422
    assert "This is not your current password." in wrong.text

    right = await post_form(
        browser,
        "/settings",
        "/settings/password",
        {"current_password": PASSWORD, "new_password": "a whole new password"},
    )
    assert right.headers["location"] == "/settings?saved=password"
    assert (await browser.get("/settings", headers=HTML)).status_code == 200

    other = await make_client()
    login = await post_form(
        other, "/login", "/login", {"email": "ada@example.com", "password": "a whole new password"}
    )
    assert login.status_code == 303


async def test_access_token_is_shown_once_works_and_can_be_revoked(
    client: httpx.AsyncClient, make_client: MakeClient
) -> None:
    await sign_up(client, "ada@example.com")
    created = await post_form(client, "/settings", "/settings/tokens", {"token_name": "laptop"})
    assert created.status_code == 200
    match = re.search(r'id="new-token">([^<]+)<', created.text)
    assert match
    token = match.group(1)

    api = await make_client()
    bearer = {"Authorization": f"Bearer {token}", **HTML}
    assert (await api.get("/settings", headers=bearer)).status_code == 200
    page = await client.get("/settings", headers=HTML)
    assert token not in page.text
    assert "laptop" in page.text

    token_id = re.search(r'action="/settings/tokens/(\d+)/revoke"', page.text)
    assert token_id
    revoked = await post_form(
        client, "/settings", f"/settings/tokens/{token_id.group(1)}/revoke", {}
    )
    assert revoked.status_code == 303
    assert (await api.get("/settings", headers=bearer)).status_code == 303


async def test_log_out_everywhere_ends_every_session(make_client: MakeClient) -> None:
    laptop, phone = await make_client(), await make_client()
    await sign_up(laptop, "ada@example.com")
    await post_form(phone, "/login", "/login", {"email": "ada@example.com", "password": PASSWORD})
    assert (await phone.get("/settings", headers=HTML)).status_code == 200

    response = await post_form(laptop, "/settings", "/settings/logout-everywhere", {})
    assert response.headers["location"] == "/login?notice=everywhere"
    for browser in (laptop, phone):
        assert (await browser.get("/settings", headers=HTML)).status_code == 303


async def test_delete_account_needs_confirmation_and_password(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    await sign_up(client, "ada@example.com")
    unconfirmed = await post_form(
        client, "/settings", "/settings/delete-account", {"password": PASSWORD}
    )
    assert unconfirmed.status_code == 422
    assert 'id="confirm-error"' in unconfirmed.text

    wrong = await post_form(
        client,
        "/settings",
        "/settings/delete-account",
        {"password": "not my password", "confirm": "true"},
    )
    assert wrong.status_code == 422
    assert "This is not your password." in wrong.text

    done = await post_form(
        client, "/settings", "/settings/delete-account", {"password": PASSWORD, "confirm": "true"}
    )
    assert done.headers["location"] == "/login?notice=deleted"
    async with db() as session:
        assert await session.scalar(select(User).where(User.email == "ada@example.com")) is None
    page = await client.get("/login?notice=deleted", headers=HTML)
    assert "Your account and all its documents are deleted." in page.text
