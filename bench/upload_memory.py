"""One large upload to a real uvicorn process: the web process's peak RSS growth and MB/s.

A private Redis and a SQLite database back one `uvicorn --factory
docdigest.main:app_from_env` process. After a small warm-up upload (so lazy
imports are not counted), one text file (200 MB in --full, 64 MB in quick mode)
is streamed from disk over loopback in one multipart request while a thread
samples the server's RSS every few milliseconds. Targets: growth <= 25 MB and
>= 300 MB/s. The baseline is the same upload to a bare ASGI endpoint that only
reads the body, under the same uvicorn, so load on the machine shows in both.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

import docdigest.models  # noqa: F401  (every table, for create_all)
from bench.common import arguments, database, private_redis, report
from docdigest.core.db import commit, create_engine, create_sessionmaker
from docdigest.devserver.redis import free_port
from docdigest.settings import Settings
from docdigest.users.models import User
from docdigest.users.sessions import open_session

MAX_GROWTH_MB = 25
MIN_MB_PER_S = 300
CHUNK = 1024 * 1024
BOUNDARY = "benchboundary7d1f"


def write_text_file(path: Path, size: int) -> None:
    line = b"The keepers wrote the weather in the ledger every evening at six o'clock.\n"
    block = line * (CHUNK // len(line))
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: size - written]
            out.write(piece)
            written += len(piece)


def multipart(path: Path, name: str) -> tuple[Iterator[bytes], int]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk
        yield tail

    return body(), len(head) + path.stat().st_size + len(tail)


async def create_token(database_url: str, settings: Settings) -> str:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine, settings=settings)() as session:
        user = User(email="bench@example.com", name="Bench", password_hash="-")
        session.add(user)
        await session.flush()
        token = await open_session(session, user)
        await commit(session)
    await engine.dispose()
    return token


async def prepare(workdir: Path, redis_url: str) -> tuple[dict[str, str], str]:
    async with database("sqlite", workdir) as url:
        env = {
            "DOCDIGEST_DATABASE_URL": url,
            "DOCDIGEST_REDIS_URL": redis_url,
            "DOCDIGEST_DATA_DIR": str(workdir / "data"),
            "DOCDIGEST_QUEUE_NAME": f"docdigest:bench:{uuid.uuid4().hex}",
            "DOCDIGEST_MAX_UPLOAD_MB": "256",
            "DOCDIGEST_LOG_LEVEL": "WARNING",
        }
        settings = Settings(database_url=url, redis_url=redis_url, data_dir=workdir / "data")
        return env, await create_token(url, settings)


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: read the whole body, answer 202."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def start_server(
    env: dict[str, str], port: int, app: list[str] | None = None
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *(app or ["--factory", "docdigest.main:app_from_env"]),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "wb"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the web process did not start")


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)


def upload(client: httpx.Client, path: Path, name: str, token: str) -> httpx.Response:
    body, length = multipart(path, name)
    return client.post(
        "/api/documents",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(length),
        },
    )


def main() -> None:
    args = arguments(__doc__ or "")
    size_mb = 200 if args.full else 64
    with tempfile.TemporaryDirectory() as tmp, private_redis() as redis_url:
        workdir = Path(tmp)
        env, token = asyncio.run(prepare(workdir, redis_url))
        small, big = workdir / "warm.txt", workdir / "big.txt"
        write_text_file(small, CHUNK)
        write_text_file(big, size_mb * CHUNK)
        port = free_port()
        server = start_server(env, port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                warm = upload(client, small, "warm.txt", token)
                assert warm.status_code == 202, warm.text
                sampler = RssSampler(server.pid)
                baseline = sampler.peak
                cpu_before = sum(sampler.process.cpu_times()[:2])
                sampler.start()
                started = time.perf_counter()
                response = upload(client, big, "big.txt", token)
                elapsed = time.perf_counter() - started
                sampler.running = False
                sampler.join()
                server_cpu_s = sum(sampler.process.cpu_times()[:2]) - cpu_before
            assert response.status_code == 202, response.text
        finally:
            server.terminate()
            server.wait(10)
        bare_port = free_port()
        bare = start_server(env, bare_port, ["bench.upload_memory:bare_app"])
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{bare_port}", timeout=120) as client:
                started = time.perf_counter()
                assert upload(client, big, "big.txt", token).status_code == 202
                bare_elapsed = time.perf_counter() - started
        finally:
            bare.terminate()
            bare.wait(10)
    growth_mb = (sampler.peak - baseline) / CHUNK
    mb_per_s = size_mb / elapsed
    report(
        name="upload_memory",
        params={"size_mb": size_mb, "mode": "full" if args.full else "quick"},
        figure=round(mb_per_s, 1),
        unit="MB/s",
        baseline=round(size_mb / bare_elapsed, 1),
        target=f"<= {MAX_GROWTH_MB} MB growth and >= {MIN_MB_PER_S} MB/s",
        meets=growth_mb <= MAX_GROWTH_MB and mb_per_s >= MIN_MB_PER_S,
        rss_growth_mb=round(growth_mb, 2),
        seconds=round(elapsed, 3),
        server_cpu_s=round(server_cpu_s, 3),
        # What the server could do with a core to itself (the wall figure includes load).
        mb_per_server_cpu_s=round(size_mb / server_cpu_s, 1) if server_cpu_s else None,
        rss_before_mb=round(baseline / CHUNK, 1),
        rss_peak_mb=round(sampler.peak / CHUNK, 1),
    )


if __name__ == "__main__":
    main()
