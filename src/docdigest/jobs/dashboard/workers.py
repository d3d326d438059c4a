"""Which workers are alive: Arq's per-worker health-check keys plus a small registry.

Arq writes `<health key>` every `health_check_interval` seconds with a TTL of
interval + 1, so a key's remaining TTL tells the heartbeat's age exactly. A worker
that died without cleaning up leaves its registry entry behind with no key: stale.
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from docdigest.core.db import utcnow
from docdigest.settings import Settings

HEALTH_CHECK_INTERVAL_S = 10
#: This process's worker name: unique per host and process.
WORKER_NAME = f"{socket.gethostname()}-{os.getpid()}"
_FORGET_STALE_AFTER = timedelta(days=1)
_UNREGISTERED = "(unregistered)"
_STATS = re.compile(r"j_complete=(\d+) j_failed=(\d+) j_retried=(\d+) j_ongoing=(\d+) queued=(\d+)")


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    alive: bool
    heartbeat_age_s: float | None
    last_seen: datetime | None
    started_at: datetime | None
    metrics_port: int | None
    jobs_complete: int = 0
    jobs_failed: int = 0
    jobs_retried: int = 0
    jobs_ongoing: int = 0
    queued: int = 0

    @property
    def stale(self) -> bool:
        return not self.alive


def health_check_key(settings: Settings, name: str = WORKER_NAME) -> str:
    return f"{settings.queue_name}:health-check:{name}"


def _registry_key(settings: Settings) -> str:
    return f"{settings.queue_name}:workers"


async def register_worker(
    redis: Redis, settings: Settings, *, metrics_port: int | None, name: str = WORKER_NAME
) -> None:
    now = utcnow().isoformat()
    entry = {"started_at": now, "last_seen": now, "metrics_port": metrics_port}
    await redis.hset(_registry_key(settings), name, json.dumps(entry))  # type: ignore[misc]


async def unregister_worker(redis: Redis, settings: Settings, name: str = WORKER_NAME) -> None:
    await redis.hdel(_registry_key(settings), name)  # type: ignore[misc]


async def list_workers(redis: Redis, settings: Settings) -> list[WorkerInfo]:
    """Live workers first, then stale ones; stale entries older than a day are forgotten.

    Two round trips whatever the size of Redis: the registry, then every worker's key
    (plus Arq's default key, written by a worker started with other settings).
    """
    registry_key = _registry_key(settings)
    raw: dict[bytes, bytes] = await redis.hgetall(registry_key)  # type: ignore[misc]
    entries: dict[str, dict[str, Any]] = {k.decode(): json.loads(v) for k, v in raw.items()}
    keys = {name: health_check_key(settings, name) for name in sorted(entries)}
    keys[_UNREGISTERED] = f"{settings.queue_name}:health-check"
    pipe = redis.pipeline(transaction=False)
    for key in keys.values():
        pipe.get(key)
        pipe.pttl(key)
    replies = await pipe.execute()

    now = utcnow()
    workers: list[WorkerInfo] = []
    seen: dict[str, str] = {}
    for (name, _key), value, pttl in zip(keys.items(), replies[::2], replies[1::2], strict=True):
        entry = entries.get(name, {})
        started = _parse_time(entry.get("started_at"))
        last_seen = _parse_time(entry.get("last_seen"))
        if value is None:
            if name == _UNREGISTERED:
                continue
            if last_seen is not None and now - last_seen > _FORGET_STALE_AFTER:
                await redis.hdel(registry_key, name)  # type: ignore[misc]
                continue
            workers.append(WorkerInfo(name, False, None, last_seen, started, None))
            continue
        age = max(HEALTH_CHECK_INTERVAL_S + 1 - pttl / 1000, 0.0) if pttl > 0 else 0.0
        if entry:
            seen[name] = json.dumps(entry | {"last_seen": now.isoformat()})
        stats = _STATS.search(value.decode())
        numbers = [int(n) for n in stats.groups()] if stats else [0] * 5
        workers.append(
            WorkerInfo(
                name,
                True,
                round(age, 1),
                now - timedelta(seconds=age),
                started,
                entry.get("metrics_port"),
                *numbers,
            )
        )
    if seen:
        await redis.hset(registry_key, mapping=seen)  # type: ignore[misc]
    workers.sort(key=lambda w: (not w.alive, w.name))
    return workers


def newest_heartbeat_age(workers: list[WorkerInfo]) -> float | None:
    ages = [w.heartbeat_age_s for w in workers if w.heartbeat_age_s is not None]
    return min(ages) if ages else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
