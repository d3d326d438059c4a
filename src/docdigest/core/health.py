"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from docdigest.jobs.dashboard.workers import list_workers, newest_heartbeat_age
from docdigest.jobs.metrics import count_dead_letters

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def readiness(app: FastAPI) -> tuple[bool, dict[str, Any]]:
    """Database and Redis decide readiness; workers are reported but never fail it,
    so web pods are not restarted because of a worker outage."""
    checks: dict[str, Any] = {}

    async def database() -> None:
        async with app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await app.state.arq.ping()

    probes: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] = (
        ("database", database),
        ("redis", redis),
    )
    for name, probe in probes:
        try:
            async with asyncio.timeout(2):
                await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in checks.values())
    # Reported for operators, never part of the verdict: a failure here is only noted.
    if checks["redis"] == "ok":
        try:
            checks["workers"] = await _workers(app)
        except Exception as exc:
            checks["workers"] = f"error: {type(exc).__name__}: {exc}"
    if checks["database"] == "ok":
        try:
            async with app.state.sessionmaker() as session:
                checks["dead_letters"] = await count_dead_letters(session)
        except Exception as exc:
            checks["dead_letters"] = f"error: {type(exc).__name__}: {exc}"
    return ok, {"status": "ok" if ok else "unavailable", **checks}


async def _workers(app: FastAPI) -> dict[str, Any]:
    workers = await list_workers(app.state.arq, app.state.settings)
    live = sum(w.alive for w in workers)
    return {
        "live": live,
        "stale": len(workers) - live,
        "newest_heartbeat_age_s": newest_heartbeat_age(workers),
        "status": "ok" if live else "no live worker: jobs wait until one starts",
    }


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ok, body = await readiness(request.app)
    return JSONResponse(body, 200 if ok else 503)
