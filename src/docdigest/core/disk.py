"""Local disks: whether a directory is on one, where small file calls may run on the
event loop, and starting a written file's way to the disk at once.

On a local file system, creating a 100 KB file, writing, hashing and renaming it takes
well under a millisecond, less than handing it to a thread costs under load. On a
network file system (NFS, SMB, a FUSE mount of a bucket) each of those calls is a round
trip to a server, and on the event loop it would stall every request in the process.
So only file systems known to be local qualify; anything else, or a system without
Linux's mount table, keeps its file calls in threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")

MOUNT_TABLE = Path("/proc/self/mountinfo")
LOCAL_TYPES = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "jfs", "reiserfs"}
    | {"tmpfs", "ramfs", "overlay"}
)


def filesystem_type(path: Path, mount_table: str) -> str | None:
    """The type of the file system holding `path`, from a `/proc/<pid>/mountinfo` text."""
    best, best_type = -1, None
    target = str(path)
    for line in mount_table.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        mount_point = _unescape(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= best:
            best, best_type = len(mount_point), fields[fields.index("-") + 1]
    return best_type


@functools.cache
def on_local_disk(directory: Path) -> bool:
    """True when `directory` (which need not exist yet) is on a local file system.

    Read once per directory and process: mounts do not move under a running service.
    """
    try:
        table = MOUNT_TABLE.read_text()
    except OSError:
        return False
    return filesystem_type(Path(os.path.realpath(directory)), table) in LOCAL_TYPES


def making_parent(path: Path, call: Callable[[], T]) -> T:
    """`call()`, which puts a file at `path`; when the file's directory is missing (the
    first file there, or someone removed it), the directory is made and the call tried
    again. Cheaper than making sure of the directory before every file, which costs a
    `mkdir` and a `stat` each time, and on a network file system two round trips.
    """
    try:
        return call()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return call()


#: sync_file_range(2)'s flag that starts writing a range's dirty pages and returns.
SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> bool:
    """Start writing the file's dirty pages to the disk now, without waiting for them:
    `length` bytes from `offset`, or with a length of 0 all from `offset` on.

    Left to the kernel, written files stay dirty in memory until its flusher writes
    them out together every few seconds, and a database's commits on the same disk
    wait behind that burst: with uploads at 200 a second, PostgreSQL's commits took
    40-50 ms once every 5 s, which set the upload p99 (docs/performance.md, "an
    eleventh machine"). Started file by file, the writes stay small and spread out,
    as PostgreSQL does for its own files (`checkpoint_flush_after`), at about 0.2 ms
    of CPU for a 100 KB file. The pages stay cached for the reader that follows.
    Linux only: elsewhere, or where the file system refuses, it does nothing and
    returns False.
    """
    call = linux_call(
        "sync_file_range", ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint
    )
    return call is not None and call(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0


@functools.cache
def linux_call(name: str, *argtypes: type[ctypes._SimpleCData[Any]]) -> Callable[..., int] | None:
    """The C library's `name`, taking `argtypes` and returning an int with errno kept
    (`ctypes.get_errno()`), for Linux calls Python's `os` does not offer as needed;
    None on other systems or where the library lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return cast("Callable[..., int]", function)


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field
