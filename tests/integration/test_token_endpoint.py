"""The fleet benchmark's token endpoint (tests/support/token_endpoint.py): it rotates refresh
tokens, catches a reused one, serves hundreds of connections at once with keep-alive, injects
seeded faults, and the refresh engine works against it."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from alloy_oauth import refresh
from alloy_oauth.models import Connector, Credential
from alloy_oauth.refresh.single import refresh_one

from tests.support.token_endpoint import CLIENT_ID, CLIENT_SECRET, TokenEndpoint, refresh_token

AUTH = (CLIENT_ID, CLIENT_SECRET)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(grants=5, latency_ms=10) as server:
        yield server


def post(endpoint: TokenEndpoint, token: str, session: requests.Session | None = None,
         **options) -> requests.Response:
    options.setdefault("auth", AUTH)
    return (session or requests).post(
        endpoint.url, data={"grant_type": "refresh_token", "refresh_token": token},
        timeout=options.pop("timeout", 10), **options)


def test_a_refresh_rotates_the_grant_and_a_reused_token_revokes_it(endpoint):
    answer = post(endpoint, refresh_token(1, 0))
    assert answer.status_code == 200
    assert answer.json() == {"access_token": "at-1-1", "token_type": "Bearer",
                             "expires_in": 3600, "refresh_token": "rt-1-1"}
    assert post(endpoint, "rt-1-1").json()["refresh_token"] == "rt-1-2"

    reused = post(endpoint, "rt-1-1")
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # As django-oauth-toolkit's reuse protection: the whole grant is gone, the newest too.
    assert post(endpoint, "rt-1-2").json() == {"error": "invalid_grant"}

    stats = endpoint.stats(generations=True)
    counts = [stats[name] for name in ("requests", "refreshed", "reused", "refused")]
    assert counts == [4, 2, 1, 1]
    assert stats["revoked"] == [1]
    assert stats["generations"] == [0, 2, 0, 0, 0]
    assert "generations" not in endpoint.stats()


@pytest.mark.parametrize("token", ["rt-0-1", "rt-5-0", "rt-x-0", "at-0-0", "", "rt-0-0-0"])
def test_a_token_never_issued_is_refused_and_is_no_reuse(endpoint, token):
    answer = post(endpoint, token)
    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_grant"})
    stats = endpoint.stats(generations=True)
    assert (stats["refused"], stats["reused"], stats["generations"][0]) == (1, 0, 0)
    assert post(endpoint, "rt-0-0").status_code == 200  # the grant is intact


def test_the_client_authenticates_with_basic_or_in_the_body(endpoint):
    wrong = post(endpoint, "rt-0-0", auth=(CLIENT_ID, "wrong"))
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
    assert post(endpoint, "rt-0-0", auth=None).status_code == 401
    assert endpoint.stats(generations=True)["generations"][0] == 0  # refused before the grant
    in_body = requests.post(endpoint.url, data={
        "grant_type": "refresh_token", "refresh_token": "rt-0-0",
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, timeout=10)
    assert in_body.json()["refresh_token"] == "rt-0-1"
    assert requests.post(endpoint.url, data={"grant_type": "authorization_code"}, auth=AUTH,
                         timeout=10).json() == {"error": "unsupported_grant_type"}
    assert endpoint.stats()["unauthorized"] == 2


def test_a_client_secret_is_form_encoded_inside_basic_auth():
    secret = "s3cr+t/with%2F:colon"
    with TokenEndpoint(grants=1, latency_ms=0, client_secret=secret) as server:
        encoded = (quote(CLIENT_ID, safe=""), quote(secret, safe=""))
        assert post(server, "rt-0-0", auth=encoded).status_code == 200


def test_hundreds_of_connections_are_served_at_once_and_kept_alive():
    """300 connections, each asking twice on the same connection: with 300 ms of latency,
    served one after another that would take 180 s."""
    connections = 300
    with TokenEndpoint(grants=connections, latency_ms=300) as server:
        sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=30)
                   for _ in range(connections)]
        try:
            start = time.monotonic()
            for generation in range(2):
                for grant, sock in enumerate(sockets):
                    sock.sendall(raw_refresh(grant, generation))
                for grant, sock in enumerate(sockets):
                    status, body = read_answer(sock)
                    assert status == 200, body
                    assert f'"refresh_token": "rt-{grant}-{generation + 1}"' in body
            elapsed = time.monotonic() - start
        finally:
            for sock in sockets:
                sock.close()
        stats = server.stats()
    assert elapsed < 10, elapsed
    assert stats["peak_in_flight"] == connections
    # One connection each (and one for the stats), two requests on each.
    assert (stats["accepted"], stats["requests"], stats["refreshed"]) == (
        connections + 1, 2 * connections, 2 * connections)


def raw_refresh(grant: int, generation: int) -> bytes:
    body = f"grant_type=refresh_token&refresh_token={refresh_token(grant, generation)}"
    auth = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return (f"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def read_answer(sock: socket.socket) -> tuple[int, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    assert b"Connection: keep-alive" in head
    return int(head.split(b" ")[1]), body.decode()


def statuses_with_faults(seed: int) -> tuple[list[int], dict]:
    with TokenEndpoint(grants=1, latency_ms=0, fail_500=0.3, fail_429=0.3, retry_after=7,
                       seed=seed) as server:
        session = requests.Session()
        statuses, generation = [], 0
        for _ in range(60):
            answer = post(server, refresh_token(0, generation), session)
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == "7"
            if answer.status_code == 200:
                generation += 1
        stats = server.stats(generations=True)
    assert stats["generations"] == [generation]  # a faulted request rotated nothing
    assert stats["reused"] == 0
    return statuses, stats


def test_faults_are_drawn_from_a_seeded_rng():
    statuses, stats = statuses_with_faults(seed=7)
    assert statuses_with_faults(seed=7)[0] == statuses
    assert statuses_with_faults(seed=8)[0] != statuses
    assert set(statuses) == {200, 429, 500}
    assert stats["faults"] == {"500": statuses.count(500), "429": statuses.count(429),
                               "hang": 0}
    assert stats["refreshed"] == statuses.count(200)


def test_a_hung_request_is_dropped_past_the_deadline_and_rotates_nothing():
    with TokenEndpoint(grants=1, latency_ms=0, hang=1, hang_seconds=1) as server:
        with pytest.raises(requests.ReadTimeout):
            post(server, "rt-0-0", timeout=0.3)
        with pytest.raises(requests.ConnectionError):  # closed, no answer
            post(server, "rt-0-0", timeout=5)
        stats = server.stats(generations=True)
    assert stats["faults"]["hang"] == 2
    assert (stats["generations"], stats["refreshed"]) == ([0], 0)


def test_a_request_whose_client_has_gone_rotates_nothing():
    """A worker killed mid-request: the provider never takes the request in."""
    with TokenEndpoint(grants=1, latency_ms=300) as endpoint:
        credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        body = f"grant_type=refresh_token&refresh_token={refresh_token(0, 0)}".encode()
        port = int(endpoint.url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                         + credentials.encode() + b"\r\nContent-Type: application/"
                         b"x-www-form-urlencoded\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.1)  # received, now waiting out the provider's latency
        time.sleep(0.5)
        stats = endpoint.stats(generations=True)
        assert (stats["abandoned"], stats["refreshed"], stats["generations"]) == (1, 0, [0])
        assert post(endpoint, refresh_token(0, 0)).json()["refresh_token"] == "rt-0-1"


def test_it_stops_when_the_process_that_started_it_lets_go():
    server = TokenEndpoint().start()
    try:
        server.process.stdin.close()  # what the starter's death does
        assert server.process.wait(10) == 0
    finally:
        server.stop()
    with TokenEndpoint(lifetime=0.5) as server:
        assert server.process.wait(10) == 0


@pytest.mark.django_db
def test_the_refresh_engine_rotates_through_it():
    with TokenEndpoint(grants=2, latency_ms=0) as server:
        connector = Connector.objects.create(
            name="Endpoint", slug="endpoint", auth_url=server.url, token_url=server.url,
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        credential = Credential.objects.create(
            connector=connector, external_id="grant-1", access_token="at-1-0",
            refresh_token=refresh_token(1, 0))
        for generation in (1, 2):
            outcome = refresh_one(credential.pk, force=True)
            assert outcome.result is refresh.Result.REFRESHED, outcome
            credential.refresh_from_db()
            assert (credential.access_token, credential.refresh_token) == (
                f"at-1-{generation}", refresh_token(1, generation))
        stats = server.stats(generations=True)
    assert stats["generations"] == [0, 2]
    assert (stats["refreshed"], stats["reused"]) == (2, 0)
