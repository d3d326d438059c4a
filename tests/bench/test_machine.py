"""The machine's own measures (`bench/_machine.py`) run, so a machine's section can quote them."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
from bench._machine import pipe_round_trip_us


def test_the_helper_prints_every_measure_with_its_runs() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "bench._machine"], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(printed)

    assert result["name"] == "machine"
    assert set(result["loop_s"]) == {"top_level", "in_function"}
    assert list(result["random_read_ns"]) == ["256 KB"]  # quick mode: the smallest array only
    spreads = [*result["loop_s"].values(), *result["random_read_ns"].values()]
    spreads += [result["objects_s"], result["getppid_us"], result["pipe_round_trip_us"]]
    for spread in spreads:
        assert spread["runs"] and all(figure > 0 for figure in spread["runs"])
        assert min(spread["runs"]) <= spread["median"] <= max(spread["runs"])


def test_the_round_trips_echoing_child_is_gone_when_it_returns() -> None:
    before = {child.pid for child in psutil.Process().children()}

    assert pipe_round_trip_us(50) > 0
    assert {child.pid for child in psutil.Process().children()} <= before
