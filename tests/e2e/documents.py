"""Real documents for the browser tests: the documents tests' generators, written to disk."""

from __future__ import annotations

from pathlib import Path

from tests.documents.files import TEXT, docx_bytes, pdf_bytes, write


def make_pdf(path: Path) -> Path:
    return write(path, pdf_bytes(pages=2))


def make_docx(path: Path) -> Path:
    # Other words than the PDF's, so the two summaries can be told apart on the page.
    return write(path, docx_bytes(TEXT.replace("Lighthouses", "Beacons")))
