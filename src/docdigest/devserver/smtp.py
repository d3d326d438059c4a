"""The local SMTP catcher for `docdigest run`: keeps every message for the dev mail page.

Run as its own process: `python -m docdigest.devserver.smtp PORT MAIL_DIR`.
"""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def store(mail_dir: Path, raw: bytes) -> None:
    try:
        from docdigest.mail.devmail import DevMailbox
    except ModuleNotFoundError:
        # Before the mailbox exists, plain .eml files still let a person read the mail.
        mail_dir.mkdir(parents=True, exist_ok=True)
        (mail_dir / f"{uuid.uuid4().hex}.eml").write_bytes(raw)
        return
    DevMailbox(mail_dir).add(raw)


class KeepEverything:
    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        store(self.mail_dir, envelope.content)
        print(f"received mail for {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 OK"


def serve(port: int, mail_dir: Path) -> None:
    controller = Controller(KeepEverything(mail_dir), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"catching mail on 127.0.0.1:{port}, kept in {mail_dir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    controller.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
