"""Which of a file's pages the kernel still holds dirty, read from its page flags.

Linux only, and only as root: a process's page map gives page frame numbers to
root alone, and `/proc/kpageflags` is root's to read. `unmeasurable` says why when
they cannot be read, and `skip_unless_measurable` skips a test with that reason.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import time
from pathlib import Path

import pytest

from docdigest.core.disk import MOUNT_TABLE, filesystem_type

PAGE = mmap.PAGESIZE
KPF_DIRTY = 1 << 4
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63
KPAGEFLAGS = Path("/proc/kpageflags")


MEMORY_TYPES = {"tmpfs", "ramfs"}


def unmeasurable(directory: Path) -> str | None:
    """Why the writeback of files in `directory` cannot be watched here, or None."""
    if not KPAGEFLAGS.exists():
        return "no /proc/kpageflags (not Linux)"
    if os.geteuid() != 0:
        return "page flags are readable by root only"
    kind = filesystem_type(Path(os.path.realpath(directory)), MOUNT_TABLE.read_text())
    if kind is None or kind in MEMORY_TYPES:
        return f"{directory} is not on a disk ({kind}): its files are never written back"
    return None


def skip_unless_measurable(directory: Path) -> None:
    """Skip the calling test, saying why, where `unmeasurable` gives a reason."""
    reason = unmeasurable(directory)
    if reason:
        pytest.skip(reason)


def dirty_pages(path: Path) -> int:
    """How many of `path`'s pages are dirty in the page cache (written, not yet on disk)."""
    size = path.stat().st_size
    pages = -(-size // PAGE)
    with path.open("rb") as handle:
        # A private mapping: reading maps the page cache's own pages and writes nothing.
        mapping = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY)
    try:
        view = ctypes.c_char.from_buffer(mapping)
        start = ctypes.addressof(view) // PAGE
        del view
        for page in range(pages):
            mapping[page * PAGE]  # fault each page in
        with open("/proc/self/pagemap", "rb") as page_map, KPAGEFLAGS.open("rb") as flags:
            page_map.seek(start * 8)
            dirty = 0
            for entry in struct.unpack(f"{pages}Q", page_map.read(8 * pages)):
                assert entry & PRESENT and entry & PFN_MASK, "page not mapped"
                flags.seek((entry & PFN_MASK) * 8)
                dirty += bool(struct.unpack("Q", flags.read(8))[0] & KPF_DIRTY)
            return dirty
    finally:
        mapping.close()


def wait_until_clean(path: Path, timeout_s: float = 5.0) -> int:
    """Poll until none of `path`'s pages is dirty; the dirty count at the end.

    Left alone, the kernel writes a file's dirty pages out only after they have aged
    (30 s by default), so a file still dirty after a few seconds was never started.
    """
    deadline = time.monotonic() + timeout_s
    while (dirty := dirty_pages(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return dirty
