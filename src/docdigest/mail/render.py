"""Rendering mail templates: each has a subject, a plain-text body and an HTML body (Jinja2)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from docdigest.jobs import Permanent

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> Environment:
    # StrictUndefined: a missing variable is a bug to see, not a blank in a sent mail.
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_mail(template: str, context: dict[str, Any]) -> RenderedMail:
    try:
        subject = _environment(False).get_template(f"{template}/subject.txt").render(context)
        text = _environment(False).get_template(f"{template}/body.txt").render(context)
        html = _environment(True).get_template(f"{template}/body.html").render(context)
    except TemplateNotFound as exc:
        raise Permanent(f"no mail template {template!r}: {exc}") from exc
    return RenderedMail(subject=" ".join(subject.split()), text=text, html=html)
