"""The machine's own measures (`bench/_machine.py`) run, so a machine's section can quote them."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from bench._machine import pair_scaling, pipe_round_trip_us


@contextmanager
def _leaves_no_child() -> Iterator[None]:
    before = {child.pid for child in psutil.Process().children()}
    yield
    assert {child.pid for child in psutil.Process().children()} <= before


def test_the_helper_prints_every_measure_with_its_runs() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "bench._machine"], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(printed)

    assert result["name"] == "machine"
    assert set(result["loop_s"]) == {"top_level", "in_function"}
    assert list(result["random_read_ns"]) == ["256 KB"]  # quick mode: the smallest array only
    assert set(result["pair_scaling"]) == {"records", "reads_256_KB"}
    spreads = [*result["loop_s"].values(), *result["random_read_ns"].values()]
    spreads += result["pair_scaling"].values()
    spreads += [result["objects_s"], result["getppid_us"], result["pipe_round_trip_us"]]
    for spread in spreads:
        assert spread["runs"] and all(figure > 0 for figure in spread["runs"])
        assert min(spread["runs"]) <= spread["median"] <= max(spread["runs"])


def test_the_round_trips_echoing_child_is_gone_when_it_returns() -> None:
    with _leaves_no_child():
        assert pipe_round_trip_us(50) > 0


# Each process clocks itself from the moment it leaves the barrier, and on a busy core
# one can leave it tens of milliseconds after the other, which shortens its wait for the
# lock by as much: the hold is long enough for that to stay within the bounds.
HOLD_S = 0.3


def _held(lock: Path, exclusive: bool) -> float:
    """Seconds to take the file's lock, hold it `HOLD_S` and let it go."""
    start = time.perf_counter()
    with lock.open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        time.sleep(HOLD_S)
    return time.perf_counter() - start


@pytest.mark.parametrize(("exclusive", "low", "high"), [(False, 1.8, 2.1), (True, 0.9, 1.15)])
def test_the_pair_counts_two_lanes_when_they_share_nothing_and_one_when_they_take_turns(
    tmp_path: Path, exclusive: bool, low: float, high: float
) -> None:
    with _leaves_no_child():
        scaling = pair_scaling(lambda: _held(tmp_path / "lock", exclusive))

    assert low <= scaling <= high


def test_a_process_that_dies_without_its_figure_fails_the_measure_and_leaves_no_child() -> None:
    with _leaves_no_child(), pytest.raises(RuntimeError, match="died without its figure"):
        pair_scaling(lambda: os._exit(1), timeout=1)
