"""The pipeline bench's baseline: the same work as a document's jobs, with no web,
queue or database. One plain loop runs in the bench's process; `loop_pair` runs two
at once, each in a process of its own (`python -m bench._plain COUNT,MAX_PAGES`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._corpus import cached
from bench.common import cores_busy, cpu_parts_s, machine_busy_s, parts_used, run
from docdigest.documents.extract import ExtractionFailed, Limits, extract_file
from docdigest.documents.extract.sandbox import warm_up
from docdigest.documents.sniff import sniff
from docdigest.documents.summarize import summarize_extractive
from docdigest.settings import Settings


async def plain_loop(corpus: list[Path]) -> dict[str, Any]:
    """The same work, one file after another, in this process."""
    settings = Settings()
    limits = Limits.from_settings(settings)
    warm_up()
    failed = 0
    extract_s = summarize_s = 0.0
    busy_before, parts_before = machine_busy_s(), cpu_parts_s([os.getpid()])
    started = time.perf_counter()
    for path in corpus:
        step_started = time.perf_counter()
        try:
            extracted = await extract_file(path, sniff(path), limits)
        except ExtractionFailed:
            failed += 1
            continue
        extracted_at = time.perf_counter()
        await asyncio.to_thread(summarize_extractive, extracted.text, settings.summary_sentences)
        extract_s += extracted_at - step_started
        summarize_s += time.perf_counter() - extracted_at
    elapsed = time.perf_counter() - started
    return {
        "elapsed_s": round(elapsed, 2),
        "failed": failed,
        "per_min": per_min(corpus, elapsed),
        "cores_busy": cores_busy(busy_before, elapsed),
        "cpu_s_by_part": parts_used(parts_before, cpu_parts_s([os.getpid()])),
        "work_s": {"extract": round(extract_s, 2), "summarize": round(summarize_s, 2)},
    }


def loop_pair(count: int, max_pages: int) -> dict[str, Any]:
    """Two plain loops at once, each in a process of its own: what the machine gives
    two lanes of this work with no web, queue or database beside them.

    Each child warms its sandbox, then waits for a go line on its stdin, so that
    the two loops start together and their start-up is not timed.
    """
    command = [sys.executable, "-m", "bench._plain", f"{count},{max_pages}"]
    children = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a plain-loop child did not start")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [json.loads(child.communicate(timeout=1800)[0]) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    documents = sum(r["documents"] for r in results)
    slowest = max(r["elapsed_s"] for r in results)
    return {
        "elapsed_s": [r["elapsed_s"] for r in results],
        "per_min": round(documents / slowest * 60, 1),
        "cores_busy": [r["cores_busy"] for r in results],
        # Each loop's steps, the mean of the two: the same corpus as one plain loop's.
        "work_s": {
            step: round(statistics.mean(r["work_s"][step] for r in results), 2)
            for step in ("extract", "summarize")
        },
    }


async def loop_child(spec: str) -> None:
    """One of `loop_pair`'s processes: warm up, say so, wait for the go, run the loop."""
    count, max_pages = (int(v) for v in spec.split(","))
    corpus = cached(count, max_pages)
    warm_up()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    result = await plain_loop(corpus)
    print(json.dumps({"documents": len(corpus), **result}), flush=True)


def per_min(corpus: list[Path], elapsed: float) -> float:
    return round(len(corpus) / elapsed * 60, 1)


if __name__ == "__main__":
    # On the event loop the bench itself runs on (uvloop when installed), as the
    # single plain loop does.
    run(loop_child(sys.argv[1]))
