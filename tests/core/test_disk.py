"""Which file systems count as a local disk, read from the kernel's mount table."""

from __future__ import annotations

from pathlib import Path

import pytest

from docdigest.core.disk import LOCAL_TYPES, filesystem_type

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
