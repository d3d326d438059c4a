"""Captured mail, as JSON: only mounted while mail goes to the local catcher (embedded mode)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from docdigest.core.errors import NotFound
from docdigest.mail.devmail import CapturedMail, DevMailbox, get_visible, list_visible
from docdigest.users.auth import CurrentUser

router = APIRouter(prefix="/api/dev/mail", tags=["dev"])


class CapturedMailOut(BaseModel):
    id: str
    to: str
    subject: str
    text: str
    html: str
    received_at: datetime

    @classmethod
    def of(cls, mail: CapturedMail) -> CapturedMailOut:
        return cls.model_validate(mail, from_attributes=True)


def _mailbox(request: Request) -> DevMailbox:
    path = request.app.state.settings.dev_mail_dir
    if path is None:
        raise NotFound("Mail is not captured here: a real SMTP server is configured.")
    return DevMailbox(path)


@router.get("")
async def list_mail(request: Request, user: CurrentUser, limit: int = 100) -> list[CapturedMailOut]:
    """Newest first; a person sees the mail sent to them, an admin all of it."""
    mails = await list_visible(_mailbox(request), user, max(1, min(limit, 500)))
    return [CapturedMailOut.of(m) for m in mails]


@router.get("/{mail_id}")
async def get_mail(mail_id: str, request: Request, user: CurrentUser) -> CapturedMailOut:
    return CapturedMailOut.of(await get_visible(_mailbox(request), user, mail_id))
