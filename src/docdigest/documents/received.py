"""One file part of an upload as it is received: where it goes, and the writer that
hashes it and writes it to its temporary file while the rest of the body arrives.

`documents/upload.py` parses the body and routes each file part's bytes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from docdigest.core.blanks import BlankFiles
from docdigest.core.disk import making_parent, start_writeback
from docdigest.core.errors import AppError

#: A whole file up to this size is written, hashed and sniffed on the event loop when the
#: temporary directory is on a local disk (under a millisecond for 256 KB): under load a
#: hand-off to a thread costs more than that, in threads waking each other for the GIL
#: (docs/performance.md, "a seventh machine").
INLINE_BYTES = 256 * 1024

Inspect = Callable[[Path], str]


@dataclass
class ReceivedFile:
    """One file part, written to `path` (removed by whoever consumes it)."""

    field: str
    filename: str
    path: Path
    size: int = 0
    sha256: str = ""
    content_type: str | None = None  # what `inspect` found, when one was given
    error: AppError | None = None


class FileSink:
    """One file being received: bytes gather in a buffer, and each full buffer is hashed
    and written in a thread while the event loop goes on receiving and parsing the next.

    At most one write is in flight, so a file holds two buffers of memory at most. The
    file is created by the first write (or was made ahead: `blank`, an unnamed file
    named by the last write), and the last write also closes it and runs `inspect` on
    it. A file of at most INLINE_BYTES is all one write, done on the loop when `inline`
    says the disk allows it.
    """

    def __init__(
        self,
        received: ReceivedFile,
        inspect: Inspect | None,
        inline: bool,
        blank: int | None = None,
    ) -> None:
        self.received = received
        self.inspect = inspect
        self.inline = inline
        self.blank = blank
        self.unnamed = False
        self.handle: BinaryIO | None = None
        self.hash = hashlib.sha256()
        self.buffer = bytearray()
        self.writing: asyncio.Future[None] | None = None
        self.ended = False
        self.written = 0

    def _write(self, data: bytearray, last: bool) -> None:
        if self.handle is None:
            self.handle = self._open()
        self.hash.update(data)
        self.handle.write(data)
        self.handle.flush()
        # Each piece starts for the disk as it is written: a large file's writes are
        # spread over its upload instead of piling up for one burst (core/disk.py).
        start_writeback(self.handle.fileno(), self.written, len(data))
        self.written += len(data)
        if last:
            if self.unnamed:
                path, fd = self.received.path, self.handle.fileno()
                making_parent(path, lambda: BlankFiles.name(fd, path))
            self.handle.close()
            self.received.sha256 = self.hash.hexdigest()
            if self.inspect is not None:
                self.received.content_type = self.inspect(self.received.path)

    def _open(self) -> BinaryIO:
        path = self.received.path
        if self.blank is None:
            return making_parent(path, lambda: path.open("wb"))
        handle = os.fdopen(self.blank, "wb")
        self.blank, self.unnamed = None, True
        return handle

    async def flush(self) -> None:
        if self.writing is not None:
            await self.writing
            self.writing = None
        if self.received.error is not None:
            self.close_handle()
            self.received.path.unlink(missing_ok=True)
            return
        if self.buffer or self.ended:
            data, self.buffer = self.buffer, bytearray()
            if self.inline and self.ended and self.handle is None and len(data) <= INLINE_BYTES:
                self._write(data, last=True)
                return
            writing = asyncio.get_running_loop().run_in_executor(
                None, self._write, data, self.ended
            )
            if self.ended:
                await writing
            else:
                self.writing = writing

    def close_handle(self) -> None:
        if self.handle is not None:
            self.handle.close()
        elif self.blank is not None:
            os.close(self.blank)
            self.blank = None

    async def close(self) -> None:
        if self.writing is not None:
            with contextlib.suppress(Exception):
                await self.writing
        self.close_handle()
