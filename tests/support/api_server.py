"""A tiny API on 127.0.0.1, in a thread of the test process, for what a connector's API
requests carry: it records every request (path with query, headers) and answers

- ``/redirect?to=<url>``: 302 to ``url``;
- ``/protected``: 200 when the request carries ``expected`` (a header and value, or a
  query parameter and value), else 401;
- anything else: 200 with ``{}``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class ApiServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.requests: list[dict[str, Any]] = []
        #: ("header", name, value) or ("query", name, value): what /protected accepts.
        self.expected: tuple[str, str, str] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        self.requests.append({"path": handler.path, "headers": dict(handler.headers),
                              "query": query})
        headers = {}
        status = 200
        if parts.path == "/redirect":
            status, headers = 302, {"Location": query["to"][0]}
        elif parts.path == "/protected":
            where, name, value = self.expected or ("", "", "")
            found = (handler.headers.get(name) if where == "header"
                     else (query.get(name) or [None])[0])
            status = 200 if found == value else 401
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"{}")

    def __enter__(self) -> ApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
