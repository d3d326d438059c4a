"""The dev mail page: what the local SMTP catcher received, for a person trying docdigest out.

It exists only while mail goes to that catcher (settings.dev_mail_enabled). A person
sees the mail addressed to them; an admin sees everything the catcher kept.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from docdigest.core.errors import NotFound
from docdigest.mail.devmail import DevMailbox, get_visible, list_visible
from docdigest.settings import Settings
from docdigest.web.deps import PageUser, render

router = APIRouter(prefix="/mail", include_in_schema=False)

SHOWN = 100


async def mailbox(request: Request) -> DevMailbox:
    settings: Settings = request.app.state.settings
    if settings.dev_mail_dir is None:
        raise NotFound("The mail page exists only while mail goes to the local catcher.")
    return DevMailbox(settings.dev_mail_dir)


# Declared before the user, so the page is a 404 (not a login prompt) when it does not exist.
Mailbox = Annotated[DevMailbox, Depends(mailbox)]


@router.get("", response_class=HTMLResponse)
async def inbox(request: Request, box: Mailbox, user: PageUser) -> HTMLResponse:
    messages = await list_visible(box, user, SHOWN)
    selected = messages[0] if messages else None
    return render(request, "mail.html", messages=messages, selected=selected)


@router.get("/{mail_id}", response_class=HTMLResponse)
async def message(request: Request, box: Mailbox, user: PageUser, mail_id: str) -> HTMLResponse:
    selected = await get_visible(box, user, mail_id)
    messages = await list_visible(box, user, SHOWN)
    return render(request, "mail.html", messages=messages, selected=selected)
