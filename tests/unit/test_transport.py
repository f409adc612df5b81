"""The transport every request to a provider goes through (alloy_oauth.protocol.transport):
one total deadline per request, a body cap after decompression, no state shared between
threads. Against raw socket servers on 127.0.0.1, so that every byte's timing is ours."""

from __future__ import annotations

import gzip
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alloy_oauth import protocol
from alloy_oauth.protocol import ErrorKind, OAuthError, transport

from tests.support.raw_http import at_once, raw_server, response, trickle

JSON_TOKEN = b'{"access_token": "at", "token_type": "Bearer"}'


def client(base_url: str, timeout: float = 0.5) -> protocol.ClientConfig:
    return protocol.ClientConfig(f"{base_url}/token", "cid", "client-secret", timeout=timeout)


def exchange(config: protocol.ClientConfig) -> protocol.TokenResponse:
    return protocol.exchange_code(config, code="the-code", redirect_uri="https://app/cb")


def timed_failure(config: protocol.ClientConfig) -> tuple[OAuthError, float]:
    started = time.monotonic()
    with pytest.raises(OAuthError) as info:
        exchange(config)
    return info.value, time.monotonic() - started


class TestOneDeadlinePerRequest:
    """HTTP_TIMEOUT bounds the whole request: a server that keeps every socket read alive
    with one byte at a time is cut at the deadline, whichever part it trickles."""

    def test_a_trickled_status_line_and_headers(self):
        headers = response(JSON_TOKEN)[:-len(JSON_TOKEN)]
        with raw_server(trickle(headers, then=JSON_TOKEN)) as url:
            error, elapsed = timed_failure(client(url, timeout=0.5))
        assert error.kind is ErrorKind.TRANSIENT and error.in_doubt
        assert str(error) == "The token endpoint at 127.0.0.1 did not answer within 0.5 seconds."
        assert elapsed < 0.5 + 1  # the trickle lasts 5 s or more

    def test_a_trickled_body(self):
        body = b"{" + b" " * 998 + b"}"
        with raw_server(trickle(body, first=response(body)[:-len(body)])) as url:
            error, elapsed = timed_failure(client(url, timeout=0.5))
        assert error.kind is ErrorKind.TRANSIENT and error.in_doubt
        assert "did not answer within 0.5 seconds" in str(error)
        assert elapsed < 0.5 + 1  # the trickle lasts 5 s or more

    def test_a_silent_server(self):
        with raw_server(lambda conn: time.sleep(3)) as url:
            error, elapsed = timed_failure(client(url, timeout=0.3))
        assert error.kind is ErrorKind.TRANSIENT and error.in_doubt
        assert elapsed < 0.3 + 1

    def test_a_server_that_answers_in_time_is_read_whole(self):
        with raw_server(trickle(response(JSON_TOKEN), every=0.002)) as url:
            assert exchange(client(url, timeout=5)).access_token == "at"

    def test_connections_are_still_reused(self):
        """Keep-alive is untouched: the wrapped socket goes back to the pool and serves the
        next request (with that request's own deadline)."""
        accepted = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                accepted.append(self.client_address)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(JSON_TOKEN)))
                self.end_headers()
                self.wfile.write(JSON_TOKEN)

            def log_message(self, *args: object) -> None:
                pass

        with http_server(Handler) as url:
            for _ in range(3):
                assert exchange(client(url, timeout=2)).access_token == "at"
        assert len(accepted) == 3 and len(set(accepted)) == 1


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class TestThreads:
    def test_requests_in_threads_neither_wait_for_each_other_nor_share_deadlines(self):
        """The refresh engine runs many token requests at once in one process: each thread
        has its own session and deadline, and nothing serialises them."""

        class Slow(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(0.4)
                self.send_response(200)
                self.send_header("Content-Length", str(len(JSON_TOKEN)))
                self.end_headers()
                self.wfile.write(JSON_TOKEN)

            def log_message(self, *args: object) -> None:
                pass

        results: dict[int, object] = {}

        def run(number: int, timeout: float) -> None:
            try:
                results[number] = exchange(client(url, timeout=timeout)).access_token
            except OAuthError as error:
                results[number] = error.kind

        with http_server(Slow) as url:
            threads = [threading.Thread(target=run, args=(n, 0.1 if n == 0 else 5))
                       for n in range(8)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
        assert results[0] is ErrorKind.TRANSIENT  # its own short deadline
        assert [results[n] for n in range(1, 8)] == ["at"] * 7
        assert elapsed < 8 * 0.4 / 2  # in parallel, not one after another


class TestBodyLimit:
    """At most MAX_RESPONSE_BYTES of body, on the wire and after decompression."""

    @pytest.mark.parametrize("encode, coding", [
        (gzip.compress, "gzip"),
        (zlib.compress, "deflate"),
        (lambda data: zlib.compress(data)[2:-4], "deflate"),  # raw deflate, as some send it
        (lambda data: gzip.compress(data[:10]) + gzip.compress(data[10:]), "gzip"),
    ])
    def test_compressed_answers_are_read(self, encode, coding):
        with raw_server(at_once(response(encode(JSON_TOKEN), f"Content-Encoding: {coding}"))
                        ) as url:
            assert exchange(client(url)).access_token == "at"

    def test_a_chunked_compressed_answer_is_read(self):
        body = gzip.compress(JSON_TOKEN)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                          for i in range(0, len(body), 7)) + b"0\r\n\r\n"
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n")
        with raw_server(at_once(head + chunks)) as url:
            assert exchange(client(url)).access_token == "at"

    def test_only_decodable_encodings_are_asked_for(self):
        seen: list[bytes] = []
        with raw_server(at_once(response(JSON_TOKEN)), seen) as url:
            exchange(client(url))
        assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in seen[0]

    @pytest.mark.parametrize("coding", ["br", "gzip, gzip", "compress"])
    def test_an_encoding_not_asked_for_is_not_a_token(self, coding):
        with raw_server(at_once(response(JSON_TOKEN, f"Content-Encoding: {coding}"))) as url:
            with pytest.raises(OAuthError) as info:
                exchange(client(url))
        assert info.value.kind is ErrorKind.TRANSIENT
        assert "ContentDecodingError" in str(info.value)

    @pytest.mark.parametrize("encode, coding", [
        (lambda data: gzip.compress(data, compresslevel=1), "gzip"),
        (lambda data: zlib.compress(data, 1), "deflate"),
    ])
    def test_a_decompression_bomb_allocates_about_the_cap(self, encode, coding):
        """64 MiB of zeros in about 64 KiB: refused, having allocated about the cap."""
        bomb = encode(b"\0" * (64 * 1024 * 1024))
        assert len(bomb) < protocol.MAX_RESPONSE_BYTES
        with raw_server(at_once(response(bomb, f"Content-Encoding: {coding}"))) as url:
            tracemalloc.start()
            try:
                with pytest.raises(OAuthError) as info:
                    exchange(client(url, timeout=5))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert info.value.kind is ErrorKind.MALFORMED
        assert "more than 1024 KiB" in str(info.value)
        assert peak < 4 * protocol.MAX_RESPONSE_BYTES, peak

    def test_an_oversized_body_on_the_wire(self):
        body = b" " * (protocol.MAX_RESPONSE_BYTES + 1)
        with raw_server(at_once(response(body))) as url:
            with pytest.raises(OAuthError) as info:
                exchange(client(url, timeout=5))
        assert info.value.kind is ErrorKind.MALFORMED

    def test_a_corrupt_compressed_body(self):
        with raw_server(at_once(response(b"\x1f\x8b not gzip", "Content-Encoding: gzip"))) as url:
            with pytest.raises(OAuthError) as info:
                exchange(client(url))
        assert info.value.kind is ErrorKind.TRANSIENT and info.value.in_doubt


def test_a_probe_waits_for_the_headers_only_and_within_the_deadline():
    headers = response(b"x" * 100)[:-100]
    with raw_server(trickle(headers)) as url:
        started = time.monotonic()
        with pytest.raises(OAuthError) as info:
            transport.probe_url(url, timeout=0.5, allow_http=False)
        assert time.monotonic() - started < 0.5 + 1
    assert str(info.value) == "127.0.0.1 did not answer within 0.5 seconds."
    with raw_server(at_once(headers + b"x")) as url:  # the body is never waited for
        assert transport.probe_url(url, timeout=0.5, allow_http=False) == 200


@pytest.mark.django_db
class TestHttpTimeoutIsTheWholeRequest:
    """ALLOY_OAUTH["HTTP_TIMEOUT"] is one total deadline for every request to a provider: a
    token endpoint sending its headers a byte at a time held a worker's refresh (its lease
    kept alive all along), the callback and the admin's pre-flight for minutes."""

    HEADERS = response(JSON_TOKEN)[:-len(JSON_TOKEN)]

    def test_a_refresh(self, make_connector, settings):
        from datetime import timedelta

        from django.utils import timezone

        from alloy_oauth import refresh
        from alloy_oauth.models import Credential
        from alloy_oauth.refresh.single import refresh_one

        settings.ALLOY_OAUTH = {"HTTP_TIMEOUT": 1, "LEASE_SECONDS": 4}
        with raw_server(trickle(self.HEADERS, then=JSON_TOKEN)) as url:
            credential = Credential.objects.create(
                connector=make_connector(token_url=f"{url}/token"), external_id="slow",
                access_token="a", refresh_token="r",
                next_refresh_at=timezone.now() - timedelta(seconds=1))
            started = time.monotonic()
            outcome = refresh_one(credential.pk)
            elapsed = time.monotonic() - started
        assert outcome.result is refresh.Result.RETRY
        credential.refresh_from_db()
        assert "did not answer within 1 seconds" in credential.last_error
        assert elapsed < 1 + 1

    def test_the_preflight(self, make_connector, settings):
        from alloy_oauth import validation

        settings.ALLOY_OAUTH = {"HTTP_TIMEOUT": 1}
        with raw_server(trickle(self.HEADERS, then=JSON_TOKEN)) as url:
            connector = make_connector(auth_url=f"{url}/authorize", token_url=f"{url}/token")
            started = time.monotonic()
            checks = validation.preflight(connector, redirect_uri="https://app/cb")
            elapsed = time.monotonic() - started
        assert [check.ok for check in checks[-2:]] == [False, False]
        assert "did not answer within 1 seconds" in checks[-1].message
        assert elapsed < 2 * 1 + 1.5  # two requests, one deadline each
