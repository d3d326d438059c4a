"""What every bench script shares: its one JSON line, a private Redis, databases, quiet logs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from docdigest.core.db import create_tables
from docdigest.devserver.redis import free_port, start_redis
from docdigest.settings import Settings


def report(
    *,
    name: str,
    params: dict[str, Any],
    figure: float,
    unit: str,
    baseline: float | None,
    target: str,
    meets: bool,
    **detail: Any,
) -> None:
    """Print the script's one JSON object; `ratio` is figure/baseline when there is a baseline."""
    ratio = round(figure / baseline, 3) if baseline else None
    line = {
        "name": name,
        "params": params,
        "figure": figure,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "meets": bool(meets),
        **detail,
    }
    print(json.dumps(line, default=str), flush=True)


def arguments(description: str, *child_options: str) -> argparse.Namespace:
    """`--full`, plus the hidden options (strings, "" when absent) with which a bench
    starts itself again as a child process (a worker, one variant)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--full", action="store_true", help="real numbers (slower)")
    for name in child_options:
        parser.add_argument(f"--{name}", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own, so a bench neither disturbs nor is disturbed by others."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        process = start_redis(port, Path(tmp), appendonly=False)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


NO_POSTGRES = "PostgreSQL needs DOCDIGEST_BENCH_POSTGRES_URL or DOCDIGEST_TEST_POSTGRES_URL"


def database_argument(parser: argparse.ArgumentParser) -> None:
    """`--database sqlite|postgres`, refused at the command line when PostgreSQL is asked
    for and no URL names one, rather than failing after the setup has begun."""

    def kind(value: str) -> str:
        if value == "postgres" and postgres_admin_url() is None:
            raise argparse.ArgumentTypeError(NO_POSTGRES)
        return value

    parser.add_argument("--database", type=kind, choices=("sqlite", "postgres"), default="sqlite")


def postgres_admin_url() -> str | None:
    url = os.environ.get("DOCDIGEST_BENCH_POSTGRES_URL") or os.environ.get(
        "DOCDIGEST_TEST_POSTGRES_URL"
    )
    if not url:
        return None
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


@asynccontextmanager
async def database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh database with every table: a SQLite file, or a private PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        await create_tables(url)
        yield url
        return
    admin_url = postgres_admin_url()
    if admin_url is None:
        raise RuntimeError(NO_POSTGRES)
    name = f"docdigest_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    await create_tables(url)
    try:
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def quiet_logging() -> None:
    """Logs are formatted as in production but go nowhere, so stdout holds only the JSON."""
    from docdigest.core.logging import JsonFormatter, RequestIdFilter

    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def run(main: Any) -> None:
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:
        asyncio.run(main)
    sys.stdout.flush()


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Terminate a child, killing it if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def quiet_child(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (a worker under test) with its output discarded, stopped after the block."""
    process = subprocess.Popen(
        command,
        env={**os.environ, "DOCDIGEST_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        stop(process)


def percentile_ms(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of durations in seconds, in milliseconds."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


def bench_settings(redis_url: str, database_url: str, queue_name: str) -> Settings:
    """docdigest settings for a bench's own worker and sender: quiet logs, a scratch data dir."""
    return Settings(
        env="test",
        database_url=database_url,
        redis_url=redis_url,
        queue_name=queue_name,
        data_dir=Path(tempfile.gettempdir()) / "docdigest-bench",
        log_level="WARNING",
    )


def machine_busy_s() -> float | None:
    """CPU seconds every core of this machine has spent busy since boot (Linux's
    /proc/stat; None elsewhere). Over a phase, the difference divided by the wall
    time is how many cores the phase kept busy, whoever used them."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def process_stat(pid: int, main_thread: bool = False) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and
    parentheses), so that field N of proc(5) is item N - 3; with `main_thread`, those
    of the process's main thread alone (/proc/PID/task/PID/stat). Raises OSError when
    the process is gone or there is no /proc."""
    path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    return Path(path).read_text().rsplit(")", 1)[1].split()


def tree_cpu_s(pids: list[int]) -> float | None:
    """CPU seconds used by the processes `pids` and every living descendant, with what
    their finished children used (Linux's /proc; None elsewhere). A worker's extraction
    children are counted through the fork server that waits for them."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            fields = process_stat(int(entry))
        except OSError:
            continue  # gone meanwhile
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(v) for v in fields[11:15]) / tick  # u, s, cu, cs time
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [pid for pid in pids if pid in used]
    while todo:
        pid = todo.pop()
        total += used[pid]
        todo.extend(children.get(pid, []))
    return total


def cpu_parts_s(pids: list[int]) -> dict[str, float] | None:
    """`tree_cpu_s(pids)` split three ways (Linux's /proc; None elsewhere): `main`,
    each process's main thread, where a docdigest process runs its event loop (the
    job tier's own work: the jobs' statements, the ledger, the pushes and claims, the
    logs); `threads`, the processes' other threads (the summaries and the hand-offs
    to the sandbox run there); `children`, every descendant with what it reaped (a
    worker's fork server and its extraction children)."""
    total = tree_cpu_s(pids)
    if total is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    main = whole = 0.0
    for pid in pids:
        try:
            own = process_stat(pid)
            first = process_stat(pid, main_thread=True)
        except OSError:
            return None  # gone meanwhile: a split without it would mislead
        # A process's utime and stime include its threads, those that ended too.
        whole += (int(own[11]) + int(own[12])) / tick
        main += (int(first[11]) + int(first[12])) / tick
    return {"main": main, "threads": whole - main, "children": total - whole}


def cores_busy(before: float | None, wall_s: float) -> float | None:
    after = machine_busy_s()
    if before is None or after is None or wall_s <= 0:
        return None
    return round((after - before) / wall_s, 2)


def parts_used(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, float] | None:
    """The CPU seconds of each part (`cpu_parts_s`) between two readings."""
    if before is None or after is None:
        return None
    return {part: round(after[part] - before[part], 2) for part in after}
