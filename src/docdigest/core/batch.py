"""Group commit: what many requests submit while one batch is being written goes
into the next batch, written in one transaction.

A transaction's fixed costs (the statements' round trips, the commit, the push to
Redis) are most of what a small write costs. Paid once per batch, they shrink per
item as load grows, which is when it matters. Nothing waits on a timer: an item
submitted while a writer is free is written at once, alone, so a quiet service
answers as fast as before.

Reads batch the same way: the token checks of requests that arrive together share
one lookup (`users/sessions.py` `TokenCheck`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: How long a batch of short statements may be in flight before it counts as stalled
#: (behind a slow disk flush, say): a batch of uploads takes a few milliseconds.
STALLED_S = 0.02

#: `write(items)` returns, for each item, its result or the error that item alone gets.
Write: TypeAlias = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]


class GroupCommit(Generic[T, R]):
    """Write submitted items in batches with `write`, up to `writers` batches at once.

    `write(items)` writes a batch in one transaction and returns one outcome per
    item, in order. When it raises, the batch is written again one item at a
    time, so an item that cannot be written fails alone.

    While fewer than `writers` batches are in flight, a new item starts one of its
    own; items queue up, and so share a transaction, only when all are busy. More
    than one writer means a transaction that stalls (a slow disk flush, say) holds
    up only the items in it.

    With `spare_after`, a writer beyond the first is a spare: it starts only once
    the newest batch in flight has been writing that long (seconds), so it is
    stalled. Until then new items wait for the next batch, as with one writer, and
    a backlog is written in fewer, larger batches.

    An item once submitted is written even if its submitter is cancelled, so
    whatever `write` takes charge of (a stored file, say) is never left half-done.
    """

    def __init__(
        self,
        write: Write[T, R],
        *,
        writers: int = 1,
        max_batch: int = 64,
        spare_after: float = 0.0,
    ) -> None:
        self._write = write
        self._max_writers = writers
        self._max_batch = max_batch
        self._spare_after = spare_after
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        # Each writer in flight, and when its current batch began (the loop's clock).
        self._writers: dict[asyncio.Task[None], float] = {}
        self._recheck: asyncio.TimerHandle | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._start_writer()
        return await future

    def _start_writer(self) -> None:
        """Start a writer for the waiting items if one may start: now, or once the
        batch in flight has been writing `spare_after` (then checked again)."""
        if not self._waiting or len(self._writers) >= self._max_writers:
            return
        loop = asyncio.get_running_loop()
        if self._writers and self._spare_after > 0:
            stalled_at = max(self._writers.values()) + self._spare_after
            if loop.time() < stalled_at:
                if self._recheck is None:
                    self._recheck = loop.call_at(stalled_at, self._checked_again)
                return
        # A context of its own: a writer serves many requests, not the first one's.
        writer = asyncio.create_task(self._write_waiting(), context=contextvars.Context())
        self._writers[writer] = loop.time()

    def _checked_again(self) -> None:
        self._recheck = None
        self._start_writer()

    async def wait_idle(self) -> None:
        """Return once every submitted item is written (for shutdown)."""
        while self._writers:
            await asyncio.wait(list(self._writers))

    async def _write_waiting(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        me = cast("asyncio.Task[None]", asyncio.current_task())
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self._writers[me] = loop.time()
                await self._write_batch(batch)
        except asyncio.CancelledError:
            for _, future in batch + self._waiting:
                future.cancel()  # the event loop is going away
            self._waiting.clear()
            raise
        finally:
            # With no await since the last look at the queue: an item submitted from
            # now on finds one writer fewer and starts its own.
            self._writers.pop(me, None)

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning("a batch of %d failed; writing its items one by one", len(batch))
            for entry in batch:
                await self._write_batch([entry])
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future[R], outcome: R | Exception) -> None:
    if future.done():  # its submitter was cancelled
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
