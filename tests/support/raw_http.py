"""The tests' raw socket servers, which answer what no well-behaved server would: as slowly,
as malformed or as large as a test needs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def read_http_request(conn: socket.socket) -> bytes:
    """Read one whole HTTP request from ``conn`` (headers and Content-Length body), for the
    tests' raw socket servers: closing a socket with unread input resets the connection, and
    the client would see a reset instead of the answer under test."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@contextmanager
def raw_server(answer: Callable[[socket.socket], None], seen: list[bytes] | None = None
               ) -> Iterator[str]:
    """A server on 127.0.0.1 that reads each request (into ``seen``) and lets ``answer`` write
    to the socket (as slowly as it likes); yields its base URL. Stopping it ends every answer
    early."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()
    connections: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn: socket.socket) -> None:
        try:
            request = read_http_request(conn)
            if seen is not None:
                seen.append(request)
            answer(conn)
        except OSError:
            pass
        finally:
            conn.close()

    answer.stop = stop  # type: ignore[attr-defined]
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        for sock in [server, *connections]:  # wakes accept() and every answer
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.close()
        thread.join(5)


def trickle(data: bytes, *, every: float = 0.05, first: bytes = b"", then: bytes = b""
            ) -> Callable:
    """An answer that sends ``first``, then ``data`` one byte every ``every`` seconds, then
    ``then``."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(first)
        for byte in data:
            if answer.stop.is_set():  # type: ignore[attr-defined]
                return
            conn.sendall(bytes([byte]))
            time.sleep(every)
        conn.sendall(then)

    return answer


def at_once(data: bytes) -> Callable:
    def answer(conn: socket.socket) -> None:
        conn.sendall(data)

    return answer


def response(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
