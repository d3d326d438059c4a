"""DOCX files reach the converter with their styles part cut down, and convert the same."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import BinaryIO

import docx
import pytest
from mammoth.docx.office_xml import read as read_office_xml
from mammoth.docx.styles_xml import read_styles_xml_element
from markitdown import StreamInfo

from docdigest.documents import sniff
from docdigest.documents.extract import docx as lighter
from docdigest.documents.extract.formats import CONVERTERS, extract
from tests.documents import files

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="{W}">
  <w:docDefaults><w:rPrDefault><w:rPr><w:sz w:val="22"/></w:rPr></w:rPrDefault></w:docDefaults>
  <w:latentStyles w:count="1"><w:lsdException w:name="Normal" w:qFormat="1"/></w:latentStyles>
  <w:style w:type="paragraph" w:default="1" w:styleId="Normal">
    <w:name w:val="Normal"/><w:qFormat/><w:rPr><w:lang w:val="en-US"/></w:rPr>
  </w:style>
  <w:style w:type="paragraph" w:styleId="Heading1">
    <w:name w:val="heading 1"/><w:basedOn w:val="Normal"/>
    <w:pPr><w:keepNext/><w:spacing w:before="480"/></w:pPr><w:rPr><w:b/><w:sz w:val="28"/></w:rPr>
  </w:style>
  <w:style w:type="character" w:customStyle="1" w:styleId="Strong">
    <w:name w:val="Strong"/><w:rPr><w:b/></w:rPr>
  </w:style>
  <w:style w:type="numbering" w:styleId="Outline">
    <w:name w:val="Outline List"/><w:pPr><w:numPr><w:numId w:val="7"/></w:numPr></w:pPr>
  </w:style>
  <w:style w:type="table" w:styleId="Grid"><w:name w:val="Table Grid"/><w:tblPr/></w:style>
</w:styles>""".encode()


def rich_docx() -> bytes:
    """Headings, lists, a table, bold and italic runs: what the styles part names."""
    document = docx.Document()
    document.add_heading("Lighthouses of the north", level=1)
    document.add_heading("Keepers", level=2)
    paragraph = document.add_paragraph("Keepers trimmed the wicks ")
    paragraph.add_run("every night").bold = True
    paragraph.add_run(" and logged the ")
    paragraph.add_run("weather").italic = True
    for item in ("lamp", "lens", "fog bell"):
        document.add_paragraph(item, style="List Bullet")
    for step in ("climb", "light", "watch"):
        document.add_paragraph(step, style="List Number")
    document.add_paragraph("A quotation from the log.", style="Quote")
    table = document.add_table(rows=2, cols=2)
    for row, cells in enumerate((("Tower", "Built"), ("Bell Rock", "1810"))):
        for column, text in enumerate(cells):
            table.cell(row, column).text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def with_styles(data: bytes, styles: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as rewritten:
        for member in source.infolist():
            part = styles if member.filename == lighter.STYLES_PART else source.read(member)
            rewritten.writestr(member, part)
    return out.getvalue()


def converted(stream: BinaryIO) -> str:
    info = StreamInfo(extension=".docx", mimetype=sniff.DOCX)
    with stream:
        return CONVERTERS[sniff.DOCX].convert(stream, info).markdown


def test_the_styles_part_keeps_what_the_converter_reads_of_it() -> None:
    slim = lighter.slim_styles(STYLES)

    assert slim is not None
    assert b"latentStyles" not in slim and b"docDefaults" not in slim
    assert b"w:sz" not in slim and b"keepNext" not in slim and b"basedOn" not in slim
    before = read_styles_xml_element(read_office_xml(io.BytesIO(STYLES)))
    after = read_styles_xml_element(read_office_xml(io.BytesIO(slim)))
    assert vars(after) == vars(before)  # every style by kind, id and name, and lists
    assert after.find_numbering_style_by_id("Outline").num_id == "7"
    assert after.find_paragraph_style_by_id("Heading1").name == "heading 1"


def test_a_document_converts_to_the_same_text_through_the_lighter_file(tmp_path: Path) -> None:
    path = files.write(tmp_path / "rich.docx", rich_docx())

    original = converted(path.open("rb"))
    lighter_text = converted(lighter.lighter_docx(path))

    assert lighter_text == original
    assert "# Lighthouses of the north" in original
    assert "**every night**" in original and "*weather*" in original
    assert "lamp" in original and "fog bell" in original
    assert "| Tower | Built |" in original
    with zipfile.ZipFile(lighter.lighter_docx(path)) as rewritten:
        styles = rewritten.read(lighter.STYLES_PART)
    assert len(styles) < len(zipfile.ZipFile(path).read(lighter.STYLES_PART)) / 5


def test_extraction_of_a_docx_reads_its_text(tmp_path: Path) -> None:
    path = files.write(tmp_path / "rich.docx", rich_docx())

    extracted = extract(path, sniff.DOCX, max_chars=100_000)

    assert "Keepers trimmed the wicks **every night**" in extracted.text
    assert "Bell Rock" in extracted.text


@pytest.mark.parametrize(
    ("case", "styles"),
    [
        ("not XML", b"<w:styles><<<"),
        ("another root", f'<w:numbering xmlns:w="{W}"/>'.encode()),
        (
            "alternate content",
            STYLES.replace(b"<w:docDefaults>", b"<mc:AlternateContent/><w:docDefaults>"),
        ),
        ("an entity", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'),
    ],
)
def test_a_styles_part_that_cannot_be_cut_down_goes_through_as_it_came(
    tmp_path: Path, case: str, styles: bytes
) -> None:
    data = with_styles(files.docx_bytes(), styles)
    path = files.write(tmp_path / "odd.docx", data)

    assert lighter.slim_styles(styles) is None, case
    with lighter.lighter_docx(path) as handle:
        assert handle.read() == data


def test_a_file_too_large_to_copy_or_not_a_zip_goes_through_as_it_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = files.write(tmp_path / "good.docx", files.docx_bytes())
    broken = files.write(tmp_path / "broken.docx", b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(lighter, "MAX_REWRITE_BYTES", 1024)

    for path in (good, broken):
        with lighter.lighter_docx(path) as handle:
            assert handle.read() == path.read_bytes()
