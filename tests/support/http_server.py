"""What the tests' programmable HTTP servers share: a server on 127.0.0.1, in a thread of the
test process, started and stopped with ``with``. A subclass answers requests in
:meth:`LoopbackServer.on_get` and :meth:`LoopbackServer.on_post`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        #: The host name in :attr:`url`; the server always listens on 127.0.0.1.
        self.host = host
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.on_get(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.on_post(self, self.rfile.read(length))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def on_get(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_error(501, f"Unsupported method ({handler.command!r})")

    def on_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_error(501, f"Unsupported method ({handler.command!r})")

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
              headers: dict[str, str] | None = None) -> None:
        try:
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up (a timeout under test)
            pass

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
