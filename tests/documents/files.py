"""Real documents, good and hostile, generated on the spot."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import docx
import openpyxl
import pptx
from fpdf import FPDF

SENTENCES = [
    "Lighthouses guided ships along dangerous coasts for centuries.",
    "Each tower carried a lamp whose beam could be seen for many miles at sea.",
    "Keepers lived in small cottages beside the towers and trimmed the wicks every night.",
    "The invention of the Fresnel lens made the beams far brighter than before.",
    "Automation in the twentieth century ended the era of resident keepers.",
    "Today many lighthouses are museums that tell the story of maritime safety.",
    "Volunteers restore the old lenses and open the towers to visitors in summer.",
    "Modern ships rely on satellite navigation, yet the lights still shine for small boats.",
]
TEXT = " ".join(SENTENCES)


def pdf_bytes(pages: int = 3, *, text: str = TEXT, password: str | None = None) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for page in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Part {page + 1}. {text}")
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    return bytes(pdf.output())


def scanned_pdf_bytes() -> bytes:
    """Pages with drawings and no text layer, as a scanner would produce."""
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.set_fill_color(40, 40, 40)
        for row in range(20):
            pdf.rect(20, 20 + row * 10, 150, 4, style="F")
    return bytes(pdf.output())


def broken_xref_pdf_bytes() -> bytes:
    """A valid PDF whose cross-reference offsets all point to the wrong place."""
    data = pdf_bytes(2)
    head, _, tail = data.rpartition(b"xref")
    lines = tail.split(b"\n")
    broken = [b"0000000999 00000 n " if line.endswith((b" n ", b" n")) else line for line in lines]
    return head + b"xref" + b"\n".join(broken)


def truncated_pdf_bytes() -> bytes:
    return b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + b"\x00garbage" * 50


def docx_bytes(text: str = TEXT) -> bytes:
    document = docx.Document()
    document.add_heading("Notes on lighthouses", level=1)
    for sentence in text.split(". "):
        document.add_paragraph(sentence)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes() -> bytes:
    deck = pptx.Presentation()
    for start in range(0, len(SENTENCES), 2):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Lighthouses {start // 2 + 1}"
        slide.placeholders[1].text = " ".join(SENTENCES[start : start + 2])
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_bytes() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["year", "event"])
    for year, sentence in enumerate(SENTENCES, start=1820):
        sheet.append([year, sentence])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def epub_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        book.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
            'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<dc:title>Lighthouses</dc:title><dc:identifier id="id">x</dc:identifier></metadata>'
            '<manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>'
            '</manifest><spine><itemref idref="c1"/></spine></package>',
        )
        paragraphs = "".join(f"<p>{s}</p>" for s in SENTENCES)
        book.writestr(
            "OEBPS/c1.xhtml",
            '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
            f"<title>One</title></head><body><h1>Lighthouses</h1>{paragraphs}</body></html>",
        )
    return out.getvalue()


def html_bytes() -> bytes:
    paragraphs = "".join(f"<p>{s}</p>" for s in SENTENCES)
    return (
        "<!DOCTYPE html><html><head><title>Lighthouses</title>"
        "<script>alert('never run')</script></head>"
        f"<body><h1>Lighthouses</h1>{paragraphs}</body></html>"
    ).encode()


def markdown_bytes() -> bytes:
    items = "\n".join(f"- {s}" for s in SENTENCES[4:])
    return f"# Lighthouses\n\n{' '.join(SENTENCES[:4])}\n\n## Today\n\n{items}\n".encode()


def csv_bytes() -> bytes:
    rows = "\n".join(f'{1820 + i},"{s}"' for i, s in enumerate(SENTENCES))
    return f"year,event\n{rows}\n".encode()


def text_bytes() -> bytes:
    return ("Über Leuchttürme. " + TEXT + "\n").encode()


def zip_bomb_docx_bytes() -> bytes:
    """A DOCX whose document part inflates to about 120 MB (from ~120 KB)."""
    good = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb:
        for item in good.infolist():
            if item.filename != "word/document.xml":
                bomb.writestr(item, good.read(item.filename))
        with bomb.open("word/document.xml", "w", force_zip64=True) as part:
            block = b" " * (1024 * 1024)
            for _ in range(120):
                part.write(block)
    return out.getvalue()


def zip_bomb_epub_bytes() -> bytes:
    """An EPUB whose "mimetype" part, the one an EPUB is recognised by, says so and
    then inflates to 400 MB of blanks (from ~2 MB)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb,
        bomb.open("mimetype", "w", force_zip64=True) as part,
    ):
        part.write(b"application/epub+zip")
        block = b" " * (1024 * 1024)
        for _ in range(400):
            part.write(block)
    return out.getvalue()


def padded_docx_bytes(entries: int) -> bytes:
    """A DOCX with empty parts added until it holds `entries` of them."""
    good = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as padded:
        for item in good.infolist():
            padded.writestr(item, good.read(item.filename))
        for n in range(entries - len(good.infolist())):
            padded.writestr(f"customXml/pad{n}.xml", b"")
    return out.getvalue()


def zip64_docx_bytes() -> bytes:
    """A DOCX whose directory is found through ZIP64's end records, as some writers
    make them for any archive (Python's zipfile only for very large ones)."""
    data = docx_bytes()
    end = data.rindex(b"PK\x05\x06")
    disk, cd_disk, disk_entries, entries, cd_size, cd_offset, _ = struct.unpack(
        "<HHHHIIH", data[end + 4 : end + 22]
    )
    record = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, disk, cd_disk, disk_entries, entries,
        cd_size, cd_offset,
    )  # fmt: skip
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1)
    last = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:end] + record + locator + last


def damaged_zip_bytes() -> bytes:
    """A zip whose "mimetype" part's compressed data is damaged."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip" * 50)
        archive.writestr("content.opf", "<package/>")
    data = bytearray(out.getvalue())
    start = data.index(b"mimetype") + len(b"mimetype")
    data[start : start + 10] = bytes(byte ^ 0xFF for byte in data[start : start + 10])
    return bytes(data)


def corrupt_docx_bytes() -> bytes:
    """A well-formed zip with the parts of a DOCX, whose document part is not XML."""
    good = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as broken:
        for item in good.infolist():
            data = good.read(item.filename)
            broken.writestr(
                item, b"<w:document><<<" if item.filename == "word/document.xml" else data
            )
    return out.getvalue()


def png_bytes() -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
        b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
        b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def heavy_html_bytes(paragraphs: int = 60_000) -> bytes:
    """Valid HTML that takes a converter seconds and hundreds of MB to parse.

    Here about 3 s of CPU and 200 MB above the converters' own: far enough past
    the limits the tests set that a faster machine still reaches them.
    """
    body = "".join(f"<div><p>Paragraph {i} about lighthouses.</p></div>" for i in range(paragraphs))
    return f"<!DOCTYPE html><html><body>{body}</body></html>".encode()


GOOD_FILES: dict[str, tuple[str, bytes]] = {}


def good_files() -> dict[str, tuple[str, bytes]]:
    """name -> (sniffed type, bytes) for one file of every supported type."""
    if not GOOD_FILES:
        GOOD_FILES.update(
            {
                "lighthouses.pdf": ("application/pdf", pdf_bytes()),
                "lighthouses.docx": (
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    docx_bytes(),
                ),
                "lighthouses.pptx": (
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                    pptx_bytes(),
                ),
                "lighthouses.xlsx": (
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    xlsx_bytes(),
                ),
                "lighthouses.epub": ("application/epub+zip", epub_bytes()),
                "lighthouses.html": ("text/html", html_bytes()),
                "lighthouses.md": ("text/markdown", markdown_bytes()),
                "lighthouses.csv": ("text/csv", csv_bytes()),
                "lighthouses.txt": ("text/plain", text_bytes()),
            }
        )
    return GOOD_FILES


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
