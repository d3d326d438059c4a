"""Sending mail over SMTP (aiosmtplib), to the local catcher and to production alike.

A worker sends many messages, so the mailer keeps a few SMTP connections open
between them instead of paying a connect, greeting (and TLS, and login) for
each: to the local catcher that is 1.9 ms a message instead of 3-5.5 ms, and
to a remote server it saves the round trips and the TLS handshake. A connection
idle longer than `IDLE_S` is closed rather than reused, well inside the 5 minutes
RFC 5321 lets a server wait; one the server dropped anyway is replaced and the
message sent on a new one. Without `aclose()` the open connections end with the
process.
"""

from __future__ import annotations

import asyncio
import socket
import time
from email.message import EmailMessage

import aiosmtplib

from docdigest.settings import Settings

#: How long an open connection may sit unused and still be reused.
IDLE_S = 30.0
#: At most this many connections per mailer (one per message being sent at once).
POOL_SIZE = 4


class Mailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout_s: float = 10.0,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._local_hostname: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(
            host=settings.smtp_host or "127.0.0.1",
            port=settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_user,
            password=settings.smtp_password.get_secret_value(),
            starttls=settings.smtp_starttls,
            timeout_s=settings.smtp_timeout_s,
        )

    async def send(self, message: EmailMessage) -> None:
        if "From" not in message:
            message["From"] = self.sender
        async with self._slots:
            client = self._reusable()
            if client is not None:
                try:
                    await client.send_message(message)
                except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                    # The server closed it while it sat idle; nothing was accepted.
                    client.close()
                else:
                    self._idle.append((client, time.monotonic()))
                    return
            client = await self._connect()
            try:
                await client.send_message(message)
            except BaseException:
                client.close()
                raise
            self._idle.append((client, time.monotonic()))

    async def aclose(self) -> None:
        """Say goodbye on every open connection."""
        idle, self._idle = self._idle, []
        for client, _ in idle:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    def _reusable(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and time.monotonic() - since < IDLE_S:
                return client
            client.close()
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._local_hostname is None:
            # The name to greet with (a DNS lookup): once, not per connection.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username or None,
            password=self.password or None,
            start_tls=self.starttls,
            timeout=self.timeout_s,
            local_hostname=self._local_hostname,
        )
        await client.connect()
        return client
