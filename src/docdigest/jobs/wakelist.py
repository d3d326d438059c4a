"""What a push and a worker agree on: the wake list a push fills, and the queue's clock.

A job's score in the queue is its due time in milliseconds. A push of a job that is
due now also puts a token on the wake list (`wakeup` says how a worker listens).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

WAKE_TOKENS_MAX = 64

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_ms(at: datetime) -> int:
    """The queue score of a job due at `at`: its time in milliseconds, rounded up.

    Arq rounds both a job's time and the clock it compares it with to the nearest
    millisecond, so a job could start up to a millisecond before its time; rounded
    up here and the clock rounded down (`now_ms`), it never starts early.
    """
    microseconds = (at - _EPOCH) // timedelta(microseconds=1)
    return -(-microseconds // 1000)


def now_ms() -> int:
    """The clock in whole milliseconds, rounded down: a job is due once it reaches its score."""
    return time.time_ns() // 1_000_000


def wake_key(queue_name: str) -> str:
    return f"{queue_name}:wake"
