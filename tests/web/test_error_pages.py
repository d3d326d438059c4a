"""Error pages in the app's style for browsers, with a way back; JSON for API clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from docdigest.core.errors import AppError, Forbidden, PayloadTooLarge, UnsupportedMediaType
from tests.web.conftest import HTML, sign_up

ERRORS: dict[int, AppError] = {
    403: Forbidden("admins only"),
    413: PayloadTooLarge("The file is larger than 50 MB."),
    415: UnsupportedMediaType("'x.exe' is application/x-msdownload."),
}


@pytest.fixture
async def failing(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async def fail(code: int) -> None:
        if code == 500:
            raise RuntimeError("a bug")
        raise ERRORS[code]

    app.add_api_route("/boom/{code}", fail)
    app.add_api_route("/api/boom/{code}", fail)
    # Starlette re-raises unhandled errors after answering; the test wants the answer.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize(
    ("code", "title", "text"),
    [
        (403, "Not allowed", "admins only"),
        (413, "File too large", "larger than 50 MB"),
        (415, "File type not supported", "application/x-msdownload"),
        (500, "Something went wrong", "Try again in a moment"),
    ],
)
async def test_browsers_get_a_page_with_a_way_back(
    failing: httpx.AsyncClient, code: int, title: str, text: str
) -> None:
    page = await failing.get(f"/boom/{code}", headers=HTML)
    assert page.status_code == code
    assert page.headers["content-type"].startswith("text/html")
    assert f"<h1>{title}</h1>" in page.text
    assert text in page.text
    assert 'href="/login"' in page.text
    assert "a bug" not in page.text

    api = await failing.get(f"/api/boom/{code}", headers=HTML)
    assert api.status_code == code
    assert api.headers["content-type"].startswith("application/json")
    assert "detail" in api.json()


async def test_logged_in_people_are_led_back_to_their_documents(
    failing: httpx.AsyncClient,
) -> None:
    await sign_up(failing, "ada@example.com")
    page = await failing.get("/boom/415", headers=HTML)
    assert 'href="/documents"' in page.text
    assert 'href="/upload"' in page.text
    assert "Log out" in page.text
