"""The one Jinja2 environment every page (and the admin pages) renders with."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _csrf_token(request: Request) -> str:
    # Imported here so that templates can be rendered by modules users.auth itself imports.
    from docdigest.users.auth import csrf_token

    return csrf_token(request)


def _page_context(request: Request) -> dict[str, Any]:
    """What the layout needs on every page: who is asking and which parts are on."""
    return {
        "current_user": getattr(request.state, "user", None),
        "settings": request.app.state.settings,
    }


def _local_time(value: datetime | None, timezone: str = "UTC", fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime(fmt)


def _file_size(size: int | None) -> str:
    if size is None:
        return ""
    amount = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


DOC_TYPES = {
    "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PowerPoint",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel",
    "application/epub+zip": "EPUB",
    "text/html": "HTML",
    "text/markdown": "Markdown",
    "text/plain": "Text",
    "text/csv": "CSV",
}


def _doc_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    return DOC_TYPES.get(content_type.split(";")[0].strip(), content_type)


def _summary_source(source: str | None) -> str:
    if not source:
        return ""
    if source == "extractive":
        return "extractive summary (offline)"
    if source == "extractive-fallback":
        return "extractive summary (the language model was unavailable)"
    if source.startswith("llm:"):
        return f"language model {source[4:]}"
    return source


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


templates = Jinja2Templates(directory=TEMPLATES_DIR, context_processors=[_page_context])
templates.env.globals["csrf_token"] = _csrf_token
templates.env.filters["local_time"] = _local_time
templates.env.filters["file_size"] = _file_size
templates.env.filters["doc_type"] = _doc_type
templates.env.filters["summary_source"] = _summary_source
templates.env.filters["duration"] = _duration
