"""What the worker and the extraction fork server agree on: length-prefixed JSON messages
and how to tell that a child ran out of memory.

JSON, never pickle: the other end may be a child that just parsed a hostile file.
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

MEMORY_REASON = "extraction exceeded memory limit"

_HEADER = struct.Struct("!I")


def send_message(conn: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    conn.sendall(_HEADER.pack(len(body)) + body)


def receive_message(conn: socket.socket) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    header = _read_exactly(conn, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(conn, _HEADER.unpack(header)[0])
    if body is None:
        return None
    message = json.loads(body)
    return message if isinstance(message, dict) else None


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def reached_memory_limit(pid: int, budget: int) -> bool:
    """Whether process `pid` has mapped (nearly) all the address space it may."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024 >= budget - 4 * 1024 * 1024
    return False
