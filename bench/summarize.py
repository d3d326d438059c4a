"""The extractive summarizer on 10k- and 100k-word texts (targets: <= 0.2 s and <= 1 s).

The texts are generated from a fixed seed: sentences of 8-30 words from a
2,000-word vocabulary with a Zipf-like frequency, in paragraphs, so that the
sentence graph looks like prose. Headline: the median time for 100k words.

Beside it, the CPU a summary costs in a stream of them with a short pause after
each, as a worker's summaries come between its other work: threads a summary leaves
busy (a BLAS pool spinning, say) count there, and `stream_cpu_over_wall_10k` is
above 1 when the process burns more than one core's time while summarizing.
"""

from __future__ import annotations

import random
import statistics
import time

from bench.common import arguments, report
from docdigest.documents.summarize import split_sentences, summarize_extractive

TARGETS_S = {10_000: 0.2, 100_000: 1.0}
PAUSE_S = 0.02


def make_text(words: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
        for _ in range(2000)
    ]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    paragraphs, sentences, count = [], [], 0
    while count < words:
        length = rng.randint(8, 30)
        sentence = rng.choices(vocabulary, weights, k=length)
        sentences.append(" ".join(sentence).capitalize() + rng.choice(".....?!"))
        count += length
        if len(sentences) == 6:
            paragraphs.append(" ".join(sentences))
            sentences = []
    paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def median_seconds(text: str, runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time (the latter tells load on a shared machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        summarize_extractive(text, max_sentences=5)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def stream_cpu(text: str, runs: int) -> tuple[float, float]:
    """CPU ms per summary, and CPU over the summaries' own wall time, for `runs`
    summaries with a pause after each (the pauses' CPU counted, their time not)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        summarize_extractive(text, max_sentences=5)
        time.sleep(PAUSE_S)
    cpu = time.process_time() - started_cpu
    busy = time.perf_counter() - started - runs * PAUSE_S
    return cpu / runs * 1000, cpu / busy


def main() -> None:
    args = arguments(__doc__ or "")
    runs = 7 if args.full else 2
    texts = {words: make_text(words) for words in TARGETS_S}
    measured = {words: median_seconds(text, runs) for words, text in texts.items()}
    seconds = {words: wall for words, (wall, _) in measured.items()}
    stream_ms, stream_ratio = stream_cpu(texts[10_000], 20 if args.full else 5)
    report(
        name="summarize",
        params={"words": list(TARGETS_S), "runs": runs, "sentences": 5},
        figure=round(seconds[100_000], 4),
        unit="s (100k words, median)",
        baseline=None,
        target="<= 0.2 s for 10k words and <= 1 s for 100k words",
        meets=all(seconds[words] <= limit for words, limit in TARGETS_S.items()),
        seconds_10k=round(seconds[10_000], 4),
        seconds_100k=round(seconds[100_000], 4),
        cpu_seconds_10k=round(measured[10_000][1], 4),
        cpu_seconds_100k=round(measured[100_000][1], 4),
        sentences_100k=len(split_sentences(texts[100_000])),
        stream_cpu_ms_10k=round(stream_ms, 2),
        stream_cpu_over_wall_10k=round(stream_ratio, 2),
    )


if __name__ == "__main__":
    main()
