"""The Arq connection, shared by the web app and the CLI."""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings, create_pool

from docdigest.settings import Settings


def redis_settings(settings: Settings) -> RedisSettings:
    """From DOCDIGEST_REDIS_URL; with DOCDIGEST_REDIS_SENTINELS, the master those sentinels name.

    Under Sentinel the URL still gives the database number and the password.
    """
    url = RedisSettings.from_dsn(settings.redis_url)
    if not settings.redis_sentinels:
        return url
    sentinels = []
    for address in settings.redis_sentinels.split(","):
        host, _, port = address.strip().rpartition(":")
        sentinels.append((host, int(port)))
    return RedisSettings(
        host=sentinels,
        sentinel=True,
        sentinel_master=settings.redis_sentinel_master,
        database=url.database,
        username=url.username,
        password=url.password,
        ssl=url.ssl,
    )


async def connect_queue(settings: Settings) -> ArqRedis:
    return await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)
