"""Every mail has a subject, a text and an HTML version, from the context its sender passes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from docdigest.mail.render import render_mail

USER = SimpleNamespace(name="Ann <script>", email="ann@example.com")
DOCUMENT = SimpleNamespace(id=7, filename="report.pdf")
CONTEXTS: dict[str, dict[str, Any]] = {
    "welcome": {"user": USER},
    "onboarding_nudge": {"user": USER},
    "document_ready": {
        "user": USER,
        "document": DOCUMENT,
        "summary": "Sales rose & costs fell.",
        "url": "http://x/documents/7",
    },
    "digest": {
        "user": USER,
        "date": "2026-01-02",
        "documents": [
            {"filename": "a.pdf", "summary": "First.", "url": "http://x/documents/1"},
            {"filename": "b.docx", "summary": "Second.", "url": "http://x/documents/2"},
        ],
    },
}


def test_each_template_renders_all_three_parts() -> None:
    for name, context in CONTEXTS.items():
        mail = render_mail(name, {"base_url": "http://x", **context})
        assert mail.subject and "\n" not in mail.subject, name
        assert mail.text.strip(), name
        assert mail.html.lstrip().startswith("<!doctype html>"), name
        assert "Ann <script>" not in mail.html, name  # escaped in HTML
        assert "Ann &lt;script&gt;" in mail.html, name


def test_document_ready_carries_the_name_and_summary() -> None:
    mail = render_mail("document_ready", {"base_url": "http://x", **CONTEXTS["document_ready"]})
    assert mail.subject == "Your document 'report.pdf' is ready"
    assert "Sales rose & costs fell." in mail.text
    assert "Sales rose &amp; costs fell." in mail.html
    assert "http://x/documents/7" in mail.html


def test_digest_lists_every_document() -> None:
    mail = render_mail("digest", {"base_url": "http://x", **CONTEXTS["digest"]})
    assert mail.subject == "Your docdigest for 2026-01-02: 2 documents"
    for text in ("a.pdf", "b.docx", "First.", "Second."):
        assert text in mail.text and text in mail.html
