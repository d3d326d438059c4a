"""Whether a directory is on a local disk, where small file calls may run on the event loop.

On a local file system, creating a 100 KB file, writing, hashing and renaming it takes
well under a millisecond, less than handing it to a thread costs under load. On a
network file system (NFS, SMB, a FUSE mount of a bucket) each of those calls is a round
trip to a server, and on the event loop it would stall every request in the process.
So only file systems known to be local qualify; anything else, or a system without
Linux's mount table, keeps its file calls in threads.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

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


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field
