"""Receiving multipart uploads as a stream: each file goes to a temporary file while it
is hashed and counted, so memory stays flat and the size cap holds mid-stream.

Starlette's `request.form()` would spool the whole body first (and parse it
again for `UploadFile`); here python-multipart's push parser is fed
`request.stream()` chunk by chunk (`documents/multipart.py`), and each file part's
bytes go to its `FileSink` (`documents/received.py`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartState, parse_options_header

from docdigest.core.blanks import BlankFiles
from docdigest.core.disk import on_local_disk
from docdigest.core.errors import AppError, BadRequest, PayloadTooLarge, Unprocessable
from docdigest.core.ids import new_id
from docdigest.documents.multipart import MultipartBodyParser
from docdigest.documents.received import FileSink, Inspect, ReceivedFile

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

SINGLE_FIELD = "file"
MULTI_FIELD = "files"
MAX_FILES = 20
MAX_FIELD_BYTES = 4096
#: Parts of any kind in one request: the files, the form's few fields, and room to spare.
#: (Each part's headers are bounded by the parser: 8 of at most 4,224 bytes each.)
MAX_PARTS = MAX_FILES + 16
FLUSH_BYTES = 1024 * 1024
MAX_NAME_CHARS = 255
# Bidirectional overrides and isolates can make "gpj.exe" display as "exe.jpg".
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_EXTENDED_NAME = re.compile(r"filename\*\s*=\s*([\w-]*)'[^']*'([^;\s]+)", re.I)


def display_name(raw: str | None) -> str:
    """The client's filename made safe to show: last path part, no control characters.

    It is only ever displayed or sent back in Content-Disposition; storage uses
    generated keys, so no name can reach the file system.
    """
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", _BIDI.sub("", name))
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cs", "Co", "Cn"})
    name = name.strip().lstrip(".").strip()
    if not name:
        return "document"
    if len(name) > MAX_NAME_CHARS:
        _, dot, suffix = name.rpartition(".")
        keep = suffix if dot and len(suffix) <= 16 else ""
        name = name[: MAX_NAME_CHARS - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return name


@dataclass
class ReceivedForm:
    files: list[ReceivedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        for received in self.files:
            received.path.unlink(missing_ok=True)


async def receive_files(
    request: Request,
    tmp_dir: Path,
    max_file_bytes: int,
    inspect: Inspect | None = None,
    blanks: BlankFiles | None = None,
) -> ReceivedForm:
    """Stream a multipart body into temporary files under `tmp_dir`.

    `inspect` (a type sniffer, say) runs on each complete file right after its last
    bytes are written, wherever they were (a small file's on the event loop when the
    disk is local, others in a thread); its answer is the file's `content_type`.
    Files are taken from `blanks` (made ahead in `tmp_dir`) while it has some.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Unprocessable("send the file as multipart/form-data in a field named 'file'")
    length = request.headers.get("content-length")
    max_request = max_body_bytes(max_file_bytes)
    if length and length.isdigit() and int(length) > max_request:
        raise PayloadTooLarge(_too_large(max_file_bytes), limit_bytes=max_file_bytes)
    receiver = _Receiver(tmp_dir, max_file_bytes, inspect, blanks)
    parser = MultipartBodyParser(boundary, cast("MultipartCallbacks", receiver.callbacks()))
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_request:
                raise PayloadTooLarge(_too_large(max_file_bytes), limit_bytes=max_file_bytes)
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                message = f"the body is not well-formed multipart/form-data: {exc}"
                raise BadRequest(message) from None
            if receiver.abort is not None:
                raise receiver.abort
            await receiver.flush()
        # A body cut off before its closing boundary may end inside a file, or between
        # two files of several: nothing of it is taken. An empty body has no file (422).
        if received and parser.state != MultipartState.END:
            raise BadRequest("the body ended before its closing boundary; nothing was stored")
        parser.finalize()
        await receiver.flush()
    except BaseException:
        await receiver.close_all()
        receiver.form.discard()
        raise
    return receiver.form


def max_body_bytes(max_file_bytes: int) -> int:
    """The largest upload body: every file at the cap, and a megabyte for the rest."""
    return max_file_bytes * MAX_FILES + 1024 * 1024


def _too_large(limit: int) -> str:
    return f"file is larger than the upload limit of {limit // (1024 * 1024)} MB"


class _Receiver:
    """python-multipart callbacks that route each part to a temp file or a small field."""

    def __init__(
        self,
        tmp_dir: Path,
        max_file_bytes: int,
        inspect: Inspect | None,
        blanks: BlankFiles | None,
    ) -> None:
        self.tmp_dir = tmp_dir
        self.inline = on_local_disk(tmp_dir)
        self.blanks = blanks
        self.max_file_bytes = max_file_bytes
        self.inspect = inspect
        self.form = ReceivedForm()
        self.abort: AppError | None = None
        self._parts = 0
        self._headers: dict[str, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._file: ReceivedFile | None = None
        self._sink: FileSink | None = None
        self._sinks: list[FileSink] = []
        self._ready: list[FileSink] = []
        self._field_name: str | None = None
        self._field_value = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            self._refuse(Unprocessable(f"at most {MAX_PARTS} parts per request"))
        self._headers = {}
        self._file = None
        self._sink = None
        self._field_name = None
        self._field_value.clear()

    def _refuse(self, error: AppError) -> None:
        """Stop the request at the end of the chunk being parsed (the first error wins)."""
        if self.abort is None:
            self.abort = error

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        name = self._header_field.decode("latin-1").lower()
        self._headers[name] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        raw_disposition = self._headers.get("content-disposition", b"")
        # Browsers send UTF-8 names as raw bytes; the parser works in Latin-1, which
        # round-trips every byte, and the name is decoded as UTF-8 afterwards.
        _, options = parse_options_header(raw_disposition)
        disposition = raw_disposition.decode("latin-1")
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if b"filename" not in options and "filename*" not in disposition.lower():
            self._field_name = name
            return
        if name not in (SINGLE_FIELD, MULTI_FIELD):
            return  # a file in a field we do not know: skip its bytes
        if len(self.form.files) >= MAX_FILES:
            self._refuse(Unprocessable(f"at most {MAX_FILES} files per request"))
            return
        extended = _EXTENDED_NAME.search(disposition)
        if extended:
            raw_name = unquote(extended.group(2), encoding=extended.group(1) or "utf-8")
        else:
            raw_name = options.get(b"filename", b"").decode("utf-8", errors="replace")
        path = self.tmp_dir / f"upload-{new_id()}.part"
        self._file = ReceivedFile(field=name, filename=display_name(raw_name), path=path)
        self.form.files.append(self._file)
        blank = self.blanks.take() if self.blanks is not None else None
        self._sink = FileSink(self._file, self.inspect, self.inline, blank)
        self._sinks.append(self._sink)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        received, sink = self._file, self._sink
        if received is None or sink is None:
            if self._field_name is not None and len(self._field_value) < MAX_FIELD_BYTES:
                self._field_value += data[start:end]
            return
        if received.error is not None:
            return
        piece = memoryview(data)[start:end]
        received.size += len(piece)
        if received.size > self.max_file_bytes:
            received.error = PayloadTooLarge(
                _too_large(self.max_file_bytes), limit_bytes=self.max_file_bytes
            )
            sink.buffer.clear()
            self._ready.append(sink)  # its flush removes the partial file
            if received.field == SINGLE_FIELD:
                self._refuse(received.error)
            return
        sink.buffer += piece
        if len(sink.buffer) >= FLUSH_BYTES and sink not in self._ready:
            self._ready.append(sink)

    def _part_end(self) -> None:
        if self._sink is not None:
            self._sink.ended = True
            if self._sink not in self._ready:
                self._ready.append(self._sink)
        elif self._field_name:
            self.form.fields[self._field_name] = self._field_value.decode("utf-8", errors="replace")
        self._file = None
        self._sink = None
        self._field_name = None

    async def flush(self) -> None:
        """Hand full buffers (and finished files) to their writers."""
        ready, self._ready = self._ready, []
        for sink in ready:
            await sink.flush()

    async def close_all(self) -> None:
        for sink in self._sinks:
            await sink.close()
