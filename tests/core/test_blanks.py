"""Files made ahead in a thread: unnamed until written, made again as they are taken,
more of them kept once they run out, closed with their stock, and simply absent where
the file system cannot have them."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from docdigest.core.blanks import STOCK, BlankFiles
from tests.openfiles import unnamed_held


@pytest.fixture
async def blanks(tmp_path: Path) -> AsyncIterator[BlankFiles]:
    stock = BlankFiles(tmp_path / "uploads")
    await stock.fill()
    if stock.ready == 0:
        pytest.skip("this file system cannot make unnamed files (O_TMPFILE)")
    yield stock
    stock.close()


async def test_files_are_made_ahead_unnamed_and_named_once_written(
    blanks: BlankFiles,
) -> None:
    assert blanks.ready == STOCK
    assert unnamed_held(blanks.directory) == STOCK
    assert list(blanks.directory.iterdir()) == []  # nothing a listing or a sweep sees
    fd = blanks.take()
    assert fd is not None
    os.write(fd, b"the whole upload")

    path = blanks.directory / "upload.part"
    BlankFiles.name(fd, path)
    os.close(fd)

    assert list(blanks.directory.iterdir()) == [path]
    assert path.read_bytes() == b"the whole upload"
    assert unnamed_held(blanks.directory) == STOCK - 1


async def test_a_stock_taken_down_to_half_is_made_again_in_a_thread(
    blanks: BlankFiles,
) -> None:
    taken = [blanks.take() for _ in range(STOCK // 2 + 1)]  # the last starts a refill
    assert None not in taken
    assert blanks.ready == STOCK // 2 - 1

    await blanks.fill()  # waits for the refill under way

    assert blanks.ready == STOCK - 1
    for fd in taken:
        os.close(fd)  # type: ignore[arg-type]


async def test_an_empty_stock_gives_nothing_until_it_is_made_again(tmp_path: Path) -> None:
    """The caller then makes its own file, as it would without a stock."""
    blanks = BlankFiles(tmp_path, stock=2)
    assert blanks.take() is None  # the first take starts the first refill
    await blanks.fill()
    if blanks.ready == 0:
        pytest.skip("this file system cannot make unnamed files (O_TMPFILE)")
    taken = [blanks.take(), blanks.take(), blanks.take()]

    assert taken[2] is None
    await blanks.fill()
    taken.append(blanks.take())
    assert taken[3] is not None
    blanks.close()
    for fd in (taken[0], taken[1], taken[3]):
        os.close(fd)  # type: ignore[arg-type]


async def test_a_stock_that_runs_out_grows_up_to_its_most(tmp_path: Path) -> None:
    """Uploads arriving together faster than a refill comes back: the next refills
    keep more files, so that a steady load finds its files made ahead."""
    blanks = BlankFiles(tmp_path, stock=4, most=8)
    await blanks.fill()
    if blanks.ready == 0:
        pytest.skip("this file system cannot make unnamed files (O_TMPFILE)")

    taken = [blanks.take() for _ in range(5)]  # a refill cannot come back between them
    assert taken[4] is None
    assert blanks.stock == 8
    await blanks.fill()  # the refill under way, started at half of the old stock
    await blanks.fill()  # and one up to the new
    assert blanks.ready == 8

    taken += [blanks.take() for _ in range(9)]
    assert taken[-1] is None
    assert blanks.stock == 8  # never past its most
    blanks.close()
    for fd in taken:
        if fd is not None:
            os.close(fd)


async def test_closing_closes_the_stock_and_what_a_refill_brings_after(
    blanks: BlankFiles,
) -> None:
    while blanks.ready > STOCK // 2:
        fd = blanks.take()
        assert fd is not None
        os.close(fd)
    taken = blanks.take()  # starts a refill
    assert taken is not None

    blanks.close()
    await blanks.fill()  # the refill under way

    assert blanks.ready == 0
    assert unnamed_held(blanks.directory) == 1  # the one taken, which its taker closes
    assert blanks.take() is None
    os.close(taken)


async def test_a_removed_directory_is_made_again(blanks: BlankFiles) -> None:
    """An operator clearing the upload directory, or a cleaner of temporary files."""
    blanks.directory.rmdir()  # the stock's files have no names: it is empty
    taken = [blanks.take() for _ in range(STOCK // 2 + 1)]  # the last starts a refill

    await blanks.fill()

    assert blanks.ready == STOCK - 1
    assert blanks.directory.is_dir()
    for fd in taken:
        os.close(fd)  # type: ignore[arg-type]


async def test_where_unnamed_files_cannot_be_made_the_stock_stays_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As on a file system without O_TMPFILE (a network one, say): the kernel's
    answer is what is played here, since no such file system is mounted."""
    real_open = os.open

    def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    caplog.set_level(logging.INFO, logger="docdigest.core.blanks")
    blanks = BlankFiles(tmp_path)

    await blanks.fill()
    await blanks.fill()

    assert blanks.ready == 0
    assert blanks.take() is None
    assert list(tmp_path.iterdir()) == []  # the check leaves nothing either
    # said once, for the operator, with the kernel's reason
    [said] = [r for r in caplog.records if r.name == "docdigest.core.blanks"]
    assert "not made ahead" in said.getMessage()
    assert "Operation not supported" in said.__dict__["reason"]
