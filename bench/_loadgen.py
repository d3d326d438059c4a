"""A small HTTP/1.1 load generator, run as its own process by the HTTP benches.

`python -m bench._loadgen '<json plan>'` prints one JSON object with the latencies.
It speaks raw HTTP/1.1 over keep-alive connections (no client library in the way),
so one process can drive a server far harder than the server can answer.

Modes:
- "open": requests start at a fixed rate whatever the server does; latency is
  counted from each request's scheduled start, so a stalled server shows up in the
  percentiles instead of slowing the sender (no coordinated omission).
- "closed": `concurrency` connections send back to back; gives the throughput.

Request kinds make every body unique where the server dedupes: "upload" (a
multipart text file under a bearer token), "signup" (a new email each time) and
"raw" (a multipart body to any path, for the bare baseline app).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from typing import Any

BOUNDARY = "benchboundary7d3f"
# uvicorn closes a keep-alive connection after 5 s idle; a request written to one at that
# moment dies with the connection (IncompleteReadError), so, like any HTTP client's pool,
# the open loop does not reuse a connection idle for longer than this.
IDLE_KEEP_S = 4.0


SENTENCES = (
    "The quarterly report describes revenue, costs and the plan for next year.",
    "Sales grew in every region except the north.",
    "Our largest customer renewed for three more years",
    "and asked for a new support contract.",
    "Hiring slowed in the second half; two teams merged.",
    "The board approved the budget without changes.",
    "Risks remain: supply prices, interest rates and one pending lawsuit.",
)


def filler(size: int) -> bytes:
    """Plain prose in paragraphs, so type sniffing sees an ordinary text document."""
    words: list[str] = []
    n = 0
    while sum(map(len, words)) < size:
        words.append(SENTENCES[n % len(SENTENCES)] + ("\n\n" if n % 5 == 4 else " "))
        n += 1
    return "".join(words).encode()[:size]


UPLOAD_CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def upload_body(unique: str, text: bytes) -> bytes:
    """A multipart body with one text file, `text` after a first line naming `unique`
    (the same bytes twice would be answered as a duplicate without any work)."""
    return file_body(f"report-{unique}.txt", f"Request {unique}.\n".encode() + text, "text/plain")


def file_body(filename: str, data: bytes, content_type: str) -> bytes:
    """A multipart body with one file in the form field `file`, as a browser sends it."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def post(host: str, path: str, body: bytes, content_type: str, token: str | None) -> bytes:
    """The bytes of one HTTP/1.1 POST on a keep-alive connection."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Accept: application/json",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Requests:
    """Builds the bytes of request number n of a kind."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.kind: str = plan["kind"]
        self.path: str = plan["path"]
        self.host = f"{plan['host']}:{plan['port']}"
        self.token: str | None = plan.get("token")
        self.body = filler(int(plan.get("body_bytes", 100 * 1024)))
        self.run = uuid.uuid4().hex[:8]

    def build(self, n: int) -> bytes:
        if self.kind == "signup":
            body = json.dumps(
                {
                    "email": f"load-{self.run}-{n}@example.com",
                    "name": f"Load {n}",
                    "password": "correct horse battery staple",
                }
            ).encode()
            return self._request(body, "application/json")
        return self._request(upload_body(f"{self.run}-{n}", self.body), UPLOAD_CONTENT_TYPE)

    def _request(self, body: bytes, content_type: str) -> bytes:
        return post(self.host, self.path, body, content_type, self.token)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send one request and read its whole response; returns the status code."""
        status, _ = await self.exchange(request)
        return status

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request; returns the response's status code and body."""
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


class Results:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def summary(self, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2)

        ok = sum(n for code, n in self.statuses.items() if code.startswith("2"))
        return {
            "completed": len(ordered),
            "ok": ok,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "elapsed_s": round(elapsed, 3),
            "throughput_rps": round(ok / elapsed, 1) if elapsed else 0.0,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        }


async def closed_loop(plan: dict[str, Any]) -> dict[str, Any]:
    requests = Requests(plan)
    count, deadline_s = int(plan["count"]), float(plan["max_s"])
    results = Results()
    counter = iter(range(count))
    started = time.perf_counter()

    async def client() -> None:
        connection = await Connection.open(plan["host"], plan["port"])
        try:
            for n in counter:
                if time.perf_counter() - started > deadline_s:
                    return
                request = requests.build(n)
                sent = time.perf_counter()
                try:
                    status = await connection.send(request)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    results.errors[type(exc).__name__] += 1
                    connection.close()
                    connection = await Connection.open(plan["host"], plan["port"])
                    continue
                results.latencies.append(time.perf_counter() - sent)
                results.statuses[str(status)] += 1
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(int(plan["concurrency"]))))
    return results.summary(time.perf_counter() - started)


async def open_loop(plan: dict[str, Any]) -> dict[str, Any]:
    requests = Requests(plan)
    rate, count, deadline_s = float(plan["rate"]), int(plan["count"]), float(plan["max_s"])
    max_connections = int(plan.get("max_connections", 256))
    results = Results()
    idle: list[tuple[Connection, float]] = []
    opened = 0
    tasks: set[asyncio.Task[None]] = set()

    def reusable() -> Connection | None:
        """The most recently used idle connection the server has not timed out yet."""
        while idle:
            connection, used = idle.pop()
            if time.perf_counter() - used < IDLE_KEEP_S:
                return connection
            connection.close()
        return None

    async def one(n: int, scheduled: float) -> None:
        nonlocal opened
        request = requests.build(n)
        connection = reusable()
        try:
            if connection is None:
                opened += 1
                connection = await Connection.open(plan["host"], plan["port"])
            status = await connection.send(request)
        except (OSError, asyncio.IncompleteReadError) as exc:
            results.errors[type(exc).__name__] += 1
            if connection is not None:
                connection.close()
            return
        results.latencies.append(time.perf_counter() - scheduled)
        results.statuses[str(status)] += 1
        idle.append((connection, time.perf_counter()))

    started = time.perf_counter()
    for n in range(count):
        scheduled = started + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if scheduled - started > deadline_s:
            break
        if len(tasks) >= max_connections:
            results.errors["too_many_in_flight"] += 1
            continue
        task = asyncio.create_task(one(n, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    elapsed = time.perf_counter() - started
    for connection, _ in idle:
        connection.close()
    summary = results.summary(elapsed)
    summary["offered_rps"] = rate
    summary["scheduled"] = count
    summary["connections"] = opened
    return summary


async def main(plan: dict[str, Any]) -> dict[str, Any]:
    if plan["mode"] == "open":
        return await open_loop(plan)
    return await closed_loop(plan)


if __name__ == "__main__":
    plan = json.loads(sys.argv[1])
    try:
        import uvloop

        result = uvloop.run(main(plan))
    except ImportError:
        result = asyncio.run(main(plan))
    print(json.dumps(result), flush=True)
