"""A generated corpus of mixed documents (PDF, DOCX, HTML, text) for the pipeline bench.

Deterministic for a seed; page counts are log-uniform between 1 and `max_pages`,
so most documents are short and a few are long, as in a real inbox.
"""

from __future__ import annotations

import math
import random
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

WORDS_PER_PAGE = 300
KINDS = ("pdf", "docx", "html", "txt")
_VOCABULARY = (
    "account",
    "budget",
    "customer",
    "delivery",
    "engineer",
    "factory",
    "growth",
    "hiring",
    "invoice",
    "journey",
    "kitchen",
    "ledger",
    "market",
    "network",
    "office",
    "payment",
    "quarter",
    "revenue",
    "schedule",
    "supplier",
    "team",
    "update",
    "vendor",
    "warehouse",
    "yield",
    "zone",
    "analysis",
    "board",
    "contract",
    "decision",
    "estimate",
    "forecast",
    "guidance",
    "incident",
    "insurance",
    "logistics",
    "meeting",
    "merger",
    "outage",
    "pricing",
    "product",
    "project",
    "proposal",
    "quality",
    "region",
    "release",
    "report",
    "risk",
    "safety",
    "server",
    "storage",
    "strategy",
    "summary",
    "support",
    "training",
    "travel",
    "weather",
    "the",
    "a",
    "of",
    "in",
    "to",
    "for",
    "with",
    "on",
    "by",
    "and",
    "was",
    "were",
    "is",
    "are",
    "will",
    "has",
    "had",
    "our",
    "their",
    "new",
    "late",
    "early",
    "higher",
    "lower",
    "steady",
)


def paragraphs(rng: random.Random, pages: int) -> list[list[str]]:
    """Pages of paragraphs of sentences; about WORDS_PER_PAGE words a page."""
    result = []
    for _ in range(pages):
        page, words = [], 0
        while words < WORDS_PER_PAGE:
            sentences = []
            for _ in range(rng.randint(3, 6)):
                length = rng.randint(8, 20)
                sentence = " ".join(rng.choice(_VOCABULARY) for _ in range(length))
                sentences.append(sentence[0].upper() + sentence[1:] + ".")
                words += length
            page.append(" ".join(sentences))
        result.append(page)
    return result


def write_document(path: Path, kind: str, pages: int, seed: int) -> Path:
    content = paragraphs(random.Random(seed), pages)
    if kind == "txt":
        path.write_text("\n\n".join("\n\n".join(page) for page in content) + "\n")
    elif kind == "html":
        body = "\n".join(
            f"<section><h2>Page {n + 1}</h2>" + "".join(f"<p>{p}</p>" for p in page) + "</section>"
            for n, page in enumerate(content)
        )
        path.write_text(
            f"<!doctype html><html><head><title>{path.stem}</title></head>"
            f"<body><h1>{path.stem}</h1>{body}</body></html>"
        )
    elif kind == "docx":
        from docx import Document
        from docx.enum.text import WD_BREAK

        document = Document()
        document.add_heading(path.stem, level=1)
        for page in content:
            for text in page:
                document.add_paragraph(text)
            document.paragraphs[-1].add_run().add_break(WD_BREAK.PAGE)
        document.save(str(path))
    else:
        from fpdf import FPDF

        pdf = FPDF()
        pdf.set_font("Helvetica", size=10)
        for page in content:
            pdf.add_page()
            for text in page:
                pdf.multi_cell(0, 5, text)
                pdf.ln(2)
        pdf.output(str(path))
    return path


def generate(directory: Path, count: int, max_pages: int, seed: int = 7) -> list[Path]:
    """`count` documents in `directory`, the four kinds in turn.

    Files already there from an earlier run with the same parameters are reused:
    generating hundreds of long PDFs and DOCX files takes minutes.
    """
    rng = random.Random(seed)
    jobs = []
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        pages = max(1, round(math.exp(rng.uniform(0, math.log(max_pages)))))
        jobs.append((directory / f"doc-{n:03d}-{pages}p.{kind}", kind, pages, seed * 100_003 + n))
    missing = [job for job in jobs if not job[0].exists()]
    if missing:
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_write_atomically, *zip(*missing, strict=True)))
    return [job[0] for job in jobs]


def cached(count: int, max_pages: int, seed: int = 7) -> list[Path]:
    """The corpus in a directory of the system's temporary area, kept between runs."""
    directory = Path(tempfile.gettempdir()) / f"docdigest-bench-corpus-{count}-{max_pages}-{seed}"
    directory.mkdir(exist_ok=True)
    return generate(directory, count, max_pages, seed)


def _write_atomically(path: Path, kind: str, pages: int, seed: int) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    write_document(partial, kind, pages, seed)
    partial.replace(path)
    return path
