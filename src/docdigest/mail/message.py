"""Mail messages through the standard library's modern email API, less three of its costs.

- `email.policy.default` makes a new class each time a header is set, and again to
  count it (its `HeaderRegistry` calls `type()` for every lookup): about a third of
  building a message. `POLICY` is the same policy with a registry that makes each
  header's class once.
- It also parses every header value it is given, and most of a message's values are
  the same in every message (its sender, its MIME headers, its parts' types): the
  registry keeps the header made from each recent value, which cannot change, and
  gives it again for the same name and value.
- A multipart message written out without a boundary gets a random one, and the
  generator compiles a regular expression for it to check that no part holds it:
  half the cost of writing the message out. `set_bodies` gives the boundary and
  checks the bodies with `in`.

Messages come out as the default policy writes them; only the boundary's form differs.
"""

from __future__ import annotations

import functools
import secrets
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from typing import Any

#: How many recent header values the registry keeps parsed. A ready mail sets 16, of
#: which 11 are the same in every one: those stay, the rest (its recipient, subject,
#: date, Message-ID and boundary) come and go.
PARSED_HEADERS = 128


class _HeaderTypes(HeaderRegistry):
    """The standard registry, each header's class made once rather than per lookup,
    and each recent value's header parsed once.

    A header is an immutable `str` with its parse tree, so one made for a name and
    value serves every message that sets them. (Classes added with `map_to_type` after
    a lookup of the same name would not be seen; nothing here adds any.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}
        self._parsed = functools.lru_cache(maxsize=PARSED_HEADERS)(self._parse)

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is str:
            return self._parsed(name, value)
        return self._parse(name, value)  # an address list, a datetime: as the standard does

    def _parse(self, name: str, value: Any) -> BaseHeader:
        header: BaseHeader = super().__call__(name, value)
        return header

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


#: `email.policy.default`, with header classes made once and recent values parsed once.
POLICY = policy.default.clone(header_factory=_HeaderTypes())


def new_message() -> EmailMessage:
    return EmailMessage(policy=POLICY)


def set_bodies(message: EmailMessage, text: str, html: str) -> None:
    """`text` as the message's body, `html` as its alternative."""
    message.set_content(text)
    message.make_alternative(boundary=_boundary(text, html))
    message.add_alternative(html, subtype="html")


def _boundary(*bodies: str) -> str:
    # Quoted-printable and base64 never write "=_", so only a body sent as it is
    # (7bit or 8bit) could hold the boundary; 128 random bits make that a formality.
    while True:
        boundary = f"=_{secrets.token_hex(16)}"
        if not any(boundary in body for body in bodies):
            return boundary
