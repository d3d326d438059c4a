"""Turning a file into text, one function per family of formats.

This module runs inside the sandboxed child process (see sandbox.py), which
preloads it so that its heavy imports are paid once per worker, not per file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from markitdown import DocumentConverter, StreamInfo
from markitdown.converters import (
    DocxConverter,
    EpubConverter,
    HtmlConverter,
    PptxConverter,
    XlsxConverter,
)

from docdigest.documents import sniff
from docdigest.documents.extract.docx import lighter_docx
from docdigest.documents.extract.normalize import normalize_text
from docdigest.documents.extract.pdf import extract_pdf
from docdigest.documents.extract.result import Extracted, Unreadable

# A zip whose members expand beyond this, or by more than this ratio, is refused
# before any converter touches it.
ZIP_MAX_EXPANDED_BYTES = 512 * 1024 * 1024
ZIP_MAX_RATIO = 100

# markitdown's converters called directly: MarkItDown.convert() would try every
# converter that accepts the type in turn, so one hostile file would be parsed
# several times over before failing.
_CONVERTER_TYPES: dict[str, Callable[[], DocumentConverter]] = {
    sniff.DOCX: DocxConverter,
    sniff.PPTX: PptxConverter,
    sniff.XLSX: XlsxConverter,
    sniff.EPUB: EpubConverter,
    sniff.HTML: HtmlConverter,
}
CONVERTERS = {content_type: make() for content_type, make in _CONVERTER_TYPES.items()}


def extract(path: Path, content_type: str, max_chars: int) -> Extracted:
    if content_type == sniff.PDF:
        return extract_pdf(path, max_chars)
    if content_type in (sniff.TEXT, sniff.MARKDOWN, sniff.CSV):
        raw = _read_text(path, max_chars)
        return _finish(raw, max_chars)
    if content_type in sniff.ZIP_TYPES:
        _check_zip(path)
    converter = CONVERTERS.get(content_type)
    if converter is not None:
        info = StreamInfo(extension=sniff.ALLOWED[content_type], mimetype=content_type)
        opened = lighter_docx(path) if content_type == sniff.DOCX else path.open("rb")
        with opened as handle:
            result = converter.convert(handle, info)
        return _finish(result.markdown or "", max_chars)
    raise Unreadable(f"{content_type} is not a supported type")


def _read_text(path: Path, max_chars: int) -> str:
    with path.open("rb") as handle:
        raw = handle.read(max_chars * 4 + 4)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 3:  # cut inside the last character by the read limit
            return raw[: exc.start].decode("utf-8-sig")
        return raw.decode("cp1252", errors="replace")


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise Unreadable("file is corrupt") from exc
    expanded = sum(member.file_size for member in members)
    packed = max(1, sum(member.compress_size for member in members))
    if expanded > ZIP_MAX_EXPANDED_BYTES or (
        expanded > 50 * 1024 * 1024 and expanded / packed > ZIP_MAX_RATIO
    ):
        raise Unreadable(
            f"file expands to {expanded // (1024 * 1024)} MB when unpacked (a zip bomb?)"
        )


def _finish(raw: str, max_chars: int, *, pages: int | None = None) -> Extracted:
    text = normalize_text(raw[: max_chars + max_chars // 10])
    note = None
    if len(text) > max_chars:
        text = text[:max_chars]
        note = f"text cut at {max_chars:,} characters"
    if not text:
        note = "no text found in the file"
    return Extracted(text, note, pages)
