"""Check a bench script's output: exactly one JSON object with the keys every bench reports.

`python -m bench._check OUTPUT_FILE...` exits non-zero naming what is wrong. It checks
the shape, never the figures: a smoke run must pass on any machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "params": dict,
    "figure": (int, float),
    "unit": str,
    "target": str,
    "meets": bool,
}
NULLABLE: dict[str, type | tuple[type, ...]] = {"baseline": (int, float), "ratio": (int, float)}


def problems(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        return [f"{len(lines)} non-empty lines, want exactly one JSON object"]
    try:
        result = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(result, dict):
        return ["not a JSON object"]
    found = []
    for key, kind in REQUIRED.items():
        if key not in result:
            found.append(f"missing {key!r}")
        elif not isinstance(result[key], kind) or (
            isinstance(result[key], bool) and kind is not bool
        ):
            found.append(f"{key!r} is {type(result[key]).__name__}")
    for key, kind in NULLABLE.items():
        if key not in result:
            found.append(f"missing {key!r}")
        elif result[key] is not None and not isinstance(result[key], kind):
            found.append(f"{key!r} is {type(result[key]).__name__}")
    if result.get("baseline") is None and result.get("ratio") is not None:
        found.append("'ratio' without a 'baseline'")
    if result.get("baseline") and result.get("ratio") is None:
        found.append("'baseline' without a 'ratio'")
    return found


def main(paths: list[str]) -> int:
    failed = False
    for path in paths:
        for problem in problems(Path(path).read_text()):
            print(f"{path}: {problem}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
