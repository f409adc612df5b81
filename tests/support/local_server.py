"""A programmable HTTP server on 127.0.0.1, in a thread of the test process: the webhook
receiver (which checks each delivery's signature with the snippet of docs/events.md) and a
token endpoint that fails for a while."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from . import REPO_DIR
from .http_server import LoopbackServer

EVENTS_DOC = REPO_DIR / "docs" / "events.md"


def documented_verifier() -> Any:
    """``verify_alloy_oauth_webhook`` as docs/events.md gives it to receivers."""
    text = EVENTS_DOC.read_text()
    match = re.search(r"```python\n(import hashlib.*?def verify_alloy_oauth_webhook.*?)```",
                      text, re.S)
    assert match, "docs/events.md has no verification snippet"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)
    return namespace["verify_alloy_oauth_webhook"]


class LocalServer(LoopbackServer):
    """Answers each request with the next of ``answers`` (then with ``default``): a status,
    ``(status, json_body)``, ``("sleep", seconds, status)`` or ``("redirect", url)``. Every
    request is kept in ``requests`` (method, path, headers, body, and with a ``secret`` set,
    whether its signature verified)."""

    def __init__(self, secret: str | None = None, default: Any = 200) -> None:
        super().__init__()
        self.secret = secret
        self.default = default
        self.answers: deque[Any] = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.verify = documented_verifier() if secret else None

    def on_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            answer = self.answers.popleft() if self.answers else self.default
            record = {"path": handler.path, "headers": dict(handler.headers), "body": body,
                      "at": time.time()}
            if self.verify is not None:
                record["verified"] = self.verify(
                    self.secret, handler.headers.get("Alloy-OAuth-Signature", ""), body)
            self.requests.append(record)
        payload = b""
        headers = {}
        if isinstance(answer, tuple) and answer[0] == "sleep":
            time.sleep(answer[1])
            answer = answer[2]
        if isinstance(answer, tuple) and answer[0] == "redirect":
            answer, headers = 302, {"Location": answer[1]}
        elif isinstance(answer, tuple):
            answer, payload = answer[0], json.dumps(answer[1]).encode()
            headers = {"Content-Type": "application/json"}
        self.reply(handler, answer, payload, headers)

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests
