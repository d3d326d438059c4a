"""Mail captured by the local SMTP catcher, one `.eml` file each, for the dev mail views.

The views show a person only the mail addressed to them (an admin sees all): a
ready mail carries a document's summary, which is its owner's alone.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import getaddresses
from itertools import islice
from pathlib import Path

from docdigest.core.errors import NotFound
from docdigest.core.ids import new_id
from docdigest.mail.message import POLICY
from docdigest.users.models import User

_ID = re.compile(r"^\d{20}-[0-9a-f]{32}$")


@dataclass(frozen=True)
class CapturedMail:
    id: str
    to: str
    subject: str
    text: str
    html: str
    received_at: datetime

    def is_for(self, email: str) -> bool:
        """Whether `email` is one of the recipients."""
        wanted = email.strip().lower()
        return any(address.lower() == wanted for _name, address in getaddresses([self.to]))


class DevMailbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def add(self, raw: bytes) -> str:
        """Store one message as received over SMTP; returns its id."""
        self.path.mkdir(parents=True, exist_ok=True)
        # The nanosecond prefix sorts ids by arrival; the uuid keeps them unique.
        mail_id = f"{time.time_ns():020d}-{new_id()}"
        tmp = self.path / f".{mail_id}.tmp"
        tmp.write_bytes(raw)
        tmp.replace(self.path / f"{mail_id}.eml")  # readers never see half a message
        return mail_id

    def list(self, limit: int | None = None, *, to: str | None = None) -> list[CapturedMail]:
        """Newest first; with `to`, only the messages addressed to that address."""
        if not self.path.is_dir():
            return []
        ids = sorted((p.stem for p in self.path.glob("*.eml") if _ID.match(p.stem)), reverse=True)
        if to is None:
            return [self._read(mail_id) for mail_id in ids[:limit]]
        mails = (self._read(mail_id) for mail_id in ids)
        return list(islice((m for m in mails if m.is_for(to)), limit))

    def get(self, mail_id: str) -> CapturedMail | None:
        if not _ID.match(mail_id) or not (self.path / f"{mail_id}.eml").is_file():
            return None
        return self._read(mail_id)

    def _read(self, mail_id: str) -> CapturedMail:
        raw = (self.path / f"{mail_id}.eml").read_bytes()
        message = message_from_bytes(raw, policy=POLICY)
        assert isinstance(message, EmailMessage)
        return CapturedMail(
            id=mail_id,
            to=str(message.get("To", "")),
            subject=str(message.get("Subject", "")),
            text=_body(message, "plain"),
            html=_body(message, "html"),
            received_at=datetime.fromtimestamp(int(mail_id[:20]) / 1e9, tz=UTC),
        )


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


def visible_to(user: User) -> str | None:
    """The recipient whose mail `user` may read; None means all (admins)."""
    return None if user.is_admin else user.email


async def list_visible(box: DevMailbox, user: User, limit: int) -> list[CapturedMail]:
    return await asyncio.to_thread(box.list, limit, to=visible_to(user))


async def get_visible(box: DevMailbox, user: User, mail_id: str) -> CapturedMail:
    mail = await asyncio.to_thread(box.get, mail_id)
    if mail is None or (not user.is_admin and not mail.is_for(user.email)):
        raise NotFound("No such captured mail.")
    return mail
