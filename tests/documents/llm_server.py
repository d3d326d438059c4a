"""A real HTTP server speaking the OpenAI chat-completions API, with scripted behaviour."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeLlm:
    #: What each call does, in order; the last entry repeats. "ok", "429", "500", "slow".
    script: list[str] = field(default_factory=lambda: ["ok"])
    slow_s: float = 2.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def next_action(self) -> str:
        index = min(len(self.requests) - 1, len(self.script) - 1)
        return self.script[index]


def _handler(llm: FakeLlm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            llm.requests.append(body)
            action = llm.next_action()
            if action in ("429", "500"):
                self._send(int(action), {"error": {"message": f"scripted {action}", "type": "x"}})
                return
            if action == "slow":
                time.sleep(llm.slow_s)
            words = body["messages"][-1]["content"].split()[:6]
            answer = f"Model summary {len(llm.requests)}: " + " ".join(words)
            self._send(
                200,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # the client gave up (timeout tests)
                self.wfile.write(data)

    return Handler


@contextmanager
def fake_llm(*script: str, slow_s: float = 2.0) -> Iterator[FakeLlm]:
    llm = FakeLlm(script=list(script) or ["ok"], slow_s=slow_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(llm))
    server.daemon_threads = True
    llm.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        server.shutdown()
        server.server_close()
