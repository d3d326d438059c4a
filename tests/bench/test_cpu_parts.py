"""The pipeline bench's CPU split: a process's main thread, its other threads and its
children, each read from /proc, land in their own part."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench.common import cpu_parts_s, tree_cpu_s

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")

# Spins `seconds` of CPU in its main thread, then in a second thread, then in a child
# it reaps; says "done" and waits for a line on stdin before it exits.
SPINNER = """
import os, sys, threading, time

def spin(clock, seconds):
    end = clock() + seconds
    while clock() < end:
        pass

seconds = float(sys.argv[1])
spin(time.thread_time, seconds)
thread = threading.Thread(target=spin, args=(time.thread_time, seconds))
thread.start()
thread.join()
pid = os.fork()
if pid == 0:
    spin(time.process_time, seconds)
    os._exit(0)
os.waitpid(pid, 0)
print("done", flush=True)
sys.stdin.readline()
"""


def test_each_part_holds_the_cpu_spent_there() -> None:
    seconds = 0.4
    spinner = subprocess.Popen(
        [sys.executable, "-c", SPINNER, str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert spinner.stdout is not None and spinner.stdout.readline().strip() == "done"
        parts = cpu_parts_s([spinner.pid])
        total = tree_cpu_s([spinner.pid])
    finally:
        spinner.communicate("\n", timeout=10)
    assert parts is not None and total is not None
    # Interpreter start-up adds to the main thread; clock ticks are 10 ms.
    assert seconds - 0.05 <= parts["main"] <= seconds + 0.3
    assert seconds - 0.05 <= parts["threads"] <= seconds + 0.05
    assert seconds - 0.05 <= parts["children"] <= seconds + 0.05
    assert sum(parts.values()) == pytest.approx(total, abs=0.02)


def test_a_process_that_is_gone_gives_no_split() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert cpu_parts_s([gone.pid]) is None
