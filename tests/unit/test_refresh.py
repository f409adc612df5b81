"""The refresh engine with a stubbed token endpoint: success, every failure class, the lease,
on-demand tokens and the API session."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alloy_oauth import protocol, sql
from alloy_oauth.exceptions import ReauthorizationRequired, TokenRefreshFailed
from alloy_oauth.models import Credential
from alloy_oauth.refresh import Result, leases
from alloy_oauth.refresh.records import retry_delay
from alloy_oauth.refresh.single import refresh_one
from alloy_oauth.refresh.sweep import due_credential_ids
from alloy_oauth.signals import (
    credential_reauth_required, credential_refresh_failed, credential_refreshed,
)

from tests.support.credentials import OLD_ACCESS, OLD_REFRESH, stored
from tests.support.example_provider import TOKEN_URL

API = "https://api.provider.example/v1"


@pytest.fixture
def signals():
    received: list[tuple[str, dict]] = []
    handlers = {}
    def handler(signal, sender, **kwargs):
        assert sender is Credential
        received.append((signal_name[signal], kwargs))

    for signal in signal_name:
        handlers[signal] = handler
        signal.connect(handler, weak=False)
    yield received
    for signal, handler in handlers.items():
        signal.disconnect(handler)


signal_name = {credential_refreshed: "refreshed", credential_refresh_failed: "refresh_failed",
               credential_reauth_required: "reauth_required"}


def events(credential: Credential) -> list[str]:
    return list(credential.events.order_by("created_at", "id").values_list("kind", flat=True))


def assert_old_tokens_kept(credential: Credential) -> None:
    row = stored(credential)
    assert (row.access_token, row.refresh_token) == (OLD_ACCESS, OLD_REFRESH)
    assert row.lease_until is None


class TestSuccess:
    @staticmethod
    def statements_of_one_refresh(credential, responses) -> list[str]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 3600})
        with CaptureQueriesContext(connection) as queries:
            assert refresh_one(credential.pk).result is Result.REFRESHED
        # (The savepoints are the test's transaction; BEGIN/COMMIT are no statements.)
        return [sql for query in queries.captured_queries
                if (sql := query["sql"].split(" ", 1)[0]) not in
                ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")]

    def test_a_refresh_is_two_statements_on_postgresql_three_on_sqlite(self, credential,
                                                                       responses):
        from django.db import connection

        statements = self.statements_of_one_refresh(credential, responses)
        if connection.vendor == "postgresql":
            assert statements == ["UPDATE", "WITH"]  # lease + read; tokens + event
        elif sql.update_can_return(connection):  # SQLite 3.35.5+
            assert statements == ["UPDATE", "UPDATE", "INSERT"]
        else:  # MySQL/MariaDB, older SQLite: no UPDATE … RETURNING
            assert statements == ["UPDATE", "SELECT", "UPDATE", "INSERT"]

    def test_without_update_returning_the_lease_and_the_read_are_two_statements(
            self, credential, responses, monkeypatch):
        # As on SQLite before 3.35 and on MySQL/MariaDB.
        monkeypatch.setattr(sql, "update_can_return", lambda connection: False)
        statements = self.statements_of_one_refresh(credential, responses)
        assert statements[:2] == ["UPDATE", "SELECT"]
        assert stored(credential).access_token == "new-access"

    def test_an_answer_with_error_null_is_a_success(self, credential, responses):
        # The provider rotated the refresh token: losing the new one would lose the grant.
        responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 3600,
                                        "refresh_token": "rotated", "error": None})
        assert refresh_one(credential.pk).result is Result.REFRESHED
        assert stored(credential).refresh_token == "rotated"

    def test_a_providers_own_word_for_a_dead_grant_asks_for_reconnection(self, credential,
                                                                          responses):
        responses.post(TOKEN_URL, json={"error": "bad_refresh_token"})  # GitHub, HTTP 200
        assert refresh_one(credential.pk).result is Result.REAUTH_REQUIRED
        assert stored(credential).status == "reauth_required"

    def test_no_candidates_take_no_lease(self, credential):
        for nothing in (Q(pk__in=[]), Q(status="no such status")):
            assert leases.acquire_one(credential.pk, nothing) is None
        assert leases.acquire([], Q(), leases.new_token()) == []
        assert stored(credential).lease_until is None

    def test_refresh(self, credential, responses, signals):
        responses.post(TOKEN_URL, json={"access_token": "new-access", "token_type": "bearer",
                                        "expires_in": 3600, "refresh_token": "new-refresh"})
        before = timezone.now()
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.REFRESHED
        row = stored(credential)
        assert (row.access_token, row.refresh_token) == ("new-access", "new-refresh")
        assert row.version == credential.version + 1
        assert row.lease_until is None and row.failure_count == 0
        assert before <= row.last_refreshed_at <= timezone.now()
        assert before <= row.expires_at - timedelta(seconds=3600) <= row.last_refreshed_at
        assert row.next_refresh_at == row.expires_at - timedelta(seconds=300)
        assert row.scope == "read write"  # the provider did not say: unchanged
        assert events(credential) == ["refreshed"]
        assert "rotated" in row.events.get().detail
        assert [name for name, _ in signals] == ["refreshed"]
        assert signals[0][1]["credential"].access_token == "new-access"
        body = parse_qs(responses.calls[0].request.body)
        assert body == {"grant_type": ["refresh_token"], "refresh_token": [OLD_REFRESH]}
        assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")

    def test_refresh_url_and_params(self, credential, responses):
        connector = credential.connector
        connector.refresh_url = "https://provider.example/oauth/refresh"
        connector.refresh_params = {"audience": "api", "grant_type": "evil"}
        connector.save()
        responses.post("https://provider.example/oauth/refresh", json={"access_token": "n"})
        assert refresh_one(credential.pk).result is Result.REFRESHED
        body = parse_qs(responses.calls[0].request.body)
        assert body["audience"] == ["api"] and body["grant_type"] == ["refresh_token"]

    def test_response_without_refresh_token_keeps_the_old_one(self, credential, responses):
        responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 60,
                                        "scope": "read"})
        refresh_one(credential.pk)
        row = stored(credential)
        assert (row.access_token, row.refresh_token, row.scope) == ("new-access", OLD_REFRESH, "read")
        assert "rotated" not in row.events.get().detail

    def test_not_due(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(
            next_refresh_at=timezone.now() + timedelta(minutes=5))
        assert refresh_one(credential.pk).result is Result.NOT_DUE
        assert len(responses.calls) == 0
        assert stored(credential).lease_until is None

    def test_force(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(
            next_refresh_at=timezone.now() + timedelta(minutes=5))
        responses.post(TOKEN_URL, json={"access_token": "n"})
        assert refresh_one(credential.pk, force=True).result is Result.REFRESHED

    def test_force_retries_a_credential_in_error_but_not_a_dead_grant(self, credential, responses):
        responses.post(TOKEN_URL, json={"access_token": "n"})
        Credential.objects.filter(pk=credential.pk).update(status="error")
        assert refresh_one(credential.pk).result is Result.NOT_REFRESHABLE
        assert refresh_one(credential.pk, force=True).result is Result.REFRESHED
        assert stored(credential).status == "active"
        Credential.objects.filter(pk=credential.pk).update(status="reauth_required")
        outcome = refresh_one(credential.pk, force=True)
        assert outcome.result is Result.NOT_REFRESHABLE
        assert len(responses.calls) == 1

    def test_lease_held_by_someone_else(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(
            lease_until=timezone.now() + timedelta(seconds=30))
        assert refresh_one(credential.pk).result is Result.BUSY
        assert refresh_one(credential.pk, force=True).result is Result.BUSY
        assert len(responses.calls) == 0

    def test_expired_lease_is_taken_over(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(
            lease_until=timezone.now() - timedelta(seconds=1))
        responses.post(TOKEN_URL, json={"access_token": "n"})
        assert refresh_one(credential.pk).result is Result.REFRESHED

    def test_if_version(self, credential, responses):
        responses.post(TOKEN_URL, json={"access_token": "n"})
        outcome = refresh_one(credential.pk, force=True, if_version=99)
        assert outcome.result is Result.NOT_DUE and len(responses.calls) == 0
        outcome = refresh_one(credential.pk, force=True,
                              if_version=credential.version)
        assert outcome.result is Result.REFRESHED

    def test_unknown_credential(self, db):
        with pytest.raises(Credential.DoesNotExist):
            refresh_one(424242)

    def test_reconnected_while_refreshing(self, credential, responses):
        """The end user reconnected during the token request: the refresh's result loses."""
        def reconnect_meanwhile(request):
            Credential.objects.filter(pk=credential.pk).update(
                access_token="reconnected", version=credential.version + 1)
            return 200, {}, json.dumps({"access_token": "from-refresh"})

        responses.add_callback(responses.POST, TOKEN_URL, callback=reconnect_meanwhile)
        assert refresh_one(credential.pk).result is Result.SUPERSEDED
        assert stored(credential).access_token == "reconnected"
        assert events(credential) == []

    def test_a_crash_mid_request_leaves_the_lease_to_run_out(self, credential, responses,
                                                              monkeypatch):
        """A worker's time limit strikes while the request is out: the provider may rotate
        the token, so nobody may send the old one again before the lease ends."""
        def boom(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(protocol, "refresh_access_token", boom)
        with pytest.raises(KeyboardInterrupt):
            refresh_one(credential.pk)
        assert stored(credential).lease_until > timezone.now()
        assert refresh_one(credential.pk, force=True).result is Result.BUSY

    def test_a_crash_before_the_request_releases_the_lease(self, credential, responses,
                                                           monkeypatch):
        def database_went_away(*args):
            raise RuntimeError("database went away")

        # Reading the credential fails after the lease is taken (also where one statement
        # takes the lease and returns the row: making the models from it fails).
        monkeypatch.setattr(Credential, "from_db", classmethod(database_went_away))
        with pytest.raises(RuntimeError):
            refresh_one(credential.pk)
        monkeypatch.undo()
        assert stored(credential).lease_until is None
        assert len(responses.calls) == 0


class TestFailures:
    """Each failure class: status, event, signal, retry; the stored tokens stay intact."""

    def test_invalid_grant_needs_reauthorization(self, credential, responses, signals):
        responses.post(TOKEN_URL, json={"error": "invalid_grant",
                                        "error_description": "Token has been revoked."},
                       status=400)
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.REAUTH_REQUIRED and outcome.retry_in is None
        row = stored(credential)
        assert row.status == "reauth_required" and row.next_refresh_at is None
        assert row.last_error == "The provider answered invalid_grant: Token has been revoked."
        assert events(credential) == ["reauth_required"]
        assert [name for name, _ in signals] == ["reauth_required"]
        assert_old_tokens_kept(credential)
        # No retry: it is not due any more.
        assert refresh_one(credential.pk).result is Result.NOT_REFRESHABLE
        assert len(responses.calls) == 1

    @pytest.mark.parametrize("stub", [
        dict(json={"error": "invalid_client"}, status=401),
        dict(json={"error": "unauthorized_client"}, status=400),
        dict(body="", status=401),
        dict(json={"error": "invalid_scope"}, status=400),
        dict(body="Not Found", status=404),
    ])
    def test_operator_problems_mark_error(self, credential, responses, signals, stub):
        responses.post(TOKEN_URL, **stub)
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.FAILED
        row = stored(credential)
        assert row.status == "error" and row.next_refresh_at is None and row.failure_count == 1
        assert events(credential) == ["refresh_failed"]
        [(name, kwargs)] = signals
        assert name == "refresh_failed" and kwargs["will_retry"] is False
        assert kwargs["error"] in ("client", "rejected")
        assert_old_tokens_kept(credential)

    @pytest.mark.parametrize("stub, error", [
        (dict(body="", status=500), "transient"),
        (dict(body="<html>503 Service Unavailable</html>", status=503,
              content_type="text/html"), "transient"),
        (dict(json={"error": "temporarily_unavailable"}, status=503), "transient"),
        (dict(body="<html>maintenance</html>", status=200, content_type="text/html"), "malformed"),
        (dict(body="{not json", status=200), "malformed"),
        (dict(json={"token_type": "bearer"}, status=200), "malformed"),
        (dict(body=requests.ConnectTimeout()), "transient"),
    ])
    def test_transient_failures_retry_with_backoff(self, credential, responses, signals, stub,
                                                   error, settings):
        settings.ALLOY_OAUTH = {"RETRY_BACKOFF": 30}
        responses.post(TOKEN_URL, **stub)
        before = timezone.now()
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.RETRY
        assert 15 <= outcome.retry_in <= 30
        row = stored(credential)
        assert row.status == "active" and row.failure_count == 1
        assert before + timedelta(seconds=15) <= row.next_refresh_at
        assert row.next_refresh_at <= timezone.now() + timedelta(seconds=30)
        assert "Retrying in" in row.last_error
        assert events(credential) == ["refresh_failed"]
        [(name, kwargs)] = signals
        assert kwargs["will_retry"] is True and kwargs["error"] == error
        assert_old_tokens_kept(credential)
        # Backing off: the sweep will not pick it before next_refresh_at.
        assert refresh_one(credential.pk).result is Result.NOT_DUE

    @pytest.mark.parametrize("failure", [
        dict(body=requests.ReadTimeout("no answer")),
        dict(body=requests.ConnectionError(ConnectionResetError("reset after sending"))),
        dict(status=504, body="<html>504 Gateway Time-out</html>", content_type="text/html"),
        dict(status=502, body=""),
    ])
    def test_no_answer_after_sending_keeps_the_lease(self, credential, responses, failure):
        """The provider may still be processing the request (and rotating the token): the
        lease runs out by itself, and the retry is not sooner than that. A gateway's 502 or
        504 is such a case: the provider behind it may have taken the request."""
        responses.post(TOKEN_URL, **failure)
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.RETRY and outcome.retry_in >= 60
        row = stored(credential)
        assert row.lease_until > timezone.now() + timedelta(seconds=50)
        assert row.failure_count == 1
        assert refresh_one(credential.pk, force=True).result is Result.BUSY
        assert len(responses.calls) == 1

    def test_connection_refused_releases_the_lease(self, credential):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        connector = credential.connector
        connector.token_url = f"http://127.0.0.1:{port}/token"
        connector.save()
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.RETRY and outcome.retry_in <= 30
        assert stored(credential).lease_until is None

    def test_retry_after_is_honoured(self, credential, responses):
        responses.post(TOKEN_URL, body="", status=429, headers={"Retry-After": "600"})
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.RETRY and outcome.retry_in == 600
        assert stored(credential).next_refresh_at >= timezone.now() + timedelta(seconds=595)

    def test_backoff_grows_then_gives_up(self, credential, responses, settings, signals):
        settings.ALLOY_OAUTH = {"RETRY_BACKOFF": 10, "RETRY_BACKOFF_MAX": 60,
                                "MAX_REFRESH_FAILURES": 4}
        responses.post(TOKEN_URL, body="", status=503)
        ceilings = []
        for _ in range(3):
            Credential.objects.filter(pk=credential.pk).update(next_refresh_at=timezone.now())
            outcome = refresh_one(credential.pk)
            assert outcome.result is Result.RETRY
            ceilings.append(outcome.retry_in)
        assert 5 <= ceilings[0] <= 10 and 10 <= ceilings[1] <= 20 and 20 <= ceilings[2] <= 40
        Credential.objects.filter(pk=credential.pk).update(next_refresh_at=timezone.now())
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.FAILED
        row = stored(credential)
        assert row.status == "error" and row.failure_count == 4
        assert "Gave up after 4 consecutive failures" in row.last_error
        assert signals[-1][1]["will_retry"] is False
        assert_old_tokens_kept(credential)

    def test_backoff_is_capped(self, settings):
        settings.ALLOY_OAUTH = {"RETRY_BACKOFF": 30, "RETRY_BACKOFF_MAX": 3600}
        assert all(1800 <= retry_delay(20) <= 3600 for _ in range(50))

    def test_success_clears_the_failures(self, credential, responses):
        responses.post(TOKEN_URL, body="", status=500)
        refresh_one(credential.pk)
        Credential.objects.filter(pk=credential.pk).update(next_refresh_at=timezone.now())
        responses.replace(responses.POST, TOKEN_URL, json={"access_token": "n"})
        assert refresh_one(credential.pk).result is Result.REFRESHED
        row = stored(credential)
        assert (row.failure_count, row.last_error, row.status, row.failing_since) == (
            0, "", "active", None)
        # A success after failures is recorded as a recovery.
        assert events(credential) == ["refresh_failed", "recovered"]

    def test_no_secret_in_errors(self, credential, responses):
        responses.post(TOKEN_URL, status=400, json={
            "error": "invalid_grant",
            "error_description": f"refresh token {OLD_REFRESH} was used twice"})
        refresh_one(credential.pk)
        row = stored(credential)
        assert OLD_REFRESH not in row.last_error
        assert OLD_REFRESH not in row.events.get().detail


class TestWithoutRefreshToken:
    def test_still_valid(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(refresh_token="")
        outcome = refresh_one(credential.pk)
        assert outcome.result is Result.NOT_REFRESHABLE
        row = stored(credential)
        assert row.status == "active" and row.next_refresh_at == row.expires_at
        assert len(responses.calls) == 0

    def test_expired(self, credential, responses, signals):
        Credential.objects.filter(pk=credential.pk).update(
            refresh_token="", expires_at=timezone.now() - timedelta(seconds=1))
        assert refresh_one(credential.pk).result is Result.REAUTH_REQUIRED
        assert stored(credential).status == "reauth_required"
        assert events(credential) == ["reauth_required"]
        assert [name for name, _ in signals] == ["reauth_required"]


class TestOnDemand:
    def test_valid_token_needs_no_request(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(
            expires_at=timezone.now() + timedelta(hours=1))
        credential.refresh_from_db()
        assert credential.get_access_token() == OLD_ACCESS
        assert len(responses.calls) == 0

    def test_unknown_expiry_counts_as_valid(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(expires_at=None)
        credential.refresh_from_db()
        assert credential.get_access_token() == OLD_ACCESS

    def test_expiring_token_is_refreshed(self, credential, responses):
        responses.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600})
        assert credential.get_access_token(min_valid=300) == "fresh"
        assert credential.access_token == "fresh" and credential.version == 1
        assert credential.get_access_token(min_valid=300) == "fresh"
        assert len(responses.calls) == 1

    def test_reauthorization_required(self, credential, responses):
        responses.post(TOKEN_URL, json={"error": "invalid_grant"}, status=400)
        with pytest.raises(ReauthorizationRequired, match="must reconnect their Example"):
            credential.get_access_token(min_valid=300)
        with pytest.raises(ReauthorizationRequired):
            stored(credential).get_access_token()
        assert len(responses.calls) == 1

    def test_provider_down_but_token_still_valid(self, credential, responses):
        responses.post(TOKEN_URL, status=503, body="")
        assert credential.get_access_token(min_valid=300) == OLD_ACCESS  # 120 s left
        # Backing off: the next call does not hammer the provider.
        assert credential.get_access_token(min_valid=300) == OLD_ACCESS
        assert len(responses.calls) == 1

    def test_provider_down_and_token_expired(self, credential, responses):
        Credential.objects.filter(pk=credential.pk).update(
            expires_at=timezone.now() - timedelta(seconds=5))
        credential.refresh_from_db()
        responses.post(TOKEN_URL, status=503, body="")
        with pytest.raises(TokenRefreshFailed, match="has expired and could not be refreshed"):
            credential.get_access_token()

    def test_a_new_token_already_expired_is_said_as_such(self, credential, responses,
                                                          monkeypatch):
        Credential.objects.filter(pk=credential.pk).update(
            expires_at=timezone.now() - timedelta(seconds=5))
        credential.refresh_from_db()
        responses.post(TOKEN_URL, json={"access_token": "brief", "expires_in": 60,
                                        "refresh_token": "r2"})
        # The process is starved for longer than the new token lasts, between the refresh
        # and reading it back: as on_demand's clock sees it, 61 s pass.
        from alloy_oauth.refresh import on_demand

        class Later:
            @staticmethod
            def now():
                return timezone.now() + timedelta(seconds=61)

        monkeypatch.setattr(on_demand, "timezone", Later)
        with pytest.raises(TokenRefreshFailed, match="was refreshed, but the new one expired"
                                                     r" \(at .* UTC\) before it could be used"):
            credential.get_access_token()
        assert "brief" not in str(credential.last_error)

    def test_operator_problem_keeps_serving_a_valid_token(self, credential, responses):
        responses.post(TOKEN_URL, json={"error": "invalid_client"}, status=401)
        assert credential.get_access_token(min_valid=300) == OLD_ACCESS
        assert credential.status == "error"

    def test_waits_for_another_refresh(self, credential, responses, monkeypatch):
        """Another process holds the lease: wait for its result instead of refreshing."""
        Credential.objects.filter(pk=credential.pk).update(
            lease_until=timezone.now() + timedelta(seconds=30))
        sleeps = []
        test_thread, real_sleep = threading.current_thread(), time.sleep

        def other_process_finishes(seconds):
            if threading.current_thread() is not test_thread:  # time.sleep is process-wide
                return real_sleep(seconds)
            sleeps.append(seconds)
            Credential.objects.filter(pk=credential.pk).update(
                access_token="by-the-other", lease_until=None, version=5,
                expires_at=timezone.now() + timedelta(hours=1))

        monkeypatch.setattr(time, "sleep", other_process_finishes)
        assert credential.get_access_token(min_valid=300) == "by-the-other"
        assert len(sleeps) == 1 and len(responses.calls) == 0

    def test_from_async_code(self, credential, responses):
        from asgiref.sync import async_to_sync
        from django.core.exceptions import SynchronousOnlyOperation

        responses.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600})

        async def view() -> str:
            with pytest.raises(SynchronousOnlyOperation):  # what the sync method does here
                credential.get_access_token(min_valid=300)
            return await credential.aget_access_token(min_valid=300)

        assert async_to_sync(view)() == "fresh"
        assert credential.access_token == "fresh" and stored(credential).access_token == "fresh"
        assert len(responses.calls) == 1

    def test_refresh_method(self, credential, responses):
        responses.post(TOKEN_URL, json={"access_token": "fresh"})
        outcome = credential.refresh(force=True)
        assert outcome.result is Result.REFRESHED
        assert credential.access_token == "fresh"


@pytest.mark.django_db(transaction=True)
class TestLeaseCommitted:
    def test_other_connections_see_the_lease_once_it_is_taken(self, credential):
        """The lease-and-read statement has committed when it returns (on SQLite too, where
        the statement returning rows stays open until they are read)."""
        lease, _ = leases.acquire_one(credential.pk, Q())
        seen = {}

        def other_connection():
            from django.db import connections

            try:
                seen["taken"] = leases.acquire_one(credential.pk, Q())
                seen["token"] = Credential.objects.get(pk=credential.pk).lease_token
            finally:
                connections.close_all()

        thread = threading.Thread(target=other_connection)
        thread.start()
        thread.join()
        assert seen == {"taken": None, "token": lease.token}


@pytest.mark.django_db(transaction=True)
class TestInsideCallerTransaction:
    def test_refresh_commits_even_if_the_caller_rolls_back(self, credential, responses):
        """With ATOMIC_REQUESTS, a view's rollback must not throw away rotated tokens."""
        responses.post(TOKEN_URL, json={"access_token": "fresh", "refresh_token": "rotated"})

        class Rollback(Exception):
            pass

        threads = []
        credential_refreshed.connect(
            lambda **kw: threads.append(threading.current_thread().name), weak=False,
            dispatch_uid="thread-probe")
        try:
            with pytest.raises(Rollback), transaction.atomic():
                assert credential.get_access_token(min_valid=300) == "fresh"
                raise Rollback
        finally:
            credential_refreshed.disconnect(dispatch_uid="thread-probe")
        assert threads == ["alloy_oauth-refresh"]  # on its own connection
        row = stored(credential)
        assert (row.access_token, row.refresh_token) == ("fresh", "rotated")
        assert events(credential) == ["refreshed"]


@pytest.fixture
def api_credential(credential):
    """The credential, valid for an hour, of a connector with an API base URL."""
    credential.connector.api_base_url = API
    credential.connector.save()
    Credential.objects.filter(pk=credential.pk).update(
        expires_at=timezone.now() + timedelta(hours=1))
    credential.refresh_from_db()
    return credential


class TestSession:
    def test_bearer_and_base_url(self, api_credential, responses):
        responses.get(f"{API}/users/me", json={"id": 1})
        responses.get("https://other.example/x", json={})
        with api_credential.session() as session:
            assert session.get("users/me").json() == {"id": 1}
            assert session.get("/users/me").status_code == 200
            session.get("https://other.example/x")
        assert [c.request.headers["Authorization"] for c in responses.calls[:2]] == [
            f"Bearer {OLD_ACCESS}"] * 2
        # Another host than the API base URL's never gets the token.
        assert "Authorization" not in responses.calls[2].request.headers
        assert [c.request.url for c in responses.calls][:2] == [f"{API}/users/me"] * 2

    def test_refreshes_before_the_request_when_due(self, credential, responses):
        responses.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600})
        responses.get("https://api.example/x", json={})
        credential.session(min_valid=300).get("https://api.example/x")  # 120 s left
        assert responses.calls[-1].request.headers["Authorization"] == "Bearer fresh"

    def test_401_forces_one_refresh_and_one_retry(self, api_credential, responses):
        responses.get(f"{API}/me", status=401)
        responses.get(f"{API}/me", json={"ok": True})
        responses.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600})
        response = api_credential.session().get("me")
        assert response.json() == {"ok": True}
        sent = [(c.request.url, c.request.headers["Authorization"]) for c in responses.calls]
        assert [url for url, _ in sent] == [f"{API}/me", TOKEN_URL, f"{API}/me"]
        assert sent[0][1] == f"Bearer {OLD_ACCESS}" and sent[2][1] == "Bearer fresh"

    def test_401_twice_is_returned(self, api_credential, responses):
        responses.get(f"{API}/me", status=401)
        responses.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600})
        assert api_credential.session().get("me").status_code == 401
        assert len([c for c in responses.calls if c.request.url == TOKEN_URL]) == 1

    def test_401_again_after_another_rotation_uses_the_newest_token(self, api_credential,
                                                                     responses):
        # A provider that revokes the old access token at each refresh, and other processes
        # rotating twice while this call is under way: the call still succeeds.
        rotations = iter(["second", "third"])

        def api(request):
            token = request.headers["Authorization"].removeprefix("Bearer ")
            if token == "third":
                return 200, {}, '{"ok": true}'
            credential = Credential.objects.get(pk=api_credential.pk)
            Credential.objects.filter(pk=credential.pk).update(
                access_token=next(rotations), version=credential.version + 1)
            return 401, {}, ""

        responses.add_callback(responses.GET, f"{API}/me", callback=api)
        response = api_credential.session().get("me")
        assert response.json() == {"ok": True}
        assert [c.request.headers["Authorization"] for c in responses.calls] == [
            f"Bearer {OLD_ACCESS}", "Bearer second", "Bearer third"]  # no forced refresh

    def test_at_most_three_requests_while_the_token_keeps_changing(self, api_credential,
                                                                    responses):
        def api(request):
            credential = Credential.objects.get(pk=api_credential.pk)
            Credential.objects.filter(pk=credential.pk).update(
                access_token=f"token-{credential.version + 1}", version=credential.version + 1)
            return 401, {}, ""

        responses.add_callback(responses.GET, f"{API}/me", callback=api)
        assert api_credential.session().get("me").status_code == 401
        assert len(responses.calls) == 3

    def test_401_and_the_grant_is_gone(self, api_credential, responses):
        responses.get(f"{API}/me", status=401)
        responses.post(TOKEN_URL, json={"error": "invalid_grant"}, status=400)
        with pytest.raises(ReauthorizationRequired):
            api_credential.session().get("me")

    def test_session_of_a_dead_credential(self, api_credential, responses):
        Credential.objects.filter(pk=api_credential.pk).update(status="revoked")
        api_credential.refresh_from_db()
        with pytest.raises(ReauthorizationRequired):
            api_credential.session().get("me")
        assert len(responses.calls) == 0


class TestSessionIsAnOAuth2Session:
    """Code written for requests_oauthlib.OAuth2Session works unchanged; the token is the
    engine's, never requests-oauthlib's to refresh."""

    def test_it_is_one(self, api_credential, responses):
        from requests_oauthlib import OAuth2Session

        def list_repos(session: OAuth2Session) -> list:  # host code as it was written
            assert session.authorized
            return session.get(f"{API}/user/repos", params={"page": 1}).json()

        responses.get(f"{API}/user/repos", json=[{"id": 7}])
        session = api_credential.session()
        assert isinstance(session, OAuth2Session)
        assert list_repos(session) == [{"id": 7}]
        assert responses.calls[0].request.headers["Authorization"] == f"Bearer {OLD_ACCESS}"
        assert session.client_id == api_credential.connector.client_id

    def test_its_token_is_the_credentials_without_the_refresh_token(self, api_credential):
        token = api_credential.session().token
        assert token["access_token"] == OLD_ACCESS and token["token_type"] == "Bearer"
        assert token["scope"] == ["read", "write"]
        assert abs(token["expires_at"] - api_credential.expires_at.timestamp()) < 1
        assert 3500 < token["expires_in"] <= 3600
        assert "refresh_token" not in token  # only the engine may use it
        with pytest.raises(AttributeError):
            api_credential.session().token = {"access_token": "mine"}

    def test_its_token_is_refreshed_when_it_expires_within_min_valid(self, credential,
                                                                     responses):
        responses.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600})
        assert credential.session(min_valid=300).token["access_token"] == "fresh"

    def test_refresh_token_goes_through_the_engine(self, api_credential, responses):
        responses.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600,
                                        "refresh_token": "rotated"})
        token = api_credential.session().refresh_token("https://ignored.example/token")
        assert token["access_token"] == "fresh"
        [call] = responses.calls
        assert call.request.url == TOKEN_URL  # the connector's, under the lease
        assert stored(api_credential).refresh_token == "rotated"
        assert events(api_credential) == ["refreshed"]

    def test_a_dead_grant_is_not_authorized_and_cannot_refresh(self, api_credential,
                                                               responses):
        responses.post(TOKEN_URL, json={"error": "invalid_grant"}, status=400)
        session = api_credential.session()
        with pytest.raises(ReauthorizationRequired):
            session.refresh_token()
        assert session.authorized is False

    def test_tokens_come_from_the_connect_flow_only(self, api_credential):
        session = api_credential.session()
        with pytest.raises(NotImplementedError):
            session.fetch_token("https://provider.example/token", code="c")
        with pytest.raises(NotImplementedError):
            session.authorization_url("https://provider.example/authorize")

    def test_compliance_hooks_run_on_each_request(self, api_credential, responses):
        responses.get(f"{API}/me", json={})

        def as_the_provider_wants(url, headers, data):
            return url + "?hooked=1", {**headers, "X-Hooked": "yes"}, data

        session = api_credential.session()
        session.register_compliance_hook("protected_request", as_the_provider_wants)
        session.get("me")
        request = responses.calls[0].request
        assert request.url == f"{API}/me?hooked=1" and request.headers["X-Hooked"] == "yes"
        assert request.headers["Authorization"] == f"Bearer {OLD_ACCESS}"

    def test_nothing_logs_the_token(self, api_credential, responses, caplog):
        responses.get(f"{API}/me", json={})
        with caplog.at_level(logging.DEBUG):
            session = api_credential.session()
            session.get("me")
            session.token  # noqa: B018 - read as host code reads it
        assert OLD_ACCESS not in caplog.text and OLD_REFRESH not in caplog.text


class TestSweepQuery:
    def test_due(self, connector, django_user_model):
        now = timezone.now()

        def make(name, **fields):
            values = dict(access_token="a", refresh_token="r", next_refresh_at=now - timedelta(1))
            values.update(fields)
            return Credential.objects.create(connector=connector, external_id=name, **values)

        due = make("due")
        lease_expired = make("lease-expired", lease_until=now - timedelta(seconds=1),
                             next_refresh_at=now - timedelta(2))
        make("later", next_refresh_at=now + timedelta(seconds=10))
        make("never", next_refresh_at=None)
        make("leased", lease_until=now + timedelta(seconds=10))
        make("reauth", status="reauth_required")
        make("error", status="error")
        assert set(Credential.objects.due(now)) == {due, lease_expired}
        assert list(Credential.objects.due()) == [lease_expired, due]  # soonest first
        batches = list(due_credential_ids(now, batch_size=1))
        assert sorted(batches) == sorted([[due.pk], [lease_expired.pk]])

    def test_the_sweep_query_uses_the_index(self, db):
        from django.db import connection

        if connection.vendor == "postgresql":
            # On an empty table the planner rightly prefers a scan; ask what it would use.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
        assert "alloy_oauth_cred_due" in Credential.objects.due().explain()
