"""Login throttling: failed attempts counted per account and per IP in Redis.

Redis (not process memory) so the limit holds across every web process.
"""

from __future__ import annotations

import hashlib
import math

from redis.asyncio import Redis

from docdigest.core.errors import TooManyRequests
from docdigest.settings import Settings


class LoginThrottle:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings

    def _keys(self, email: str, ip: str) -> tuple[str, str]:
        # The queue name namespaces the counters per deployment sharing one Redis.
        base = f"{self.settings.queue_name}:login-failures"
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        return f"{base}:account:{account}", f"{base}:ip:{ip}"

    async def check(self, email: str, ip: str) -> None:
        """Raise 429 while either counter is over its limit."""
        account_key, ip_key = self._keys(email, ip)
        account_count, ip_count = await self.redis.mget(account_key, ip_key)
        limits = (
            (account_key, account_count, self.settings.login_max_failures_per_account, "account"),
            (ip_key, ip_count, self.settings.login_max_failures_per_ip, "address"),
        )
        for key, count, limit, what in limits:
            if count is not None and int(count) >= limit:
                ttl = await self.redis.ttl(key)
                retry_after = ttl if ttl > 0 else self.settings.login_failure_window_s
                minutes = max(1, math.ceil(retry_after / 60))
                raise TooManyRequests(
                    f"Too many failed logins for this {what}. "
                    f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                    retry_after_s=retry_after,
                )

    async def failed(self, email: str, ip: str) -> None:
        window = self.settings.login_failure_window_s
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(email, ip):
                # SET NX then INCR keeps the window's first expiry (EXPIRE NX needs Redis 7).
                pipe.set(key, 0, ex=window, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def succeeded(self, email: str, ip: str) -> None:
        account_key, _ = self._keys(email, ip)
        await self.redis.delete(account_key)
