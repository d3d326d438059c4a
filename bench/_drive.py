"""CPU per request with no HTTP server and no other process: the app driven in-process.

`python -m bench._drive [--database sqlite|postgres] [--count N] [--concurrency C] ROUTE`
prints one JSON object. ROUTE is one of:

- `healthz`: `GET /healthz`, the framework and middleware alone;
- `me`: `GET /api/me`, the bearer token checked with one query;
- `wrong-token`: `POST /api/documents` with a token nobody holds (401 after that query);
- `upload`: `POST /api/documents` with the 100 KB text upload of `http_enqueue`.

Requests go straight to the ASGI app (the app's own lifespan, Redis at
DOCDIGEST_TEST_REDIS_URL or redis://127.0.0.1:6379/15, PostgreSQL at
DOCDIGEST_TEST_POSTGRES_URL), so `cpu_ms_per_request` is the app's own CPU, every
thread of this process counted, with nothing of uvicorn's; `loop_cpu_ms_per_request`
is the event loop's thread alone, the part that limits one process under load. One
request at a time by default: the cheapest a request can be. Not part of `make bench`:
it has no baseline or target; it is how the per-request figures in
docs/performance.md were taken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import uvloop
from fastapi import FastAPI

import docdigest.models  # noqa: F401  (registers every table for create_all)
from bench._loadgen import UPLOAD_CONTENT_TYPE, filler, upload_body
from bench.common import database, database_argument
from docdigest.main import create_app
from docdigest.settings import Settings

ROUTES = ("healthz", "me", "wrong-token", "upload")
WARMUP = 200


class Request:
    """One ASGI request, sent straight to the app; returns the status."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "headers": [
                (k.lower().encode(), v.encode())
                for k, v in {**headers, "content-length": str(len(body))}.items()
            ],
        }
        self.chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]

    async def send_to(self, app: FastAPI) -> int:
        chunks = list(self.chunks)
        status = 0

        async def receive() -> dict[str, Any]:
            if chunks:
                chunk = chunks.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(self.scope, receive, send)
        return status


def requests(route: str, token: str) -> Iterator[Request]:
    """Request after request for `route`; uploads differ by their first line."""
    auth = {"authorization": f"Bearer {token}", "accept": "application/json"}
    body = filler(100 * 1024)
    for n in range(10**9):
        if route == "healthz":
            yield Request("GET", "/healthz", {}, b"")
        elif route == "me":
            yield Request("GET", "/api/me", auth, b"")
        else:
            headers = {
                **auth,
                "content-type": UPLOAD_CONTENT_TYPE,
                **({"authorization": "Bearer " + "x" * 43} if route == "wrong-token" else {}),
            }
            yield Request("POST", "/api/documents", headers, upload_body(str(n), body))


async def bearer_token(app: FastAPI) -> str:
    import httpx

    account = {"email": "drive@example.com", "password": "drive password 1"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://drive") as client:
        (await client.post("/api/signup", json={**account, "name": "Drive"})).raise_for_status()
        response = await client.post("/api/login", json=account)
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


async def drive(route: str, kind: str, count: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with database(kind, Path(tmp)) as url:
            settings = Settings(
                env="development",
                data_dir=Path(tmp) / "data",
                database_url=url,
                redis_url=os.environ.get("DOCDIGEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
                queue_name=f"drive:{uuid.uuid4().hex[:8]}",
                log_format="json",
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                stream = requests(route, await bearer_token(app))
                expected = {"healthz": 200, "me": 200, "wrong-token": 401, "upload": 202}[route]

                async def client(total: int) -> None:
                    for _ in range(total // concurrency):
                        status = await next(stream).send_to(app)
                        if status != expected:
                            raise RuntimeError(f"{route}: {status}, expected {expected}")

                await asyncio.gather(*(client(WARMUP) for _ in range(concurrency)))
                cpu, loop, wall = time.process_time(), time.thread_time(), time.perf_counter()
                await asyncio.gather(*(client(count) for _ in range(concurrency)))
                cpu, loop = time.process_time() - cpu, time.thread_time() - loop
                wall = time.perf_counter() - wall
    done = count // concurrency * concurrency
    return {
        "name": "drive",
        "params": {"route": route, "database": kind, "count": done, "concurrency": concurrency},
        "cpu_ms_per_request": round(cpu / done * 1000, 3),
        "loop_cpu_ms_per_request": round(loop / done * 1000, 3),
        "requests_per_s": round(done / wall, 1),
    }


def route_arguments(description: str | None) -> argparse.ArgumentParser:
    """The options every driver of the app takes: a route and a database."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("route", choices=ROUTES)
    database_argument(parser)
    return parser


def main() -> None:
    parser = route_arguments(__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    result = uvloop.run(drive(args.route, args.database, args.count, args.concurrency))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
