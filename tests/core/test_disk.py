"""Which file systems count as a local disk, read from the kernel's mount table; and a
written file started on its way to the disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docdigest.core.disk import LOCAL_TYPES, filesystem_type, start_writeback
from tests import pagecache

MOUNTS = "\n".join(
    [
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        "25 22 0:23 / /dev/shm rw,nosuid shared:3 - tmpfs tmpfs rw,size=1024k",
        "95 22 0:52 / /srv/data rw,relatime shared:40 - nfs4 files.example:/export rw",
        r"96 22 0:53 / /mnt/team\040share rw - cifs //nas/team rw",
        "97 95 0:54 / /srv/data/cache rw - xfs /dev/sdb1 rw",
        "98 22 0:55 / /mnt/bucket rw,nosuid - fuse.s3fs s3fs rw",
    ]
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/var/lib/docdigest/tmp", "ext4"),
        ("/dev/shm/uploads", "tmpfs"),
        ("/srv/data", "nfs4"),
        ("/srv/data/tmp", "nfs4"),
        ("/srv/data2/tmp", "ext4"),  # a sibling whose name merely starts the same
        ("/srv/data/cache/files", "xfs"),  # the deepest mount wins
        ("/mnt/team share/files", "cifs"),  # the kernel escapes the space
        ("/mnt/bucket/files", "fuse.s3fs"),
    ],
)
def test_the_deepest_mount_holding_a_path_gives_its_type(path: str, expected: str) -> None:
    assert filesystem_type(Path(path), MOUNTS) == expected


def test_only_local_file_systems_count_as_a_local_disk() -> None:
    assert {"ext4", "xfs", "btrfs", "tmpfs", "overlay"} <= LOCAL_TYPES
    assert not {"nfs", "nfs4", "cifs", "fuse.s3fs", "ceph"} & LOCAL_TYPES


def test_a_table_without_the_path_gives_no_type() -> None:
    assert filesystem_type(Path("/srv"), "") is None


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    """A directory whose files the kernel writes back to a disk, with page flags
    readable; the test is skipped, saying why, where either is missing."""
    pagecache.skip_unless_measurable(tmp_path)
    return tmp_path


def test_a_file_started_on_its_way_to_the_disk_is_soon_written(disk_dir: Path) -> None:
    path = disk_dir / "written"
    with path.open("wb") as handle:
        handle.write(os.urandom(1024 * 1024))
        handle.flush()
        assert pagecache.dirty_pages(path) > 0  # the kernel has not written it yet

        assert start_writeback(handle.fileno())

    assert pagecache.wait_until_clean(path) == 0
    assert path.stat().st_size == 1024 * 1024


def test_a_file_left_alone_stays_dirty(disk_dir: Path) -> None:
    """The other side of the test above: without the call, nothing is written soon."""
    path = disk_dir / "left"
    path.write_bytes(os.urandom(1024 * 1024))

    assert pagecache.wait_until_clean(path, timeout_s=1.0) > 0


def test_starting_writeback_of_what_is_no_file_is_refused_quietly() -> None:
    read_end, write_end = os.pipe()
    try:
        assert start_writeback(read_end) is False
    finally:
        os.close(read_end)
        os.close(write_end)
