"""What extraction returns (kept free of heavy imports: the worker process loads it)."""

from __future__ import annotations

from dataclasses import dataclass


class Unreadable(Exception):
    """The file cannot be turned into text; the message is shown to its owner."""


@dataclass(frozen=True)
class Extracted:
    text: str
    note: str | None = None
    pages: int | None = None
