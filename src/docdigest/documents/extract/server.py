"""The extraction fork server: imports the converters once, then forks one child per file.

Run by sandbox.py as `python -m docdigest.documents.extract.server SOCKET`. Each
connection carries one request; the child that serves it sends its pid, applies
its limits, extracts and sends the result; once the child is reaped the server
sends its exit status, so the client can tell a crash from a kill by the limits.
Messages are length-prefixed JSON (never pickle: the child handled hostile input).
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from docdigest.core.heap import freeze_startup_heap
from docdigest.documents.extract.protocol import (
    MEMORY_REASON,
    reached_memory_limit,
    receive_message,
    send_message,
)


def preload() -> None:
    """What every child would otherwise import for itself, then out of the collector's way.

    The converters' modules are most of this process's objects. Frozen, they are
    left out of every collection a child makes: a child parsing a document makes
    many objects and so runs full collections, and each used to walk every one of
    them and write to their headers, copying the pages that held them. Frozen,
    a DOCX takes about 40 % less CPU to extract and a PDF about 25 % less.
    """
    import docdigest.documents.extract.formats  # noqa: F401

    freeze_startup_heap()


def serve(socket_path: str) -> None:
    preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "reap")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    children: dict[int, socket.socket] = {}
    print("ready", flush=True)
    # Nobody reads our stdout after "ready": a chatty converter must not fill that pipe.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        while True:
            for key, _ in selector.select():
                if key.data == "accept":
                    conn, _ = listener.accept()
                    _fork_child(conn, listener, children)
                elif key.data == "reap":
                    wake_r.recv(4096)
                    _reap(children)
                elif not os.read(sys.stdin.fileno(), 4096):
                    return  # our parent, the worker, is gone
    finally:
        for pid in children:
            _kill(pid)
        Path(socket_path).unlink(missing_ok=True)


def _fork_child(
    conn: socket.socket, listener: socket.socket, children: dict[int, socket.socket]
) -> None:
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)  # its own group, so a timeout kills its helpers too
        listener.close()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        code = 0
        try:
            _serve_request(conn)
        except BaseException:
            code = 70
        os._exit(code)
    children[pid] = conn


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with contextlib.suppress(OSError):  # the client may have its answer and be gone
            send_message(conn, {"exit": code})
        conn.close()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _serve_request(conn: socket.socket) -> None:
    from docdigest.documents.extract.formats import extract
    from docdigest.documents.extract.result import Unreadable

    request = receive_message(conn)
    if request is None:
        return
    budget = _apply_limits(request["cpu_s"], request["memory_mb"])
    _report_on_cpu_limit(conn, budget)
    send_message(conn, {"pid": os.getpid(), "budget": budget})
    try:
        result = extract(Path(request["path"]), request["content_type"], request["max_chars"])
        reply: dict[str, Any] = {"text": result.text, "note": result.note, "pages": result.pages}
    except Unreadable as exc:
        reply = {"error": str(exc)}
    except MemoryError:
        reply = {"error": MEMORY_REASON}
    except Exception as exc:
        memory = "memory" in str(exc).lower() or "alloc" in str(exc).lower()
        reply = {"error": MEMORY_REASON if memory else "file is corrupt"}
    try:
        send_message(conn, reply)
    except MemoryError:
        send_message(conn, {"error": MEMORY_REASON})


def _report_on_cpu_limit(conn: socket.socket, budget: int) -> None:
    """On SIGXCPU, say which limit was really hit before dying.

    Some parsers swallow MemoryError and retry until the CPU limit ends them,
    so a child that reached its memory ceiling reports that, not the CPU time.
    """

    def handler(signum: int, frame: object) -> None:
        reason = MEMORY_REASON if reached_memory_limit(os.getpid(), budget) else "cpu"
        with contextlib.suppress(Exception):
            send_message(conn, {"error": reason})
        os._exit(0)

    signal.signal(signal.SIGXCPU, handler)


def _apply_limits(cpu_s: int, memory_mb: int) -> int:
    """Apply the limits to this process; returns its address-space budget in bytes.

    The soft CPU limit sends SIGXCPU; the hard one a second later is SIGKILL
    for native code that never returns to Python. The memory limit is headroom
    above what the preloaded converters already map, so it means the same
    whatever they weigh.
    """
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    with Path("/proc/self/statm").open() as handle:
        mapped = int(handle.read().split()[0]) * resource.getpagesize()
    budget = mapped + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (budget, budget))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return budget


if __name__ == "__main__":
    serve(sys.argv[1])
