"""Files this process holds open that have no name: a stock of files made ahead, and
any that an upload took and failed to close."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def unnamed_held(directory: Path) -> int:
    """How many unnamed files in `directory` this process holds open (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listing the folder itself
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(f"{directory}/#")
    return count
