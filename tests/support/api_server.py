"""A tiny API on 127.0.0.1, in a thread of the test process, for what a connector's API
requests carry: it records every request (path with query, headers) and answers

- ``/redirect?to=<url>``: 302 to ``url``;
- ``/protected``: 200 when the request carries ``expected`` (a header and value, or a
  query parameter and value), else 401;
- anything else: 200 with ``{}``.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .http_server import LoopbackServer


class ApiServer(LoopbackServer):
    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.requests: list[dict[str, Any]] = []
        #: ("header", name, value) or ("query", name, value): what /protected accepts.
        self.expected: tuple[str, str, str] | None = None

    def on_get(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        self.requests.append({"path": handler.path, "headers": dict(handler.headers),
                              "query": query})
        headers = {"Content-Type": "application/json"}
        status = 200
        if parts.path == "/redirect":
            status, headers["Location"] = 302, query["to"][0]
        elif parts.path == "/protected":
            where, name, value = self.expected or ("", "", "")
            found = (handler.headers.get(name) if where == "header"
                     else (query.get(name) or [None])[0])
            status = 200 if found == value else 401
        self.reply(handler, status, b"{}", headers)
