"""A token endpoint that rotates refresh tokens and catches their reuse, for the fleet
benchmark (``bench/fleet.py``) and the tests: asyncio streams with HTTP/1.1 keep-alive,
standard library only, in a process of its own, on 127.0.0.1.

Grants are seeded: grant ``g`` (``0 … grants-1``) starts at generation 0, and its refresh
token is ``rt-<g>-<generation>`` (:func:`refresh_token`). A refresh with the current one
rotates the grant: after ``latency_ms`` the answer carries ``at-<g>-<n+1>`` and
``rt-<g>-<n+1>``. Presenting an older refresh token is a *reuse*: it is counted, the grant is
revoked (django-oauth-toolkit's reuse protection revokes the whole token family) and the
answer is ``400 {"error": "invalid_grant"}``, as it is for a token never issued or of a
revoked grant (counted as ``refused``). The client authenticates with HTTP Basic (RFC 6749
§2.3.1 encoding) or in the body; a wrong one gets ``401 invalid_client``.

Faults, for fault tests: a fraction of the token requests answered 500 (``fail_500``), 429
with ``Retry-After`` (``fail_429``), or held ``hang_seconds`` and then dropped without an
answer (``hang``). They are drawn per request from a RNG seeded with ``seed``, before the
grant is looked at: a faulted request rotates nothing. Nor does a request whose client has
gone (its connection closed) by the time the answer is due: it is counted as ``abandoned``.

``GET /stats`` answers at once with the counters (token requests, refreshed, reused,
refused, unauthorized, faults; connections accepted; connections open and requests in flight,
with their peaks);
``/stats?generations=1`` adds each grant's current generation. ``POST /stall?on=1`` holds
every token request before it is processed, until ``POST /stall?on=0``. Run it by hand with
``python tests/support/token_endpoint.py --grants 10 --latency-ms 200``: its first line of output is
``{"port": …}``. It stops when terminated, when its standard input (a pipe) closes, which
happens when the process that started it dies, or after ``lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import stat
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REPO_DIR = Path(__file__).resolve().parents[2]  # (also run as a script: no package imports)
CLIENT_ID = "fleet-client"
CLIENT_SECRET = "fleet-secret"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error"}


def refresh_token(grant: int, generation: int) -> str:
    """The refresh token of ``grant`` at ``generation`` (0: as seeded)."""
    return f"rt-{grant}-{generation}"


def access_token(grant: int, generation: int) -> str:
    return f"at-{grant}-{generation}"


# --- the launcher (in the benchmark's or the test's process) ------------------------------


@dataclass
class TokenEndpoint:
    """The endpoint in a process of its own: ``with TokenEndpoint(grants=10) as endpoint:``
    then ``endpoint.url`` and ``endpoint.stats()``."""

    grants: int = 0
    latency_ms: float = 200
    expires_in: int = 3600
    fail_500: float = 0.0
    fail_429: float = 0.0
    hang: float = 0.0
    retry_after: int = 1
    hang_seconds: float = 30.0
    seed: int = 0
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    lifetime: float = 1800.0
    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def arguments(self) -> list[str]:
        return [f"--grants={self.grants}", f"--latency-ms={self.latency_ms}",
                f"--expires-in={self.expires_in}", f"--fail-500={self.fail_500}",
                f"--fail-429={self.fail_429}", f"--hang={self.hang}",
                f"--retry-after={self.retry_after}", f"--hang-seconds={self.hang_seconds}",
                f"--seed={self.seed}", f"--client-id={self.client_id}",
                f"--client-secret={self.client_secret}", f"--lifetime={self.lifetime}"]

    def start(self) -> TokenEndpoint:
        # stdin is a pipe that only this process holds: when it dies, the endpoint sees EOF
        # and stops. Its own session: a Ctrl-C in the terminal reaches the starter, which
        # stops the endpoint when it is done with it.
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *self.arguments()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO_DIR,
            start_new_session=True,
        )
        try:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"The token endpoint exited ({self.process.wait()}).")
            self.port = json.loads(line)["port"]
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        from tests.support.provider_server import terminate  # (not needed by the server itself)

        if self.process is None:
            return
        terminate(self.process)
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()

    def __enter__(self) -> TokenEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self, generations: bool = False) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/stats" + ("?generations=1" if generations else "")
        with urllib.request.urlopen(url, timeout=30) as answer:
            return json.load(answer)

    def stall(self, stalled: bool) -> None:
        """Hold every token request, once its latency is over, until :meth:`stall` is called
        with False: requests in flight at the provider, none processed, no answer on its way
        (a fault test kills a worker at such a moment)."""
        url = f"http://127.0.0.1:{self.port}/stall?on={int(stalled)}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30):
            pass


# --- the server (in its own process) ------------------------------------------------------


class Server:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.latency = options.latency_ms / 1000
        self.generations = [0] * options.grants
        self.revoked: set[int] = set()
        self.random = random.Random(options.seed)
        self.stalled = False
        self.counters = dict(requests=0, refreshed=0, reused=0, refused=0, unauthorized=0,
                             abandoned=0,
                             in_flight=0, peak_in_flight=0, connections=0, peak_connections=0,
                             accepted=0)
        self.faults = {"500": 0, "429": 0, "hang": 0}

    def count(self, name: str, step: int = 1) -> None:
        self.counters[name] += step
        if f"peak_{name}" in self.counters:
            peak = f"peak_{name}"
            self.counters[peak] = max(self.counters[peak], self.counters[name])

    async def connection(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        """One client connection: requests one after another while it keeps it alive."""
        self.count("accepted")
        self.count("connections")
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines:
                    name, colon, value = line.partition(":")
                    if colon:
                        headers[name.strip().lower()] = value.strip()
                try:
                    method, target, version = request_line.split(" ", 2)
                    body = await reader.readexactly(int(headers.get("content-length", 0)))
                except (ValueError, asyncio.IncompleteReadError, ConnectionError):
                    return
                if "chunked" in headers.get("transfer-encoding", ""):
                    answer = (400, {}, {"error": "invalid_request"})  # clients send a length
                else:
                    answer = await self.answer(method, target, headers, body,
                                               gone=reader.at_eof)
                if answer is None:  # a hang: dropped without an answer
                    return
                keep_alive = (version == "HTTP/1.1"
                              and headers.get("connection", "").lower() != "close")
                writer.write(response(*answer, keep_alive=keep_alive))
                await writer.drain()
                if not keep_alive:
                    return
        except ConnectionError:
            return
        finally:
            self.count("connections", -1)
            writer.close()

    async def answer(self, method: str, target: str, headers: dict[str, str], body: bytes,
                     gone: Callable[[], bool]) -> tuple[int, dict[str, str], Any] | None:
        path = urlsplit(target)
        if path.path == "/stats" and method == "GET":
            return 200, {}, self.stats("generations=1" in path.query)
        if path.path == "/stall" and method == "POST":
            self.stalled = "on=1" in path.query
            return 200, {}, {"stalled": self.stalled}
        if path.path != "/token":
            return 404, {}, {"error": "not_found"}
        if method != "POST":
            return 405, {"Allow": "POST"}, {"error": "invalid_request"}
        self.count("requests")
        self.count("in_flight")
        try:
            return await self.token_request(headers, body, gone)
        finally:
            self.count("in_flight", -1)

    async def token_request(self, headers: dict[str, str], body: bytes,
                            gone: Callable[[], bool]) -> tuple[int, dict[str, str], Any] | None:
        options = self.options
        draw = self.random.random()
        if draw < options.hang:
            self.faults["hang"] += 1
            await asyncio.sleep(options.hang_seconds)
            return None
        await asyncio.sleep(self.latency)
        if draw < options.hang + options.fail_500:
            self.faults["500"] += 1
            return 500, {}, "Internal Server Error"
        if draw < options.hang + options.fail_500 + options.fail_429:
            self.faults["429"] += 1
            return 429, {"Retry-After": str(options.retry_after)}, {"error": "rate_limited"}
        form = {name: values[0] for name, values in
                parse_qs(body.decode("latin-1"), keep_blank_values=True).items()}
        if not self.authenticated(headers, form):
            self.count("unauthorized")
            return 401, {"WWW-Authenticate": 'Basic realm="token"'}, {"error": "invalid_client"}
        if form.get("grant_type") != "refresh_token":
            return 400, {}, {"error": "unsupported_grant_type"}
        while self.stalled:
            await asyncio.sleep(0.01)
        if gone():
            # The client went away (a worker killed mid-request) before the provider took the
            # request in: it is not processed. (Had it rotated, no client could have stored
            # the answer: the one loss no refresh engine can prevent, docs/refresh.md.)
            self.count("abandoned")
            return None
        return self.rotate(form.get("refresh_token", ""))

    def authenticated(self, headers: dict[str, str], form: dict[str, str]) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except ValueError:
                return False
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)  # RFC 6749 §2.3.1
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.options.client_id and secret == self.options.client_secret

    def rotate(self, presented: str) -> tuple[int, dict[str, str], Any]:
        """One refresh, atomic: the event loop runs one request's code at a time."""
        prefix, _, rest = presented.partition("-")
        grant, _, generation = rest.partition("-")
        if (prefix != "rt" or not grant.isdigit() or not generation.isdigit()
                or int(grant) >= len(self.generations)):
            self.count("refused")
            return 400, {}, {"error": "invalid_grant"}
        grant_id, generation_id = int(grant), int(generation)
        current = self.generations[grant_id]
        if generation_id < current:
            self.count("reused")
            self.revoked.add(grant_id)
            return 400, {}, {"error": "invalid_grant",
                             "error_description": "The refresh token was used before."}
        if generation_id > current or grant_id in self.revoked:
            self.count("refused")
            return 400, {}, {"error": "invalid_grant"}
        self.generations[grant_id] = current + 1
        self.count("refreshed")
        return 200, {"Cache-Control": "no-store"}, {
            "access_token": access_token(grant_id, current + 1), "token_type": "Bearer",
            "expires_in": self.options.expires_in,
            "refresh_token": refresh_token(grant_id, current + 1),
        }

    def stats(self, generations: bool) -> dict[str, Any]:
        stats: dict[str, Any] = {**self.counters, "faults": dict(self.faults),
                                 "grants": len(self.generations),
                                 "revoked": sorted(self.revoked)}
        if generations:
            stats["generations"] = list(self.generations)
        return stats


def response(status: int, headers: dict[str, str], payload: Any, *, keep_alive: bool) -> bytes:
    if isinstance(payload, str):
        body, content_type = payload.encode(), "text/plain"
    else:
        body, content_type = json.dumps(payload).encode(), "application/json"
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
             f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
             "Connection: " + ("keep-alive" if keep_alive else "close"),
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def serve(options: argparse.Namespace) -> None:
    server = Server(options)
    listener = await asyncio.start_server(server.connection, "127.0.0.1", options.port,
                                          backlog=4096, limit=65536)
    print(json.dumps({"port": listener.sockets[0].getsockname()[1]}), flush=True)
    stopped = asyncio.get_running_loop().create_future()
    if stat.S_ISFIFO(os.fstat(0).st_mode):  # started through a pipe: stop when it closes
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def watch() -> None:
            await reader.read()  # returns at EOF
            if not stopped.done():
                stopped.set_result(None)

        asyncio.ensure_future(watch())
    async with listener:
        try:
            await asyncio.wait_for(stopped, options.lifetime)
        except asyncio.TimeoutError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--grants", type=int, default=0, help="grants 0 … N-1, generation 0")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--expires-in", type=int, default=3600)
    parser.add_argument("--fail-500", type=float, default=0.0, help="fraction answered 500")
    parser.add_argument("--fail-429", type=float, default=0.0,
                        help="fraction answered 429 with Retry-After")
    parser.add_argument("--hang", type=float, default=0.0,
                        help="fraction held --hang-seconds, then dropped without an answer")
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0, help="seeds the faults' RNG")
    parser.add_argument("--client-id", default=CLIENT_ID)
    parser.add_argument("--client-secret", default=CLIENT_SECRET)
    parser.add_argument("--lifetime", type=float, default=1800.0,
                        help="seconds after which it stops by itself")
    options = parser.parse_args()
    if options.fail_500 + options.fail_429 + options.hang > 1:
        parser.error("the fault fractions add up to more than 1")
    try:
        asyncio.run(serve(options))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
