"""Which errors are worth another try, and how long to wait before it."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import aiosmtplib
import httpx
from sqlalchemy.exc import DBAPIError, OperationalError


class Transient(Exception):
    """Raise from a job to ask for another try (the outside world may recover)."""


class Permanent(Exception):
    """Raise from a job to fail it at once: trying again cannot help."""


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int
    base_s: float
    cap_s: float
    jitter: bool = True

    def delay_s(self, attempt: int) -> float:
        """Exponential backoff with full jitter (AWS architecture blog, 2015)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0))
        return random.uniform(0, ceiling) if self.jitter else ceiling


def will_retry(exc: BaseException, attempt: int, max_tries: int) -> bool:
    """Whether the job tier tries again after `exc` ended try number `attempt`."""
    return attempt < max_tries and is_transient(exc)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Permanent):
        return False
    if isinstance(exc, Transient | ConnectionError | TimeoutError | asyncio.TimeoutError):
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # the connection was lost (a database restart or failover)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status == 429 or status >= 500
    if isinstance(exc, httpx.TransportError):
        return True
    return _is_transient_llm_error(exc)


def _is_transient_llm_error(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.RateLimitError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500
    return False
