"""A message built with the mail policy reads back as it was written, as the default
policy would write it, its boundary in none of its bodies."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from aiosmtplib.email import flatten_message

from docdigest.mail.message import PARSED_HEADERS, POLICY, new_message, set_bodies

TEXT = "Grüße, Zoë!\nThe summary: costs fell by 3 % = good news.\n" + "long line " * 40 + "\n"
HTML = "<!doctype html>\n<p>Grüße, <b>Zoë</b>!</p>\n"


def built(make: type[EmailMessage] | None = None) -> EmailMessage:
    """The same headers and bodies, with the mail policy or (given a class) the default."""
    message = new_message() if make is None else make(policy=policy.default)
    message["From"] = "docdigest <noreply@example.com>"
    message["To"] = "Zoë Example <zoe@example.com>"
    message["Subject"] = "Your document 'Grüße.pdf' is ready"
    message["Message-ID"] = "<0123456789abcdef@docdigest>"
    message["Date"] = "Sat, 05 Dec 2026 12:00:00 +0000"
    if make is None:
        set_bodies(message, TEXT, HTML)
    else:
        message.set_content(TEXT)
        message.add_alternative(HTML, subtype="html")
    return message


def boundaries(raw: bytes) -> set[str]:
    return {found.decode() for found in re.findall(rb'boundary="([^"]+)"', raw)}


def test_a_message_reads_back_with_its_headers_and_both_bodies() -> None:
    raw = flatten_message(built())
    read = message_from_bytes(raw, policy=policy.default)
    assert isinstance(read, EmailMessage)

    assert read["To"].addresses[0].display_name == "Zoë Example"
    assert read["Subject"] == "Your document 'Grüße.pdf' is ready"
    assert read.get_content_type() == "multipart/alternative"
    text, html = read.get_body(("plain",)), read.get_body(("html",))
    assert text is not None and html is not None
    # On the wire lines end in CRLF.
    assert text.get_content().replace("\r\n", "\n") == TEXT
    assert html.get_content().replace("\r\n", "\n") == HTML


def test_the_bytes_are_what_the_default_policy_writes_but_for_the_boundary() -> None:
    ours, theirs = flatten_message(built()), flatten_message(built(EmailMessage))
    (our_boundary,) = boundaries(ours)
    (their_boundary,) = boundaries(theirs)

    assert our_boundary.startswith("=_")
    assert ours.replace(our_boundary.encode(), b"B") == theirs.replace(
        their_boundary.encode(), b"B"
    )


def test_a_boundary_found_in_a_body_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["0" * 32, "1" * 32])
    monkeypatch.setattr(secrets, "token_hex", lambda _n: next(tokens))
    message = new_message()
    set_bodies(message, f"a body that happens to hold =_{'0' * 32} in it\n", HTML)

    raw = flatten_message(message)
    assert boundaries(raw) == {"=_" + "1" * 32}
    text = message_from_bytes(raw, policy=policy.default).get_body(("plain",))
    assert text is not None and "=_" + "0" * 32 in text.get_content()


def test_each_header_kind_gets_one_class_however_often_it_is_set() -> None:
    first, second = built(), built()
    assert type(first["To"]) is type(second["To"])
    assert type(first["Subject"]) is type(second["Subject"])
    assert type(first["To"]) is not type(first["Subject"])


def test_a_value_set_before_gives_the_same_header_and_the_same_bytes() -> None:
    first, second = built(), built()
    for name in ("From", "To", "Subject", "Message-ID", "Date"):
        assert second[name] is first[name]

    # Headers parsed for an earlier message write out as the default policy's own.
    ours, theirs = flatten_message(second), flatten_message(built(EmailMessage))
    (our_boundary,) = boundaries(ours)
    (their_boundary,) = boundaries(theirs)
    assert ours.replace(our_boundary.encode(), b"B") == theirs.replace(
        their_boundary.encode(), b"B"
    )
    # One message's value does not reach another's header.
    third = built()
    del third["To"]
    third["To"] = "Someone Else <else@example.com>"
    assert first["To"].addresses[0].username == "zoe"
    assert third["To"].addresses[0].username == "else"


def test_values_given_as_objects_are_made_into_headers_as_the_standard_does() -> None:
    message = new_message()
    message["Date"] = datetime(2026, 12, 5, 12, tzinfo=UTC)
    message["To"] = [
        Address("Zoë Example", "zoe", "example.com"),
        Address("", "ann", "example.com"),
    ]

    assert message["Date"] == "Sat, 05 Dec 2026 12:00:00 +0000"
    assert [a.display_name for a in message["To"].addresses] == ["Zoë Example", ""]


def test_the_headers_kept_parsed_are_bounded_however_many_recipients_there_are() -> None:
    for n in range(PARSED_HEADERS * 3):
        new_message()["To"] = f"reader{n}@example.com"

    kept = POLICY.header_factory._parsed.cache_info()  # type: ignore[attr-defined]
    assert kept.currsize == PARSED_HEADERS
