"""A DOCX file made lighter for its converter: the styles part cut to what is read of it.

markitdown hands DOCX files to mammoth, which parses each part it reads into an
`xml.dom.minidom` tree. Word and python-docx put a styles part of 30-350 KB in every
file (fonts, spacing and colours for some 160 styles), and of it mammoth reads only
each style's type, id and name, and a numbering style's list. Parsing the whole part
was ~190 ms of a two-page DOCX's ~200 ms of conversion; the part cut down here
(lxml, a few ms) takes mammoth ~5 ms (docs/performance.md, "a fourteenth machine").

Nothing else in the file changes, and a file that cannot be cut down safely (a
styles part that does not parse, an unusual layout, a very large file) goes to the
converter as it came.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import BinaryIO

from lxml import etree

STYLES_PART = "word/styles.xml"
#: Rewriting a file keeps its unpacked parts in memory once more; past this, the
#: fixed saving is not worth it, and the file goes through as it is.
MAX_REWRITE_BYTES = 64 * 1024 * 1024
_WORDPROCESSING = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",  # transitional
    "http://purl.oclc.org/ooxml/wordprocessingml/main",  # strict
)


def lighter_docx(path: Path) -> BinaryIO:
    """The DOCX at `path`, with its styles part cut down when that is safe; an open
    binary stream either way (the caller closes it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = {member.filename for member in members}
            unpacked = sum(member.file_size for member in members)
            if STYLES_PART not in names or unpacked > MAX_REWRITE_BYTES:
                return path.open("rb")
            styles = slim_styles(archive.read(STYLES_PART))
            if styles is None:
                return path.open("rb")
            out = io.BytesIO()
            # Stored, not compressed again: the copy lives only in memory.
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as rewritten:
                for member in members:
                    if member.filename == STYLES_PART:
                        rewritten.writestr(STYLES_PART, styles)
                        continue
                    with (
                        archive.open(member) as source,
                        rewritten.open(member.filename, "w") as target,
                    ):
                        shutil.copyfileobj(source, target, 1024 * 1024)
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError, NotImplementedError):
        return path.open("rb")  # the converter reports what is wrong with it
    out.seek(0)
    return out


def slim_styles(xml: bytes) -> bytes | None:
    """The styles part with, for each style, its attributes (type, id, ...), its name
    and a numbering style's `w:pPr/w:numPr`; None when it is not a plain styles part
    (it does not parse, has another root, or wraps styles in alternate content)."""
    if b"AlternateContent" in xml:
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError:
        return None
    namespace, _, local = str(root.tag).lstrip("{").partition("}")
    if namespace not in _WORDPROCESSING or local != "styles":
        return None
    w = f"{{{namespace}}}"
    slim = etree.Element(root.tag, nsmap={"w": namespace})
    for style in root.iterchildren(f"{w}style"):
        kept = etree.SubElement(slim, style.tag, dict(style.attrib))
        name = style.find(f"{w}name")
        if name is not None:
            kept.append(name)
        numbering = style.find(f"{w}pPr/{w}numPr")
        if numbering is not None:
            etree.SubElement(kept, f"{w}pPr").append(numbering)
    return etree.tostring(slim, xml_declaration=True, encoding="UTF-8", standalone=True)
