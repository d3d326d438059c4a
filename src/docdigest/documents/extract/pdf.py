"""PDF text with pypdfium2, page by page, spread over the machine's cores.

Runs inside the sandboxed child. Text-page analysis dominates the cost (the
profile: ~1 ms per page, ~2x pdftotext per core), so long PDFs are split into
page ranges, each read by a forked sub-child that inherits the sandbox limits.
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

import pypdfium2 as pdfium

from docdigest.documents.extract.normalize import normalize_text
from docdigest.documents.extract.result import Extracted, Unreadable

# pdfium's FPDF_GetLastError code for a wrong or missing password.
_ERR_PASSWORD = 4
PAGES_PER_PROCESS = 24
MAX_PROCESSES = 4
_EXIT_NO_MEMORY = 3


def extract_pdf(path: Path, max_chars: int) -> Extracted:
    document = _open(path)
    pages = len(document)
    document.close()
    workers = max(1, min(MAX_PROCESSES, os.cpu_count() or 1, pages // PAGES_PER_PROCESS))
    bounds = [pages * i // workers for i in range(workers + 1)]
    ranges = list(itertools.pairwise(bounds))
    helpers = [_fork_reader(path, start, end, max_chars) for start, end in ranges[1:]]
    parts = [_read_pages(path, *ranges[0], max_chars)]
    parts.extend(_collect(pid, fd) for pid, fd in helpers)
    text = "\n\n".join(part for part in parts if part)
    note = None
    if len(text) > max_chars:
        text = text[:max_chars]
        note = f"text cut at {max_chars:,} characters"
    if not text:
        note = "no text found: the PDF may be scanned images (no OCR yet)"
    return Extracted(text, note, pages)


def _open(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == _ERR_PASSWORD:
            raise Unreadable("PDF is password-protected") from exc
        raise Unreadable("file is corrupt") from exc


def _read_pages(path: Path, start: int, end: int, max_chars: int) -> str:
    document = _open(path)
    parts: list[str] = []
    total = 0
    try:
        for index in range(start, end):
            page = document[index]
            textpage = page.get_textpage()
            parts.append(textpage.get_text_range())
            textpage.close()
            page.close()
            total += len(parts[-1])
            if total > max_chars:
                break
    finally:
        document.close()
    return normalize_text("\n\n".join(parts))


def _fork_reader(path: Path, start: int, end: int, max_chars: int) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 0
        try:
            data = _read_pages(path, start, end, max_chars).encode()
            with os.fdopen(write_fd, "wb") as out:
                out.write(data)
        except MemoryError:
            code = _EXIT_NO_MEMORY
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _collect(pid: int, read_fd: int) -> str:
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        # A helper ran out of CPU time: die the same way, so the report says so.
        os.kill(os.getpid(), signal.SIGKILL)
    if code == _EXIT_NO_MEMORY:
        raise MemoryError
    if code != 0:
        raise Unreadable("file is corrupt")
    return data.decode()
