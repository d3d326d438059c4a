"""Each process an operator starts loads what it uses: the web process carries no
summarizer, a worker the summarizers its settings choose, loaded before it serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ops.conftest import ENTRY_POINTS, run_python

HEAVY = ("numpy", "openai")
REPORT = f"import json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"


def loaded(entry_point: str, tmp_path: Path, **settings: str) -> list[str]:
    """Which of HEAVY are imported once `entry_point` has built what it serves."""
    printed = run_python(f"{ENTRY_POINTS[entry_point]}\n{REPORT}", tmp_path, **settings)
    modules: list[str] = json.loads(printed.splitlines()[-1])
    return modules


@pytest.mark.parametrize(
    ("entry_point", "summarizer", "expected"),
    [
        ("web", "extractive", []),
        ("web", "llm", []),
        ("worker", "extractive", ["numpy"]),
        ("worker", "llm", ["numpy", "openai"]),
    ],
)
def test_each_process_loads_the_summarizers_it_uses(
    tmp_path: Path, entry_point: str, summarizer: str, expected: list[str]
) -> None:
    settings = {"DOCDIGEST_SUMMARIZER": summarizer}
    if summarizer == "llm":
        settings |= {"DOCDIGEST_LLM_BASE_URL": "http://127.0.0.1:9/v1", "DOCDIGEST_LLM_MODEL": "m"}
    assert loaded(entry_point, tmp_path, **settings) == expected
