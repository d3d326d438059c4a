"""What an uploaded file really is, judged from its bytes (never its name or Content-Type).

`filetype` recognises binary formats by their magic numbers; it does not do text,
and it calls every OOXML/EPUB file a zip, so those two cases are decided here.

Text is decided before the magic numbers. Most of filetype's signatures are two to
four bytes, many of them letters ("BM", "MZ", "ID3", "OggS"), so a note that begins
"BM25 ranking" would otherwise be refused as a bitmap. A real file of those formats
is binary within its first bytes and never reads as text. The formats that are text
themselves (PDF, RTF, PostScript, ar archives) are recognised first, by their own
signatures.
"""

from __future__ import annotations

import csv
import lzma
import os
import re
import zipfile
import zlib
from pathlib import Path

import filetype

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EPUB = "application/epub+zip"
HTML = "text/html"
MARKDOWN = "text/markdown"
CSV = "text/csv"
TEXT = "text/plain"
UNKNOWN = "application/octet-stream"

#: Allowed types and the extension used when handing them to converters.
ALLOWED: dict[str, str] = {
    PDF: ".pdf",
    DOCX: ".docx",
    PPTX: ".pptx",
    XLSX: ".xlsx",
    EPUB: ".epub",
    HTML: ".html",
    MARKDOWN: ".md",
    CSV: ".csv",
    TEXT: ".txt",
}
ALLOWED_NAMES = "PDF, DOCX, PPTX, XLSX, EPUB, HTML, Markdown, CSV, plain text"
ZIP_TYPES = (DOCX, PPTX, XLSX, EPUB)

HEAD_BYTES = 64 * 1024
CSV_SAMPLE_CHARS = 4096
MARKDOWN_SAMPLE_CHARS = 16384
#: Formats whose files, or at least their headers, are text: recognised before a head
#: is taken for text. Every other signature is believed only in a head that is not.
#: (A Debian package is an ar archive; filetype tries the narrower one first.)
_TEXT_FORMATS = [
    filetype.get_type(ext=extension) for extension in ("pdf", "rtf", "ps", "deb", "ar")
]
#: More entries than a document of ours holds (an EPUB has hundreds): an archive
#: declaring more is a zip, judged without `zipfile` parsing its whole directory in
#: Python (100,000 entries cost 0.76 s of CPU).
MAX_ZIP_ENTRIES = 10_000
#: What a damaged or hostile archive can raise when read: it is then only a zip.
_UNREADABLE_ZIP = (
    zipfile.BadZipFile,
    OSError,  # bz2's damaged data, among others
    EOFError,
    KeyError,
    ValueError,  # a name that is not the UTF-8 it claims, an offset past any file
    RuntimeError,  # an encrypted member
    NotImplementedError,  # a compression method Python lacks
    zlib.error,
    lzma.LZMAError,
)
_OOXML_PARTS = {"word/document.xml": DOCX, "ppt/presentation.xml": PPTX, "xl/workbook.xml": XLSX}
# Linear in the sample's length: a line-start sign's indent may not span lines (with
# `\s*` each blank line rescanned the blanks after it, and a 70 KB upload of a list
# item and blank lines cost 3.3 s), and a link's text and address end at the next
# bracket or parenthesis (each "[a](" rescanned the rest of the sample).
_MARKDOWN_SIGNS = re.compile(
    r"^(#{1,6}\s+\S|```|[^\S\n]*[-*+]\s+\S|[^\S\n]*\d+\.\s+\S|>\s)"
    r"|\[[^\[\]\n]+\]\([^()\[\]\s]+\)|\*\*\S",
    re.MULTILINE,
)
# A line that begins as a line-start sign of _MARKDOWN_SIGNS does (its `^` is the
# sample's start or a newline), found with one search for the newline before it.
_LINE_SIGN_START = re.compile(r"\n[^\S\n]*[#`*+>\d-]")
# What starts an HTML page once its prolog (see `_prolog_end`) is passed.
_HTML_START = re.compile(rb"<(!doctype\s+html|html|head|body)[\s>]", re.I)
# What a prolog may hold before the first element: comments, and processing
# instructions such as XHTML's XML declaration.
_PROLOG_PARTS = ((b"<!--", b"-->"), (b"<?", b"?>"))
_NOT_BLANK = re.compile(rb"\S")
_HTML_TAGS = re.compile(rb"<(html|body|head|div|p|table|h[1-6])[\s>]", re.I)
_XML_START = re.compile(rb"^\s*<(\?xml|svg)[\s>]", re.I)
# Control characters other than whitespace and ESC. They are counted in bytes where
# each is one byte of its own and no other byte stands for one: the head itself when
# it is UTF-8 (multi-byte sequences never use bytes below 0x80) or Windows-1252, and
# the text's UTF-8 when the head is UTF-16. A per-character Python loop over the 64 KB
# head cost ~8 ms per upload, a regex 0.25 ms, bytes.translate 0.05 ms; most text has
# none, and looking for each with `in` (memchr) first costs half of that.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_CONTROL_SINGLES = [bytes([byte]) for byte in _CONTROL_BYTES]


def sniff(path: Path) -> str:
    """The MIME type of the file at `path` (one of ALLOWED, or what it was found to be)."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if not head:
        return "empty"
    kind = filetype.match(head, _TEXT_FORMATS)
    if kind is not None:
        return str(kind.mime)
    text = _decode(head)
    if text is not None:
        return _text_type(head, text)
    kind = filetype.guess(head)
    if kind is None:
        return UNKNOWN
    if kind.extension in {"zip", "docx", "xlsx", "pptx", "epub"}:
        return _zip_type(path)
    return str(kind.mime)


def _zip_type(path: Path) -> str:
    try:
        entries = _declared_entries(path)
        if entries is None or entries > MAX_ZIP_ENTRIES:
            return "application/zip"
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and _first_bytes(archive, "mimetype").strip() == EPUB.encode():
                return EPUB
    except _UNREADABLE_ZIP:
        return "application/zip"
    if "[Content_Types].xml" in names:
        for part, mime in _OOXML_PARTS.items():
            if part in names:
                return mime
    return "application/zip"


def _declared_entries(path: Path) -> int | None:
    """How many entries an archive's end record declares; None without one.

    Read before `zipfile` parses the whole directory, in Python, on opening. The
    record is in the last 22 bytes and a comment of at most 64 KB; ZIP64 archives
    keep the count in a second record, which a locator just before it points to.
    """
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - 22 - 0xFFFF))
        tail = handle.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) < at + 22:
            return None
        entries = int.from_bytes(tail[at + 10 : at + 12], "little")
        locator = tail[max(0, at - 20) : at]
        if entries != 0xFFFF or not locator.startswith(b"PK\x06\x07"):
            return entries
        offset = int.from_bytes(locator[8:16], "little")
        if offset > size:
            return None
        handle.seek(offset)
        record = handle.read(40)
        if len(record) < 40 or not record.startswith(b"PK\x06\x06"):
            return None
        return int.from_bytes(record[32:40], "little")


def _first_bytes(archive: zipfile.ZipFile, name: str) -> bytes:
    """The start of a member, inflating no more of it: a part of a few hundred KB
    can inflate to gigabytes."""
    with archive.open(name) as member:
        return member.read(40)


def _text_type(head: bytes, text: str) -> str:
    """What a head that reads as `text` is: XML, HTML, CSV, Markdown or plain text."""
    raw = head.lstrip(b"\xef\xbb\xbf")
    if _HTML_START.match(raw, _prolog_end(raw)):
        return HTML
    if _XML_START.match(raw):
        return "image/svg+xml" if b"<svg" in raw[:4096].lower() else "application/xml"
    if len(_HTML_TAGS.findall(raw[:8192])) >= 3:
        return HTML
    if _looks_like_csv(text):
        return CSV
    if _looks_like_markdown(text[:MARKDOWN_SAMPLE_CHARS]):
        return MARKDOWN
    return TEXT


def _prolog_end(raw: bytes) -> int:
    """Where the first element or doctype may begin: past blanks, comments and
    processing instructions.

    Found with `find`, not with a regex such as `(<!--.*?-->\\s*)*`: a lazy part that
    may span several comments gives the regex 2^n ways to split n of them, and a
    few hundred bytes of comments would hold the web process for years.
    """
    at = _past_blanks(raw, 0)
    while True:
        for opening, closing in _PROLOG_PARTS:
            if raw.startswith(opening, at):
                end = raw.find(closing, at + len(opening))
                if end < 0:
                    return len(raw)
                at = _past_blanks(raw, end + len(closing))
                break
        else:
            return at


def _past_blanks(raw: bytes, at: int) -> int:
    found = _NOT_BLANK.search(raw, at)
    return found.start() if found else len(raw)


def _looks_like_markdown(sample: str) -> bool:
    """Two Markdown signs or more (a heading, a list item, a link, bold text...).

    The regex costs ~0.2 ms on 16 KB of prose, which has none, so it only runs when
    the sample could hold one: a line that starts (after blanks) with a character
    a line-start sign starts with, or the text of a link or of bold. On 16 KB of
    prose that check costs 8 us: the line starts are one search that skips from
    newline to newline (a Python test of each line took 44 us, a regex anchored with
    `^` 59 us), and a pair of characters is looked for only where its first is found,
    which `in` does at the speed of memchr (a pair it searches for at 13 us).
    """
    possible = (
        ("]" in sample and "](" in sample)
        or ("*" in sample and "**" in sample)
        or _LINE_SIGN_START.search("\n" + sample) is not None
    )
    return possible and len(_MARKDOWN_SIGNS.findall(sample)) >= 2


def _decode(head: bytes) -> str | None:
    """The head as text, or None when it is binary."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = _utf16(head)
        raw = b"" if text is None else text.encode("utf-8", "surrogatepass")
    else:
        text, raw = _utf8(head), head
    if text is None:
        return None
    return None if _controls(raw) > max(2, len(text) // 100) else text


def _controls(raw: bytes) -> int:
    if not any(byte in raw for byte in _CONTROL_SINGLES):
        return 0
    return len(raw) - len(raw.translate(None, _CONTROL_BYTES))


def _utf16(head: bytes) -> str | None:
    encoding = "utf-16-le" if head.startswith(b"\xff\xfe") else "utf-16-be"
    try:
        return head[2 : len(head) - (len(head) % 2)].decode(encoding)
    except UnicodeDecodeError:
        return None


def _utf8(head: bytes) -> str | None:
    """UTF-8, or Windows-1252 when it is not; None when a NUL byte says binary."""
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the end of the head
            return head.decode("cp1252", errors="replace")
        return head[: exc.start].decode("utf-8")


def _looks_like_csv(text: str) -> bool:
    """Rows of one width (two columns or more) for one of the usual delimiters.

    csv.Sniffer was used here once: it counts every ASCII character in every line
    in Python and runs backtracking regexes, which cost ~1 ms of CPU per text upload
    even on a 4 KB sample, holding the GIL the web process needs. Trying each
    delimiter with the C csv reader decides the same question in microseconds.
    """
    sample = text[:CSV_SAMPLE_CHARS]
    lines = [line for line in sample.splitlines()[:30] if line.strip()]
    if len(lines) >= 30 or len(sample) < len(text):
        lines = lines[:-1]  # the last line of the sample may be cut short
    if len(lines) < 2:
        return False
    for delimiter in ",;\t|":
        if not all(delimiter in line for line in lines):
            continue  # a row without the delimiter has one column
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() >= 2:
            return True
    return False
