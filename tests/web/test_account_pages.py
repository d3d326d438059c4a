"""Sign up, log in and log out through the HTML forms, as a browser would."""

from __future__ import annotations

import httpx

from tests.web.conftest import HTML, PASSWORD, MakeClient, csrf_of, post_form, sign_up


async def test_home_sends_strangers_to_login_and_people_to_their_documents(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"

    await sign_up(client, "ada@example.com")
    response = await client.get("/", headers=HTML)
    assert response.headers["location"] == "/documents"


async def test_signup_logs_in_and_shows_the_nav(client: httpx.AsyncClient) -> None:
    response = await sign_up(client, "ada@example.com")
    assert response.headers["location"] == "/upload"
    assert "httponly" in response.headers["set-cookie"].lower()

    page = await client.get("/settings", headers=HTML)
    assert page.status_code == 200
    assert "ada@example.com" in page.text
    assert "Log out" in page.text
    assert 'href="/admin/jobs"' not in page.text


async def test_signup_errors_sit_next_to_the_fields_and_keep_what_was_typed(
    client: httpx.AsyncClient,
) -> None:
    response = await post_form(
        client,
        "/signup",
        "/signup",
        {"email": "not-an-email", "name": "Ada <b>", "password": "short"},
    )
    assert response.status_code == 422
    assert 'id="email-error"' in response.text
    assert 'id="password-error"' in response.text
    assert 'value="not-an-email"' in response.text
    assert 'value="Ada &lt;b&gt;"' in response.text
    assert "short" not in response.text.split('id="password"')[1].split(">")[0]


async def test_duplicate_email_is_explained_on_the_form(make_client: MakeClient) -> None:
    await sign_up(await make_client(), "ada@example.com")
    response = await post_form(
        await make_client(),
        "/signup",
        "/signup",
        {"email": "ada@example.com", "name": "Other", "password": PASSWORD},
    )
    assert response.status_code == 409
    assert "already exists" in response.text


async def test_login_wrong_password_then_right_one(make_client: MakeClient) -> None:
    await sign_up(await make_client(), "ada@example.com")
    browser = await make_client()

    wrong = await post_form(
        browser, "/login", "/login", {"email": "ada@example.com", "password": "nope nope nope"}
    )
    assert wrong.status_code == 401
    assert "Wrong email or password." in wrong.text
    assert 'value="ada@example.com"' in wrong.text
    assert "nope nope nope" not in wrong.text

    right = await post_form(
        browser,
        "/login",
        "/login",
        {"email": "ada@example.com", "password": PASSWORD, "next": "/settings"},
    )
    assert right.status_code == 303
    assert right.headers["location"] == "/settings"


async def test_login_never_redirects_off_site(make_client: MakeClient) -> None:
    await sign_up(await make_client(), "ada@example.com")
    browser = await make_client()
    response = await post_form(
        browser,
        "/login",
        "/login",
        {"email": "ada@example.com", "password": PASSWORD, "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/documents"


async def test_too_many_failed_logins_are_refused_with_a_clear_message(
    make_client: MakeClient,
) -> None:
    await sign_up(await make_client(), "ada@example.com")
    browser = await make_client()
    for _ in range(5):
        await post_form(
            browser, "/login", "/login", {"email": "ada@example.com", "password": "wrong wrong"}
        )
    response = await post_form(
        browser, "/login", "/login", {"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    assert 'role="alert"' in response.text


async def test_login_page_asks_for_missing_fields(client: httpx.AsyncClient) -> None:
    response = await post_form(client, "/login", "/login", {"email": "", "password": ""})
    assert response.status_code == 422
    assert "Enter your email address." in response.text
    assert "Enter your password." in response.text


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    await sign_up(client, "ada@example.com")
    response = await post_form(client, "/settings", "/logout", {})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?notice=logged-out"

    page = await client.get("/settings", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/settings"


async def test_form_posts_without_the_csrf_token_are_refused(client: httpx.AsyncClient) -> None:
    await client.get("/signup", headers=HTML)
    forged = await client.post(
        "/signup",
        data={"email": "ada@example.com", "name": "Ada", "password": PASSWORD},
        headers=HTML,
    )
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    assert "<html" in forged.text

    await sign_up(client, "ada@example.com")
    page = await client.get("/settings", headers=HTML)
    token = csrf_of(page.text)
    for action in ("/logout", "/settings/logout-everywhere", "/settings/tokens"):
        response = await client.post(
            action, data={"csrf_token": "x" + token, "token_name": "t"}, headers=HTML
        )
        assert response.status_code == 403, action
    assert (await client.get("/settings", headers=HTML)).status_code == 200
