"""Group commit: a lone item is written at once; items that arrive during a write go
together in the next one; an item that cannot be written fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from docdigest.core.batch import GroupCommit


async def settle() -> None:
    """Let every task that can run, run (submitters, then the writers they start)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Ledger:
    """A `write` that records its batches and can be held mid-write."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.writing = asyncio.Event()

    async def write(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        self.writing.set()
        await self.release.wait()
        if any(item < 0 for item in items) and len(items) > 1:
            raise RuntimeError("the whole transaction fails")
        return [ValueError(f"odd {item}") if item % 2 else item * 10 for item in items]


async def during_a_write(
    batches: GroupCommit[int, int], ledger: Ledger, items: Sequence[int]
) -> list[asyncio.Task[int]]:
    """Submit 2 and hold its write; submit `items` meanwhile. Release with `ledger.release`."""
    ledger.release.clear()
    first = asyncio.create_task(batches.submit(2))
    await ledger.writing.wait()
    rest = [asyncio.create_task(batches.submit(item)) for item in items]
    await settle()
    return [first, *rest]


async def test_a_lone_item_is_written_at_once_by_itself() -> None:
    ledger = Ledger()
    batches = GroupCommit(ledger.write)
    assert await batches.submit(2) == 20
    assert await batches.submit(4) == 40
    assert ledger.batches == [[2], [4]]


async def test_items_arriving_during_a_write_go_together_in_the_next() -> None:
    ledger = Ledger()
    tasks = await during_a_write(GroupCommit(ledger.write), ledger, (4, 6, 8))
    ledger.release.set()
    assert await asyncio.gather(*tasks) == [20, 40, 60, 80]
    assert ledger.batches == [[2], [4, 6, 8]]


async def test_batches_are_capped() -> None:
    ledger = Ledger()
    ledger.release.clear()
    batches = GroupCommit(ledger.write, max_batch=2)
    tasks = [asyncio.create_task(batches.submit(item)) for item in (2, 4, 6, 8, 10)]
    await ledger.writing.wait()
    ledger.release.set()
    assert await asyncio.gather(*tasks) == [20, 40, 60, 80, 100]
    assert ledger.batches == [[2, 4], [6, 8], [10]]


async def test_an_item_error_is_that_items_alone() -> None:
    ledger = Ledger()
    ledger.release.clear()
    batches = GroupCommit(ledger.write)
    tasks = [asyncio.create_task(batches.submit(item)) for item in (2, 3, 4)]
    await ledger.writing.wait()
    ledger.release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert outcomes[0] == 20 and outcomes[2] == 40
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "odd 3"
    assert ledger.batches == [[2, 3, 4]]


async def test_a_failed_batch_is_written_again_item_by_item() -> None:
    ledger = Ledger()
    tasks = await during_a_write(GroupCommit(ledger.write), ledger, (4, -2, 6))
    ledger.release.set()
    assert await asyncio.gather(*tasks) == [20, 40, -20, 60]  # alone, -2 is written fine
    assert ledger.batches == [[2], [4, -2, 6], [4], [-2], [6]]


async def test_a_cancelled_submitter_still_has_its_item_written() -> None:
    ledger = Ledger()
    batches = GroupCommit(ledger.write)
    first, gone = await during_a_write(batches, ledger, (4,))
    gone.cancel()
    ledger.release.set()
    assert await first == 20
    with pytest.raises(asyncio.CancelledError):
        await gone
    await batches.wait_idle()
    assert ledger.batches == [[2], [4]]


async def test_with_two_writers_items_queue_only_when_both_are_busy() -> None:
    ledger = Ledger()
    ledger.release.clear()
    batches = GroupCommit(ledger.write, writers=2)
    tasks = [asyncio.create_task(batches.submit(2))]
    await settle()
    tasks.append(asyncio.create_task(batches.submit(4)))
    await settle()
    assert ledger.batches == [[2], [4]]  # each started a writer of its own
    tasks += [asyncio.create_task(batches.submit(item)) for item in (6, 8)]
    await settle()
    ledger.release.set()
    assert await asyncio.gather(*tasks) == [20, 40, 60, 80]
    assert ledger.batches == [[2], [4], [6, 8]]
    await batches.wait_idle()


async def test_a_spare_writer_waits_while_the_batch_in_flight_is_quick() -> None:
    ledger = Ledger()
    batches = GroupCommit(ledger.write, writers=2, spare_after=60)
    tasks = await during_a_write(batches, ledger, (4, 6))
    assert ledger.batches == [[2]]  # the items wait for the one writer's next batch
    ledger.release.set()
    assert await asyncio.gather(*tasks) == [20, 40, 60]
    assert ledger.batches == [[2], [4, 6]]
    await batches.wait_idle()


async def test_a_spare_writer_takes_what_waits_once_the_batch_in_flight_stalls() -> None:
    ledger = Ledger()
    batches = GroupCommit(ledger.write, writers=2, spare_after=0.05)
    tasks = await during_a_write(batches, ledger, (4, 6))
    assert ledger.batches == [[2]]
    # No new item arrives: the spare starts on its own once the first batch has
    # been writing for `spare_after`, while that batch is still held.
    await asyncio.sleep(0.1)
    assert ledger.batches == [[2], [4, 6]]
    ledger.release.set()
    assert await asyncio.gather(*tasks) == [20, 40, 60]
    await batches.wait_idle()
