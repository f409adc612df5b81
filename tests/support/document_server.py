"""A server on 127.0.0.1 answering GET requests from a table of paths, in a thread of the test
process: the discovery documents of the "Fill from issuer" tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DocumentServer:
    """``routes`` maps a path to a JSON-able document (served as application/json), to
    ``(status, body, content_type)``, or to ``("sleep", seconds)``; any other path answers 404.
    Every requested path is kept in ``requested``. ``{url}`` in a document's strings stands for
    the server's own URL."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.requested: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requested.append(self.path)
                server.answer(self, server.routes.get(self.path))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, handler: BaseHTTPRequestHandler, route: Any) -> None:
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
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up (a timeout under test)
            pass

    def __enter__(self) -> DocumentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
