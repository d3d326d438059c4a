"""PDF text extraction through the sandbox vs `pdftotext` (poppler) on the same PDF.

One generated 200-page PDF; both extract it the same number of times (3 in quick
mode, 9 in --full), interleaved so that machine load hits both alike; the
headline is pages/s through the sandbox over pages/s with pdftotext (medians).
The sandbox is warm (its fork server started), as it is in a running worker.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from fpdf import FPDF

from bench.common import arguments, report
from docdigest.documents.extract import Limits, extract_file
from docdigest.documents.extract.sandbox import stop_server, warm_up

TARGET = 0.5
PARAGRAPH = (
    "Page {page}. The harbour master kept a ledger of every ship that entered the bay, "
    "with its tonnage, its cargo and the name of its captain. In stormy years the ledger "
    "grew thin, and the keepers of the lighthouse wrote longer entries about the weather. "
)


def make_pdf(path: Path, pages: int) -> None:
    """Full pages of text; lines are placed one by one (multi_cell takes ~50 ms a page)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for page in range(pages):
        pdf.add_page()
        lines = textwrap.wrap(PARAGRAPH.format(page=page + 1) * 14, 95)
        for row, line in enumerate(lines[:52]):
            pdf.text(12, 14 + row * 5.2, line)
    pdf.output(str(path))


def time_pdftotext(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True)
    return time.perf_counter() - started, len(result.stdout.decode())


def time_sandbox(path: Path, limits: Limits) -> tuple[float, int]:
    started = time.perf_counter()
    extracted = asyncio.run(extract_file(path, "application/pdf", limits))
    return time.perf_counter() - started, len(extracted.text)


def main() -> None:
    args = arguments(__doc__ or "")
    pages, runs = (200, 9) if args.full else (200, 3)
    has_pdftotext = shutil.which("pdftotext") is not None
    if not has_pdftotext:
        print("pdftotext (poppler-utils) is not installed: no baseline", file=sys.stderr)
    limits = Limits(cpu_s=60, wall_s=60, memory_mb=1024, max_chars=2_000_000)
    sandbox_s: list[float] = []
    poppler_s: list[float] = []
    sandbox_chars = poppler_chars = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pdf"
        make_pdf(path, pages)
        pdf_bytes = path.stat().st_size
        warm_up()
        try:
            time_sandbox(path, limits)
            for _ in range(runs):
                seconds, sandbox_chars = time_sandbox(path, limits)
                sandbox_s.append(seconds)
                if has_pdftotext:
                    seconds, poppler_chars = time_pdftotext(path)
                    poppler_s.append(seconds)
        finally:
            stop_server()
    sandbox = pages / statistics.median(sandbox_s)
    poppler = pages / statistics.median(poppler_s) if poppler_s else None
    report(
        name="extract",
        params={"pages": pages, "runs": runs, "mode": "full" if args.full else "quick"},
        figure=round(sandbox, 1),
        unit="pages/s",
        baseline=round(poppler, 1) if poppler else None,
        target=f">= {TARGET}x pdftotext",
        meets=poppler is not None and sandbox / poppler >= TARGET,
        sandbox_median_s=round(statistics.median(sandbox_s), 4),
        pdftotext_median_s=round(statistics.median(poppler_s), 4) if poppler_s else None,
        sandbox_chars=sandbox_chars,
        pdftotext_chars=poppler_chars if poppler_s else None,
        pdf_bytes=pdf_bytes,
        **({} if poppler_s else {"baseline_missing": "pdftotext (poppler-utils) is not installed"}),
    )


if __name__ == "__main__":
    main()
