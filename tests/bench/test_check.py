"""The bench smoke check: it passes a bench's one JSON object and names what is wrong
with anything else, without judging the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench._check import problems

GOOD = {
    "name": "pipeline",
    "params": {"documents": 6},
    "figure": 80.5,
    "unit": "documents/min",
    "baseline": 100.0,
    "ratio": 0.805,
    "target": ">= 0.85x the plain loop",
    "meets": False,
}


def test_one_object_with_every_key_passes_whatever_the_figures() -> None:
    assert problems(json.dumps(GOOD) + "\n") == []
    assert problems(json.dumps(GOOD | {"baseline": None, "ratio": None, "meets": True})) == []


def test_each_missing_key_is_named() -> None:
    for key in GOOD:
        partial = {k: v for k, v in GOOD.items() if k != key}
        assert f"missing {key!r}" in problems(json.dumps(partial))


def test_log_lines_or_a_second_object_on_stdout_fail() -> None:
    assert problems("starting redis\n" + json.dumps(GOOD)) == [
        "2 non-empty lines, want exactly one JSON object"
    ]
    assert problems("") == ["0 non-empty lines, want exactly one JSON object"]
    assert problems("[1, 2]") == ["not a JSON object"]


def test_wrong_types_are_named() -> None:
    found = problems(json.dumps(GOOD | {"figure": "fast", "meets": 1, "ratio": None}))
    assert "'figure' is str" in found
    assert "'meets' is int" in found
    assert "'baseline' without a 'ratio'" in found


def test_the_command_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(GOOD))
    bad.write_text(json.dumps({"name": "x"}))
    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run([sys.executable, "-m", "bench._check", str(good)], cwd=root)
    failed = subprocess.run(
        [sys.executable, "-m", "bench._check", str(bad)], cwd=root, capture_output=True, text=True
    )
    assert ok.returncode == 0
    assert failed.returncode == 1
    assert "missing 'figure'" in failed.stderr
