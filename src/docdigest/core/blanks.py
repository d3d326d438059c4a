"""Files made ahead, in a thread, for writes on the event loop.

Making a file is a metadata call the kernel may take its time over: on most disks
about 0.1 ms of its CPU, but where it has to search for a free inode near the
directory it cost 0.3-1.5 ms, every upload, on the event loop (docs/performance.md,
"a twenty-seventh machine"). So a stock of empty files is kept, made a batch at a
time in a thread, and a new upload takes one. Uploads that empty it make the stock
larger, up to `MAX_STOCK`.

They are unnamed (O_TMPFILE): one that is never finished (an aborted upload, a
crash, a shutdown) leaves nothing behind, and the sweep of stale uploads never sees
one. `name` links a finished file into its directory. Where the file system or the
system cannot do that, the stock stays empty and files are made as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path

from docdigest.core.disk import linux_call

log = logging.getLogger(__name__)

#: Files kept ready at first: at 200 uploads a second, 80 ms of them. A refill starts
#: at half. Each time uploads find the stock empty it doubles, up to `MAX_STOCK`.
STOCK = 16
#: The most kept, each an open descriptor: at 700 uploads a second, 180 ms of them.
MAX_STOCK = 128


class BlankFiles:
    """Unnamed empty files in `directory`, open for writing: `stock` of them at first,
    more (up to `most`) once uploads find none."""

    def __init__(self, directory: Path, stock: int = STOCK, most: int = MAX_STOCK) -> None:
        self.directory = directory
        self._stock = stock
        self._most = max(most, stock)
        self._ready: deque[int] = deque()
        self._refill: asyncio.Future[list[int]] | None = None
        self._checked = False
        self._works = hasattr(os, "O_TMPFILE") and _linkat() is not None
        self._closed = False

    @property
    def ready(self) -> int:
        """How many files are in stock."""
        return len(self._ready)

    @property
    def stock(self) -> int:
        """How many files a refill makes up to."""
        return self._stock

    async def fill(self) -> None:
        """Fill the stock (at startup, so that the first uploads find it full)."""
        refill = self._start_refill()
        if refill is not None:
            await refill

    def take(self) -> int | None:
        """A file descriptor open for writing, or None: the stock is empty (the
        caller makes its file itself) or cannot be kept here. The caller closes it.
        Uploads that arrive faster than a refill comes back (a refill waits for the
        interpreter's lock between files while the loop is busy) empty the stock; each
        time they do, it doubles, so a steady load finds its files made ahead."""
        if len(self._ready) <= self._stock // 2:
            self._start_refill()
        if self._ready:
            return self._ready.popleft()
        if self._works:
            self._stock = min(self._stock * 2, self._most)
        return None

    def _start_refill(self) -> asyncio.Future[list[int]] | None:
        if self._works and not self._closed and self._refill is None:
            missing = self._stock - len(self._ready)
            refill = asyncio.get_running_loop().run_in_executor(None, self._make, missing)
            refill.add_done_callback(self._refilled)
            self._refill = refill
        return self._refill

    @staticmethod
    def name(fd: int, path: Path) -> None:
        """Link the file behind `fd` (taken from a stock) at `path`, on its file system."""
        link = _linkat()
        assert link is not None  # a stock is only kept where it is not
        source = f"/proc/self/fd/{fd}".encode()
        if link(AT_FDCWD, source, AT_FDCWD, os.fsencode(path), AT_SYMLINK_FOLLOW):
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(path))

    def close(self) -> None:
        """Close the files left in the stock (and any a refill brings later)."""
        self._closed = True
        while self._ready:
            os.close(self._ready.popleft())

    def _make(self, count: int) -> list[int]:
        """In a thread: up to `count` new files. The first refill checks that this
        place can have them at all, and a place that cannot never has a stock."""
        if not self._checked:
            try:
                self._check()
            except OSError as exc:
                self._works = False
                log.info(
                    "upload files are not made ahead here; each upload makes its own",
                    extra={"directory": str(self.directory), "reason": str(exc)},
                )
                return []
            self._checked = True
        made: list[int] = []
        with contextlib.suppress(OSError):  # out of descriptors or space: fewer for now
            while len(made) < count:
                made.append(self._open_blank())
        return made

    def _open_blank(self) -> int:
        flags, mode = os.O_TMPFILE | os.O_WRONLY, 0o666  # the mode open() gives a file
        try:
            return os.open(self.directory, flags, mode)
        except FileNotFoundError:  # not made yet, or removed under a running service
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(self.directory, flags, mode)

    def _check(self) -> None:
        """Make, name and remove one file, so that an upload never finds it cannot."""
        probe = self.directory / f".blank-check-{os.getpid()}"
        fd = self._open_blank()
        try:
            self.name(fd, probe)
            probe.unlink()
        finally:
            os.close(fd)

    def _refilled(self, refill: asyncio.Future[list[int]]) -> None:
        self._refill = None
        self._ready.extend([] if refill.cancelled() else refill.result())
        if self._closed:
            self.close()


AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400


def _linkat() -> Callable[..., int] | None:
    """linkat(2), which names an unnamed file through /proc/self/fd (os.link asks for
    AT_SYMLINK_FOLLOW only when it is also given a directory's descriptor)."""
    c_int, c_char_p = ctypes.c_int, ctypes.c_char_p
    return linux_call("linkat", c_int, c_char_p, c_int, c_char_p, c_int)
