"""Instructions per request: `bench/_drive` run twice under callgrind, at two lengths.

`python -m bench._instructions [--database sqlite|postgres] [--short N] [--long N] ROUTE`
prints one JSON object. It runs `python -m bench._drive ROUTE --count N` under
`valgrind --tool=callgrind` for both counts, at once, and divides the difference of
the two totals by the difference of the counts: the start-up, the warm-up and the
database's creation cancel out, and what is left is what one request costs the
app's process, every thread of it counted.

A timer's figure moves with whatever else the machine is doing; this one does not
(the same code and input gave totals within 1 % of each other), so it shows a
change of a few per cent that a timer cannot. It counts instructions, not time:
waits, the kernel's work and the database server's are not in it. Needs valgrind
(Debian's `valgrind` package); each run takes minutes. Not part of `make bench`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._drive import route_arguments

_TOTAL = re.compile(r"Collected\s*:\s*(\d+)")


def instructions(route: str, database: str, count: int, out: Path) -> int:
    """The instructions one run of `bench._drive` executes, start to end."""
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench._drive",
        route,
        "--database",
        database,
        "--count",
        str(count),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    found = _TOTAL.search(result.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = route_arguments(__doc__)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--long", type=int, default=400)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.long <= args.short:
        sys.exit("--long must be larger than --short")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        # Both runs at once: each runs on one core under valgrind, and the counts do
        # not depend on what else runs.
        runs = [
            pool.submit(instructions, args.route, args.database, count, Path(tmp) / f"out.{count}")
            for count in (args.short, args.long)
        ]
        totals = [run.result() for run in runs]
    short, long = totals
    per_request = (long - short) / (args.long - args.short)
    line = {
        "name": "instructions",
        "params": {
            "route": args.route,
            "database": args.database,
            "counts": [args.short, args.long],
        },
        "instructions_per_request": round(per_request),
        "millions_per_request": round(per_request / 1e6, 3),
        "totals": {str(args.short): short, str(args.long): long},
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
