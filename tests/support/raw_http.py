"""For the tests' raw socket servers, which answer what no well-behaved server would."""

from __future__ import annotations

import socket


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
