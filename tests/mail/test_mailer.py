"""The mailer keeps SMTP connections open between messages, and copes when they go."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from docdigest.devserver.redis import free_port
from docdigest.mail import mailer as mailer_module
from docdigest.mail.mailer import POOL_SIZE, Mailer
from tests.conftest import SmtpCatcher


def message(n: int) -> EmailMessage:
    mail = EmailMessage()
    mail["To"] = "ada@example.com"
    mail["Subject"] = f"Message {n}"
    mail.set_content(f"Body {n}")
    return mail


class Server:
    """A real SMTP server (aiosmtpd) that can be restarted on its port."""

    def __init__(self) -> None:
        self.catcher = SmtpCatcher("127.0.0.1", free_port())
        self.start()

    def start(self) -> None:
        self.controller = Controller(self.catcher, hostname="127.0.0.1", port=self.catcher.port)
        self.controller.start()

    def restart(self) -> None:
        self.controller.stop()
        self.start()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.controller.stop()


async def test_messages_one_after_another_share_one_connection(
    server: Server,
) -> None:
    catcher = server.catcher
    mailer = Mailer("127.0.0.1", catcher.port, "docdigest@example.com")
    for n in range(5):
        await mailer.send(message(n))
    await mailer.aclose()

    assert catcher.subjects() == [f"Message {n}" for n in range(5)]
    assert len(set(catcher.peers)) == 1
    assert all(str(m["From"]) == "docdigest@example.com" for m in catcher.messages)


async def test_messages_at_once_use_at_most_the_pool_size_in_connections(
    server: Server,
) -> None:
    catcher = server.catcher
    mailer = Mailer("127.0.0.1", catcher.port, "docdigest@example.com")
    await asyncio.gather(*(mailer.send(message(n)) for n in range(3 * POOL_SIZE)))
    await mailer.aclose()

    assert sorted(catcher.subjects()) == sorted(f"Message {n}" for n in range(3 * POOL_SIZE))
    assert 1 <= len(set(catcher.peers)) <= POOL_SIZE


async def test_a_connection_the_server_dropped_is_replaced_and_the_mail_delivered(
    server: Server,
) -> None:
    catcher = server.catcher
    mailer = Mailer("127.0.0.1", catcher.port, "docdigest@example.com")
    await mailer.send(message(1))
    # The server restarts: the connection the mailer kept is gone.
    server.restart()
    await mailer.send(message(2))
    await mailer.aclose()

    assert catcher.subjects() == ["Message 1", "Message 2"]
    assert len(set(catcher.peers)) == 2


async def test_a_connection_idle_too_long_is_not_reused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    catcher = server.catcher
    monkeypatch.setattr(mailer_module, "IDLE_S", 0.0)
    mailer = Mailer("127.0.0.1", catcher.port, "docdigest@example.com")
    await mailer.send(message(1))
    await mailer.send(message(2))
    await mailer.aclose()

    assert catcher.subjects() == ["Message 1", "Message 2"]
    assert len(set(catcher.peers)) == 2
