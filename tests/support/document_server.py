"""A server on 127.0.0.1 answering GET requests from a table of paths, in a thread of the test
process: the discovery documents of the "Fill from issuer" tests."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http_server import LoopbackServer


class DocumentServer(LoopbackServer):
    """``routes`` maps a path to a JSON-able document (served as application/json), to
    ``(status, body, content_type)``, or to ``("sleep", seconds)``; any other path answers 404.
    Every requested path is kept in ``requested``. ``{url}`` in a document's strings stands for
    the server's own URL."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Any] = {}
        self.requested: list[str] = []

    def on_get(self, handler: BaseHTTPRequestHandler) -> None:
        self.requested.append(handler.path)
        route = self.routes.get(handler.path)
        if isinstance(route, tuple) and route[0] == "sleep":
            time.sleep(route[1])
            route = None
        if route is None:
            status, body, content_type = 404, b"not found", "text/plain"
        elif isinstance(route, tuple):
            status, body, content_type = route
            body = body.encode() if isinstance(body, str) else body
        else:
            status, content_type = 200, "application/json"
            body = json.dumps(route).replace("{url}", self.url).encode()
        self.reply(handler, status, body, {"Content-Type": content_type})
