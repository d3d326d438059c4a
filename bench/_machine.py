"""How fast the machine itself is, apart from docdigest: what to set beside its suite.

`python -m bench._machine [--full]` prints one JSON object:

- `loop_s`: ten million additions as a script's top-level code (every name a lookup
  in a dict) and inside a function (every name a local), three times each: plain
  Python, which fits in a core's own caches.
- `objects_s`: 200,000 small records made, written as JSON and read back, three
  times: Python's allocator and calls, where the loop above makes few of either.
- `random_read_ns`: one read from a numpy array at a random index, within arrays of
  256 KB, 2 MB, 16 MB and 256 MB, two runs each: the caches a core shares with the
  other guests of its host, then memory.
- `getppid_us`: a system call as Python makes it (`os.getppid`).
- `pipe_round_trip_us`: one byte to a child process and back through two pipes,
  Python at both ends: two wake-ups and four system calls.
- `pair_scaling`: what the two cores make of one piece of work run in two processes at
  once, in units of one such process alone (twice its time alone over the slower one's
  time beside the other), three times each: the records above, and the reads within
  16 MB. 2.0 when neither core takes anything from the other; the pipeline's
  `loop_pair_scaling` is the same figure for a document's own work.

Each gives the median of its runs and every run's figure. docs/performance.md sets
them beside each machine's suite, so that what a machine is quick or slow at is on
record with the command that took it. They do not rank machines for docdigest's
work: on two machines of one model a tight loop, a system call and a round trip ran
alike while the job tier's work differed by a third (the fifty-seventh and
fifty-eighth machines). They come from a timer, so take them on a quiet machine.
Quick mode (the default) only shows the helper still runs.
Not part of `make bench`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path

import numpy as np

from bench.common import arguments

_ADDITIONS = "x = 0\nfor i in range(n):\n    x += i\n"
_ECHO = "import os\nwhile b := os.read(0, 1):\n    os.write(1, b)\n"
_KB = 1024


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _additions(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def loop_seconds(n: int) -> dict[str, float]:
    """One run of `n` additions at a script's top level, and one inside a function."""
    top_level = compile(_ADDITIONS, "<top level>", "exec")
    return {
        "top_level": round(_timed(lambda: exec(top_level, {"n": n})), 3),
        "in_function": round(_timed(lambda: _additions(n)), 3),
    }


def objects_seconds(n: int) -> float:
    """`n` small records made, written as JSON and read back: allocation and calls."""

    def records() -> None:
        for i in range(n):
            record = {"id": i, "name": f"document-{i}", "state": "ready", "pages": [i, i + 1]}
            json.loads(json.dumps(record))

    return round(_timed(records), 3)


def random_read_ns(array_bytes: int, reads: int) -> float:
    """Nanoseconds a read at a random index, within an array of `array_bytes`."""
    rng = np.random.default_rng(0)
    values = np.arange(array_bytes // 8, dtype=np.int64)
    indices = rng.integers(0, len(values), size=reads)
    out = np.empty(reads, dtype=np.int64)
    np.take(values, indices, out=out)  # the first pass warms the caches and the pages
    return round(_timed(lambda: np.take(values, indices, out=out)) / reads * 1e9, 2)


def getppid_us(calls: int) -> float:
    """Microseconds a call of `os.getppid`, a system call that does no work."""
    return round(_timed(lambda: [os.getppid() for _ in range(calls)]) / calls * 1e6, 3)


def pipe_round_trip_us(trips: int) -> float:
    """Microseconds for one byte to reach a child process through a pipe and come back."""
    child = subprocess.Popen(
        [sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    to_child, from_child = child.stdin.fileno(), child.stdout.fileno()

    def trip() -> None:
        for _ in range(trips):
            os.write(to_child, b"x")
            if os.read(from_child, 1) != b"x":
                raise RuntimeError("the echoing child answered wrong")

    try:
        trip()  # the child's start-up is not in the figure
        return round(_timed(trip) / trips * 1e6, 2)
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()


def pair_scaling(work: Callable[[], float], timeout: float = 60) -> float:
    """Twice the time `work` takes in one process alone, over the slower of two at once."""
    alone = _at_once(work, 1, timeout)
    return round(2 * alone[0] / max(_at_once(work, 2, timeout)), 3)


def _at_once(work: Callable[[], float], processes: int, timeout: float) -> list[float]:
    """`work`'s own timing of itself in each of `processes` forked processes, which all
    set out together once every one is ready. A child that dies without its figure
    fails the measure after `timeout` seconds instead of leaving it waiting."""
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(processes)
    results: multiprocessing.Queue[float] = context.Queue()
    children = [
        context.Process(target=_timed_after, args=(work, ready, results)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        return [results.get(timeout=timeout) for _ in children]
    except queue.Empty:
        raise RuntimeError("a process of the pair measure died without its figure") from None
    finally:
        for child in children:
            child.join(timeout=timeout)
            if child.is_alive():  # left waiting at the barrier by one that died
                child.kill()
                child.join()


def _timed_after(
    work: Callable[[], float], ready: Barrier, results: multiprocessing.Queue[float]
) -> None:
    ready.wait()
    results.put(work())


def measure(full: bool) -> dict[str, object]:
    additions = 10_000_000 if full else 200_000
    sizes = (256 * _KB, 2048 * _KB, 16384 * _KB, 262144 * _KB) if full else (256 * _KB,)
    reads = 5_000_000 if full else 100_000
    records = 200_000 if full else 5_000
    shared = (16384 if full else 256) * _KB  # the pair measure's arrays
    loops = [loop_seconds(additions) for _ in range(3)]
    objects = [objects_seconds(records) for _ in range(3)]
    reads_by_size = {
        f"{size // _KB} KB": [random_read_ns(size, reads) for _ in range(2)] for size in sizes
    }
    calls = [getppid_us(1_000_000 if full else 10_000) for _ in range(3)]
    trips = [pipe_round_trip_us(20_000 if full else 200) for _ in range(3)]
    pairs = {
        "records": [pair_scaling(lambda: objects_seconds(records)) for _ in range(3)],
        f"reads_{shared // _KB}_KB": [
            pair_scaling(lambda: random_read_ns(shared, reads * 4)) for _ in range(3)
        ],
    }
    return {
        "name": "machine",
        "params": {"additions": additions, "reads": reads, "full": full},
        "cpu": _cpu_model(),
        "loop_s": {
            key: _spread([run[key] for run in loops]) for key in ("top_level", "in_function")
        },
        "objects_s": _spread(objects),
        "random_read_ns": {size: _spread(runs) for size, runs in reads_by_size.items()},
        "getppid_us": _spread(calls),
        "pipe_round_trip_us": _spread(trips),
        "pair_scaling": {work: _spread(runs) for work, runs in pairs.items()},
    }


def _spread(runs: list[float]) -> dict[str, object]:
    return {"median": round(statistics.median(runs), 3), "runs": runs}


def _cpu_model() -> str:
    """The CPU as /proc/cpuinfo names it (model name, family, model), where there is one."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").split("\n\n")[0].splitlines()
    except OSError:
        return "unknown"
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    return (
        f"{fields.get('model name', 'unknown')}, family {fields.get('cpu family', '?')}"
        f" model {fields.get('model', '?')}"
    )


def main() -> None:
    print(json.dumps(measure(arguments(__doc__ or "").full)))


if __name__ == "__main__":
    main()
