"""The dev mail page shows what the local catcher received, and exists only in that mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage

import httpx
import pytest
from fastapi import FastAPI

from docdigest.mail.devmail import DevMailbox
from docdigest.main import create_app
from docdigest.settings import Settings
from tests.web.conftest import HTML, sign_up


def captured(subject: str, html: str, to: str = "ada@example.com") -> bytes:
    message = EmailMessage()
    message["To"] = to
    message["From"] = "docdigest <docdigest@localhost>"
    message["Subject"] = subject
    message.set_content("Plain words for " + subject)
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


@pytest.fixture
async def dev_mail_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    dev = settings.model_copy(update={"dev_mail_dir": settings.data_dir / "mail"})
    application: FastAPI = create_app(dev)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.mailbox = DevMailbox(settings.data_dir / "mail")  # type: ignore[attr-defined]
            await sign_up(c, "ada@example.com")
            yield c


async def test_mail_page_lists_and_renders_messages_sandboxed(
    dev_mail_client: httpx.AsyncClient,
) -> None:
    empty = await dev_mail_client.get("/mail", headers=HTML)
    assert empty.status_code == 200
    assert "No mail yet." in empty.text

    box: DevMailbox = dev_mail_client.mailbox  # type: ignore[attr-defined]
    box.add(captured("Welcome to docdigest", "<p>Hello <script>alert(1)</script></p>"))
    newest = box.add(captured("Your document is ready", "<p>Ready</p>"))

    page = await dev_mail_client.get("/mail", headers=HTML)
    assert "Welcome to docdigest" in page.text
    assert 'href="/mail"' in page.text
    assert 'sandbox=""' in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "Plain words for Your document is ready" in page.text

    one = await dev_mail_client.get(f"/mail/{newest}", headers=HTML)
    assert one.status_code == 200
    assert (await dev_mail_client.get("/mail/nope", headers=HTML)).status_code == 404


async def test_mail_page_shows_only_the_visitors_own_mail(
    dev_mail_client: httpx.AsyncClient,
) -> None:
    box: DevMailbox = dev_mail_client.mailbox  # type: ignore[attr-defined]
    mine = box.add(captured("For Ada", "<p>Ada</p>"))
    theirs = box.add(captured("For Bob", "<p>Bob</p>", to="bob@example.com"))

    page = await dev_mail_client.get("/mail", headers=HTML)
    assert "For Ada" in page.text
    assert "For Bob" not in page.text
    assert (await dev_mail_client.get(f"/mail/{mine}", headers=HTML)).status_code == 200
    assert (await dev_mail_client.get(f"/mail/{theirs}", headers=HTML)).status_code == 404

    dev_mail_client.cookies.clear()
    anonymous = await dev_mail_client.get("/mail", headers=HTML, follow_redirects=False)
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/login")


async def test_mail_page_is_absent_with_a_real_smtp_server(client: httpx.AsyncClient) -> None:
    response = await client.get("/mail", headers=HTML)
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert 'href="/mail"' not in response.text
