"""What an uploaded file is taken for: CSV only when its rows line up; binary is not text;
a note is text even when its first letters are some binary format's signature; XHTML is
HTML; and no file can keep the sniffer busy, make it inflate an archive or read the
directory of one with more parts than any document has."""

from __future__ import annotations

import io
import json
import random
import sqlite3
import struct
import subprocess
import sys
import tracemalloc
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from docdigest.documents import sniff as sniff_module
from docdigest.documents.sniff import (
    CSV,
    DOCX,
    EPUB,
    HTML,
    MAX_ZIP_ENTRIES,
    PDF,
    TEXT,
    UNKNOWN,
    sniff,
)
from tests.documents import files


def sniffed(tmp_path: Path, content: str | bytes) -> str:
    """The type the sniffer gives an upload holding `content` (text as UTF-8)."""
    path = tmp_path / "upload"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return sniff(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('name,city\n"Lovelace, Ada",London\n"Hopper, Grace",New York\n', CSV),
        ("year;keeper;lamp\n1890;Ann;oil\n1921;Ben;electric\n", CSV),
        ("year\tkeeper\n1890\tAnn\n1921\tBen\n", CSV),
        ("year|keeper\n1890|Ann\n1921|Ben\n", CSV),
        (
            "The keeper, who lived alone, lit the lamp.\n"
            "Ships passed in the night.\n"
            "In winter, storms came, and went, often.\n",
            TEXT,
        ),
        ("a,b,c\n1,2\n3,4,5\n", TEXT),  # ragged rows
        ("a,b,c\n", TEXT),  # one row is not a table
    ],
    ids=["quoted-commas", "semicolons", "tabs", "pipes", "prose", "ragged", "one-row"],
)
def test_text_is_csv_only_when_every_row_has_the_same_columns(
    tmp_path: Path, content: str, expected: str
) -> None:
    assert sniffed(tmp_path, content) == expected


def test_a_long_table_is_judged_on_its_first_rows(tmp_path: Path) -> None:
    rows = "".join(f"{n},keeper {n},{n * 3}\n" for n in range(50_000))
    assert sniffed(tmp_path, "id,name,hours\n" + rows) == CSV


PROSE = "The keeper lit the lamp at dusk and logged the ships that passed. " * 30


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16"])
@pytest.mark.parametrize(
    ("controls", "expected"),
    # One control character in a hundred is still text (a stray form of data in a
    # log, say); more than that is binary. Tabs, newlines, form feeds and ESC are
    # ordinary text and never count.
    [(0, TEXT), (2, TEXT), (60, UNKNOWN)],
    ids=["none", "a-few", "many"],
)
def test_text_with_control_characters_is_binary_past_one_in_a_hundred(
    tmp_path: Path, encoding: str, controls: int, expected: str
) -> None:
    body = (
        "\x1b[1mLog\x1b[0m\n\tindented\f\n"
        + PROSE
        + "\x01\x02\x1c\x1f\x0e" * (controls // 5)
        + "\x01" * (controls % 5)
    )
    data = body.encode(encoding) + ("é".encode(encoding) if encoding == "cp1252" else b"")
    assert sniffed(tmp_path, data) == expected


def test_the_markdown_shortcut_gives_the_regex_s_verdict() -> None:
    """The cheap pre-check may only skip the regex where the regex finds nothing."""
    pieces = [
        "word ", "Prose goes on. ", "\n", "\r\n", "\n\n", "   ", "\t", "\f", "\x0b", "\u2028",
        "# ", "## Title", "```", "- ", "* ", "+ ", "1. ", "٣. ", "> ", ">", "[a](b)", "[x]",
        "](", "**", "**b", "*", "-", "2023", ".", "\u00a0", "\x1c",
    ]  # fmt: skip
    rng = random.Random(20261124)
    samples = ["".join(rng.choices(pieces, k=rng.randint(1, 40))) for _ in range(5000)]
    samples += [PROSE, "\n \n - item\n- two", "\u00a0\u00a0٣. one\n٤. two", "a\r- b\r\n- c"]
    expected = [len(sniff_module._MARKDOWN_SIGNS.findall(s)) >= 2 for s in samples]
    assert [sniff_module._looks_like_markdown(s) for s in samples] == expected
    assert sum(expected) > 500  # the samples do exercise both verdicts


NOTE = " notes from the keeper's log written out in plain words.\n" * 40


@pytest.mark.parametrize(
    "start",
    # Each is a signature filetype matches on a few letters: a bitmap, a Windows
    # program, an MP3's tag, Ogg, FLAC, an SQLite database, a Chrome extension.
    ["BM25 ranking:", "MZ-80 computers:", "ID3 tags:", "OggS:", "fLaC:", "SQLite", "Cr24:"],
)
def test_a_note_that_starts_like_a_binary_signature_is_text(tmp_path: Path, start: str) -> None:
    assert sniffed(tmp_path, start + NOTE) == TEXT


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(struct.pack("<400h", *range(-200, 200)))
    return out.getvalue()


def _sqlite() -> bytes:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE keepers (name TEXT)")
    db.execute("INSERT INTO keepers VALUES ('Ann')")
    data = db.serialize()
    db.close()
    return data


BITMAP = b"BM" + struct.pack("<IHHIIiiHHIIiiII", 62, 0, 0, 54, 40, 1, 1, 1, 24, 0, 8, 0, 0, 0, 0)
BINARY_FILES = {
    "image/bmp": BITMAP + b"\xff\xff\xff\x00\x00\x00\x00\x00",
    "application/x-msdownload": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(120),
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + b"\xff\xfb\x90\x64" * 50,
    "audio/ogg": b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis" + bytes(40),
    "audio/x-flac": b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00" + bytes(60),
    "audio/x-wav": _wav(),
    "application/x-sqlite3": _sqlite(),
}


@pytest.mark.parametrize("expected", BINARY_FILES)
def test_a_binary_file_with_such_a_signature_keeps_its_type(tmp_path: Path, expected: str) -> None:
    assert sniffed(tmp_path, BINARY_FILES[expected]) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", PDF),
        ("\ufeff%PDF-1.7\n%%EOF\n", PDF),
        ("{\\rtf1\\ansi The keeper's log.}", "application/rtf"),
        ("%!PS-Adobe-3.0\n/Times findfont 12 scalefont setfont\n", "application/postscript"),
    ],
    ids=["pdf", "pdf-after-a-bom", "rtf", "postscript"],
)
def test_formats_that_are_text_themselves_are_still_recognised(
    tmp_path: Path, content: str, expected: str
) -> None:
    assert sniffed(tmp_path, content) == expected


XHTML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "xhtml1-strict.dtd">\n'
    '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Log</title></head>'
    "<body><p>The keeper lit the lamp.</p></body></html>"
)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (XHTML, HTML),
        (
            '<?xml version="1.0"?>\n<?xml-stylesheet href="log.css"?>\n<!-- saved -->\n'
            "<html><body><p>The keeper lit the lamp.</p></body></html>",
            HTML,
        ),
        ('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
        (
            '<?xml version="1.0"?>\n<log><div><head>Dusk</head><p>Lamp lit.</p></div></log>',
            "application/xml",
        ),
    ],
    ids=["xhtml", "xhtml-with-a-stylesheet-and-a-comment", "svg", "other-xml"],
)
def test_an_xml_page_is_html_when_its_first_element_is(
    tmp_path: Path, content: str, expected: str
) -> None:
    assert sniffed(tmp_path, content) == expected


#: Files built so that a backtracking regex would take years over the first two, and
#: up to seconds over the others, each time one was uploaded: small uploads are
#: sniffed on the web process's event loop.
BUILT_TO_BACKTRACK = {
    "comments": b"<!--a-->" * 60 + b"x",
    "processing-instructions": b"<?a?>" * 60 + b"x",
    "a-list-item-and-blank-lines": b"- a\n" + b"\n" * 70_000 + b"x",
    "links-never-closed": b"[a](" * 16_000,
}


def test_no_file_keeps_the_sniffer_busy(tmp_path: Path) -> None:
    paths = []
    for name, data in BUILT_TO_BACKTRACK.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    # In a child process, which can be stopped: a regex stuck in C cannot be.
    script = (
        "import json, sys; from pathlib import Path; from docdigest.documents.sniff import sniff;"
        "print(json.dumps([sniff(Path(arg)) for arg in sys.argv[1:]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == [TEXT] * len(paths)


def test_an_archive_is_judged_without_inflating_its_parts(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(files.zip_bomb_epub_bytes())  # its "mimetype" inflates to 400 MB
    tracemalloc.start()
    try:
        kind = sniff(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kind == EPUB
    assert peak < 1024 * 1024


def test_a_damaged_archive_is_only_a_zip(tmp_path: Path) -> None:
    assert sniffed(tmp_path, files.damaged_zip_bytes()) == "application/zip"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: files.padded_docx_bytes(MAX_ZIP_ENTRIES), DOCX),
        (lambda: files.padded_docx_bytes(MAX_ZIP_ENTRIES + 1), "application/zip"),
        (files.zip64_docx_bytes, DOCX),
    ],
    ids=["at-the-cap", "past-the-cap", "zip64-end-records"],
)
def test_an_archive_is_opened_only_when_it_declares_no_more_parts_than_the_cap(
    tmp_path: Path, make: Callable[[], bytes], expected: str
) -> None:
    assert sniffed(tmp_path, make()) == expected


def test_a_damaged_archive_is_judged_never_an_error(tmp_path: Path) -> None:
    """Bytes changed at random in good archives, half near the directory at their end:
    each is judged (a zip at worst), never an error that answers the upload with a 500."""
    rng = random.Random(20261204)
    good = [files.docx_bytes(), files.epub_bytes(), files.xlsx_bytes(), files.zip64_docx_bytes()]
    judged = set()
    for _ in range(3000):
        data = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 8)):
            at = rng.choice([rng.randrange(len(data)), len(data) - rng.randrange(1, 120)])
            data[at] = rng.randrange(256)
        judged.add(sniffed(tmp_path, bytes(data)))
    assert {"application/zip", DOCX, EPUB} <= judged
