"""Interleavings that must not burn a refresh token or lose the newest one (found in review)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from alloy_oauth import credential_store, protocol
from alloy_oauth.conf import app_settings
from alloy_oauth.exceptions import TokenRefreshFailed
from alloy_oauth.models import AuthorizationRequest, Credential
from alloy_oauth.refresh import Result, leases, records
from alloy_oauth.refresh.single import refresh_one
from alloy_oauth.signals import credential_refresh_failed

from tests.support.credentials import OLD_ACCESS, stored
from tests.support.example_provider import TOKEN_URL
from tests.support.raw_http import read_http_request

API = "https://api.provider.example"


def reconnect(credential: Credential, **token_fields) -> None:
    """What the callback does when the end user connects again (a new grant)."""
    pending = AuthorizationRequest(connector=credential.connector, user=credential.user,
                                   scope="read write")
    token = protocol.TokenResponse(access_token="reconnected", token_type="Bearer",
                                   issued_at=timezone.now(), expires_in=3600, **token_fields)
    credential_store._store_credential(pending, token)


def test_late_invalid_grant_does_not_hit_a_reconnected_credential(credential, responses):
    def old_grant_dies_while_the_user_reconnects(request):
        reconnect(credential, refresh_token="new-grant-refresh")
        return 400, {}, json.dumps({"error": "invalid_grant"})

    responses.add_callback(responses.POST, TOKEN_URL,
                           callback=old_grant_dies_while_the_user_reconnects)
    assert refresh_one(credential.pk).result is Result.SUPERSEDED
    row = stored(credential)
    assert (row.status, row.access_token, row.refresh_token) == (
        "active", "reconnected", "new-grant-refresh")
    assert row.failure_count == 0 and row.lease_until is None


def test_reconnect_without_refresh_token_never_keeps_the_old_grants(credential, responses):
    """Google-style re-consent without a refresh token, while the old grant is refreshed:
    the old grant's (rotated) tokens are dropped, not mixed with the new access token."""
    def rotate_while_the_user_reconnects(request):
        reconnect(credential)
        return 200, {}, json.dumps({"access_token": "old-grant-2", "refresh_token": "rotated"})

    responses.add_callback(responses.POST, TOKEN_URL, callback=rotate_while_the_user_reconnects)
    assert refresh_one(credential.pk).result is Result.SUPERSEDED
    row = stored(credential)
    assert (row.access_token, row.refresh_token) == ("reconnected", "")


class FakeClock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.django_db(transaction=True)
def test_tokens_the_database_will_not_take_keep_the_lease(credential, responses, monkeypatch):
    """The provider rotated; storing the answer fails for a whole lease period. The write is
    retried meanwhile, and then the lease is left to run out: nobody may send the old refresh
    token while the provider may consider it used."""
    sent = []

    def rotate(request):
        sent.append(request.body)
        return 200, {}, json.dumps({"access_token": "A2", "refresh_token": "RT2"})

    responses.add_callback(responses.POST, TOKEN_URL, callback=rotate)
    attempts = []

    def database_down(*args):
        attempts.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(records, "write_with_events", database_down)
    monkeypatch.setattr(records, "time", FakeClock())
    with pytest.raises(OperationalError):
        refresh_one(credential.pk)
    monkeypatch.undo()
    assert len(attempts) > 5  # retried for the lease period
    assert stored(credential).lease_until > timezone.now()
    assert refresh_one(credential.pk, force=True).result is Result.BUSY
    assert len(sent) == 1


def test_a_host_with_a_fast_clock_cannot_take_a_live_lease(credential, responses, monkeypatch):
    """Leases are measured by the database's clock, not the app server's."""
    sent, other_host = [], []

    def slow_provider(request):
        sent.append(1)
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=61))
        other_host.append(refresh_one(credential.pk).result)
        monkeypatch.setattr(timezone, "now", real_now)
        return 200, {}, json.dumps({"access_token": "A2", "refresh_token": "RT2"})

    responses.add_callback(responses.POST, TOKEN_URL, callback=slow_provider)
    assert refresh_one(credential.pk).result is Result.REFRESHED
    assert other_host == [Result.BUSY] and len(sent) == 1


@pytest.mark.parametrize("session_time_zone", ["+05:00", "-05:00"])
def test_a_lease_lasts_lease_seconds_whatever_the_sessions_time_zone(credential,
                                                                    session_time_zone):
    """MySQL's CURRENT_TIMESTAMP is the session's local time, and Django stores UTC there:
    east of UTC a live lease would look over (a second refresh could start), west of it an
    ended one would look live."""
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = %s", [session_time_zone])
    try:
        lease = leases.acquire_one(credential.pk, Q())
        assert lease is not None
        expected = timezone.now() + timedelta(seconds=app_settings.LEASE_SECONDS)
        assert abs(stored(credential).lease_until - expected) < timedelta(seconds=5)
        assert leases.acquire_one(credential.pk, Q()) is None
    finally:
        if connection.vendor == "mysql":
            with connection.cursor() as cursor:
                cursor.execute("SET time_zone = @@global.time_zone")


def test_a_failing_signal_receiver_does_not_fail_the_caller(credential, responses, caplog):
    responses.post(TOKEN_URL, status=503, body="")

    def broken_receiver(**kwargs):
        raise ValueError("bug in host code")

    credential_refresh_failed.connect(broken_receiver, weak=False, dispatch_uid="broken")
    try:
        assert credential.get_access_token(min_valid=300) == OLD_ACCESS
    finally:
        credential_refresh_failed.disconnect(dispatch_uid="broken")
    assert "raised ValueError" in caplog.text


def test_short_lived_tokens_are_not_refreshed_at_every_sweep(credential, responses):
    """A 5-minute token with the default 5-minute lead time: due at half its life."""
    responses.post(TOKEN_URL, json={"access_token": "A", "refresh_token": "R", "expires_in": 300})
    results = [refresh_one(credential.pk).result for _ in range(3)]
    assert results == [Result.REFRESHED, Result.NOT_DUE, Result.NOT_DUE]
    row = stored(credential)
    assert abs((row.expires_at - row.next_refresh_at).total_seconds() - 150) < 1


def test_a_401_does_not_force_refreshes_while_backing_off(credential, responses):
    connector = credential.connector
    connector.api_base_url = API
    connector.save()
    Credential.objects.filter(pk=credential.pk).update(
        expires_at=timezone.now() + timedelta(hours=1), failure_count=2,
        next_refresh_at=timezone.now() + timedelta(minutes=5))
    credential.refresh_from_db()
    responses.get(f"{API}/me", status=401)
    assert credential.session().get("me").status_code == 401
    assert [c.request.url for c in responses.calls] == [f"{API}/me"]


@pytest.mark.database_server
@pytest.mark.django_db(transaction=True)
def test_asking_for_a_token_while_holding_its_row_lock_fails_clearly(credential, responses):
    """Host code that locked the credential row in its transaction, then asks for a token:
    the refresh (on its own connection) cannot wait for that lock; a clear error, no hang."""
    responses.post(TOKEN_URL, json={"access_token": "fresh", "refresh_token": "rotated"})
    result = {}

    def host_view():
        try:
            with transaction.atomic():
                locked = Credential.objects.select_for_update().get(pk=credential.pk)
                result["token"] = locked.get_access_token(min_valid=300)
        except TokenRefreshFailed as exc:
            result["error"] = str(exc)
        finally:
            connections.close_all()

    started = time.monotonic()
    thread = threading.Thread(target=host_view)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - started < 15
    assert "ask for the token before that" in result["error"]
    assert len(responses.calls) == 0
    with connection.cursor() as cursor:  # nothing left waiting on the database
        cursor.execute(
            "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            if connection.vendor == "mysql" else
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_provider_slower_than_the_lease_keeps_it(credential, settings):
    """Header lines trickling in: the request (within HTTP_TIMEOUT, its one deadline) outlasts
    the lease period; the lease is extended meanwhile and no other process takes it."""
    import socket

    settings.ALLOY_OAUTH = {"LEASE_SECONDS": 3, "HTTP_TIMEOUT": 10}
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    body = json.dumps({"access_token": "slow", "refresh_token": "slow-rt"}).encode()

    def trickle():
        conn, _ = server.accept()
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for index in range(25):  # about 5 s of headers
            time.sleep(0.2)
            conn.sendall(f"X-Slow-{index}: 1\r\n".encode())
        conn.sendall(b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    connector = credential.connector
    connector.token_url = f"http://127.0.0.1:{server.getsockname()[1]}/token"
    connector.save()
    other_process = []

    def meanwhile():
        time.sleep(4)  # past the first lease period
        other_process.append(refresh_one(credential.pk, force=True).result)
        connections.close_all()

    competitor = threading.Thread(target=meanwhile)
    competitor.start()
    outcome = refresh_one(credential.pk)
    competitor.join()
    server.close()
    assert outcome.result is Result.REFRESHED
    assert other_process == [Result.BUSY]
    assert stored(credential).refresh_token == "slow-rt"
