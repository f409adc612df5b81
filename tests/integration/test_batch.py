"""The sweep's batches: many credentials refreshed at once by one process, with every
guarantee of one refresh (tests/unit/test_refresh.py) for each of them."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from celery.signals import task_postrun
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alloy_oauth import sql
from alloy_oauth.models import Credential
from alloy_oauth.refresh import Result, batch, leases, records
from alloy_oauth.refresh.batch import refresh_batch
from alloy_oauth.refresh.single import refresh_one
from alloy_oauth.signals import credential_refresh_failed, credential_refreshed

from tests.support.credentials import stored


class TokenEndpoint(ThreadingHTTPServer):
    """A provider on 127.0.0.1 that answers each refresh after ``latency`` seconds, as the
    refresh token asks (``rt-<n>``: success, rotated; ``rt-<n>-invalid_grant``,
    ``rt-<n>-503``, ``rt-<n>-hang``: those), and counts the requests in flight."""

    daemon_threads = True

    def __init__(self, latency: float = 0.2) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.presented: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/token"

    def answer(self, refresh_token: str) -> tuple[int, dict]:
        with self.lock:
            self.presented.append(refresh_token)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if refresh_token.endswith("-hang"):
                time.sleep(30)
            time.sleep(self.latency)
            if refresh_token.endswith("-invalid_grant"):
                return 400, {"error": "invalid_grant"}
            if refresh_token.endswith("-503"):
                return 503, {"error": "temporarily_unavailable"}
            return 200, {"access_token": f"AT-{refresh_token}", "token_type": "Bearer",
                         "expires_in": 3600, "refresh_token": f"{refresh_token}-next"}
        finally:
            with self.lock:
                self.in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        status, answer = self.server.answer(parse_qs(body)["refresh_token"][0])
        payload = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (a hang past its deadline)
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint():
    server = TokenEndpoint()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def provider_connector(make_connector, endpoint):
    return make_connector(slug="batch", token_url=endpoint.url)


def due_credentials(connector, tokens: list[str]) -> list[Credential]:
    now = timezone.now()
    return [Credential.objects.create(
        connector=connector, external_id=f"end-user-{index}", access_token=f"AT-{index}",
        refresh_token=token, expires_at=now + timedelta(seconds=60),
        next_refresh_at=now - timedelta(seconds=1),
    ) for index, token in enumerate(tokens)]


@pytest.fixture
def signals():
    received = Counter()

    def refreshed(credential, **kwargs):
        received["refreshed"] += 1

    def failed(credential, will_retry, **kwargs):
        received["failed, will retry" if will_retry else "failed"] += 1

    credential_refreshed.connect(refreshed, weak=False, dispatch_uid="batch-test-ok")
    credential_refresh_failed.connect(failed, weak=False, dispatch_uid="batch-test-failed")
    yield received
    credential_refreshed.disconnect(dispatch_uid="batch-test-ok")
    credential_refresh_failed.disconnect(dispatch_uid="batch-test-failed")


def test_a_batch_keeps_many_requests_in_flight(provider_connector, endpoint, settings,
                                               signals):
    settings.ALLOY_OAUTH = {"REFRESH_CONCURRENCY": 8}
    credentials = due_credentials(provider_connector, [f"rt-{i}" for i in range(24)])
    started = time.monotonic()
    counts = refresh_batch([c.pk for c in credentials])
    elapsed = time.monotonic() - started
    assert counts == Counter({Result.REFRESHED: 24, "skipped": 0})
    # Up to REFRESH_CONCURRENCY at once, never more (24 requests of 0.2 s one at a time
    # would take 4.8 s; that is a check of the overlap, not of speed).
    assert 4 <= endpoint.most_in_flight <= 8
    assert elapsed < 24 * endpoint.latency
    for index, credential in enumerate(credentials):
        row = stored(credential)
        assert (row.access_token, row.refresh_token) == (f"AT-rt-{index}", f"rt-{index}-next")
        assert (row.status, row.version, row.lease_until, row.lease_token) == ("active", 1,
                                                                               None, "")
        assert list(row.events.values_list("kind", flat=True)) == ["refreshed"]
    assert signals == {"refreshed": 24}
    assert sorted(endpoint.presented) == sorted(f"rt-{i}" for i in range(24))


def test_only_due_and_free_credentials_are_refreshed(provider_connector, endpoint):
    due, later, leased, dead = due_credentials(provider_connector,
                                               ["rt-1", "rt-2", "rt-3", "rt-4"])
    Credential.objects.filter(pk=later.pk).update(
        next_refresh_at=timezone.now() + timedelta(hours=1))
    Credential.objects.filter(pk=leased.pk).update(
        lease_until=timezone.now() + timedelta(seconds=30), lease_token="someone-else")
    Credential.objects.filter(pk=dead.pk).update(status="reauth_required")
    counts = refresh_batch([due.pk, later.pk, leased.pk, dead.pk, due.pk, 987654])
    assert counts == Counter({Result.REFRESHED: 1, "skipped": 4})
    assert endpoint.presented == ["rt-1"]
    assert stored(leased).lease_token == "someone-else"


def test_each_outcome_is_classified_as_for_one_refresh(provider_connector, endpoint, settings,
                                                       signals):
    settings.ALLOY_OAUTH = {"HTTP_TIMEOUT": 1, "LEASE_SECONDS": 30}
    ok, dead, down, hanging = due_credentials(
        provider_connector, ["rt-1", "rt-2-invalid_grant", "rt-3-503", "rt-4-hang"])
    counts = refresh_batch([ok.pk, dead.pk, down.pk, hanging.pk])
    assert counts == Counter({Result.REFRESHED: 1, Result.REAUTH_REQUIRED: 1, Result.RETRY: 2,
                              "skipped": 0})
    assert stored(ok).refresh_token == "rt-1-next"
    assert stored(dead).status == "reauth_required"
    for failed in (down, hanging):
        row = stored(failed)
        assert (row.status, row.failure_count) == ("active", 1)
        assert row.next_refresh_at > timezone.now()
        assert (row.access_token, row.refresh_token) == (failed.access_token,
                                                         failed.refresh_token)
    assert stored(down).lease_until is None
    # No answer came: the provider may still rotate, so the lease runs out by itself, under
    # a token nobody extends (the batch's own stopped with it), and nobody may send now.
    row = stored(hanging)
    assert row.lease_until > timezone.now() and row.lease_token
    assert refresh_one(hanging.pk, force=True).result is Result.BUSY
    assert signals == {"refreshed": 1, "failed, will retry": 2}


@pytest.mark.django_db(transaction=True)  # the provider's thread writes too
def test_a_credential_reconnected_meanwhile_keeps_its_new_tokens(provider_connector,
                                                                 endpoint):
    [credential] = due_credentials(provider_connector, ["rt-1"])
    original = endpoint.answer

    def reconnect_while_the_request_is_out(refresh_token):  # in the provider's thread
        try:
            Credential.objects.filter(pk=credential.pk).update(
                access_token="reconnected", refresh_token="reconnected-rt", version=7)
        finally:
            connections.close_all()  # or it outlives the test, and the test database
        return original(refresh_token)

    endpoint.answer = reconnect_while_the_request_is_out
    assert refresh_batch([credential.pk]) == Counter({Result.SUPERSEDED: 1, "skipped": 0})
    row = stored(credential)
    assert (row.access_token, row.refresh_token, row.lease_until) == (
        "reconnected", "reconnected-rt", None)


def test_a_batch_is_few_statements(provider_connector, endpoint, settings):
    settings.ALLOY_OAUTH = {"REFRESH_CONCURRENCY": 20}
    credentials = due_credentials(provider_connector, [f"rt-{i}" for i in range(20)])
    with CaptureQueriesContext(connection) as queries:
        refresh_batch([c.pk for c in credentials])
    statements = [query["sql"].split(" ", 1)[0] for query in queries.captured_queries
                  if query["sql"].split(" ", 1)[0] not in ("SAVEPOINT", "RELEASE", "BEGIN",
                                                           "COMMIT")]
    # One statement takes the leases of the whole wave and reads the credentials; then the
    # outcomes are written as they arrive, all those that have arrived in one statement on
    # PostgreSQL (a transaction of an UPDATE per row and one INSERT elsewhere).
    assert statements[0] == "UPDATE"
    if connection.vendor == "postgresql":
        writes = statements[1:]
        assert set(writes) == {"WITH"} and len(writes) <= 20, statements
    elif sql.update_can_return(connection):
        assert statements.count("UPDATE") == 1 + 20 and statements.count("INSERT") <= 20
    assert all(stored(c).version == 1 for c in credentials)


def test_the_budget_stops_new_requests_and_leaves_the_rest_free(provider_connector, endpoint,
                                                                settings):
    settings.ALLOY_OAUTH = {"REFRESH_CONCURRENCY": 2}
    credentials = due_credentials(provider_connector, [f"rt-{i}" for i in range(6)])
    counts = refresh_batch([c.pk for c in credentials], budget=0.1)
    assert counts == Counter({Result.REFRESHED: 2, "skipped": 4})
    rows = [stored(c) for c in credentials]
    assert [row.version for row in rows] == [1, 1, 0, 0, 0, 0]
    assert all(row.lease_until is None for row in rows)  # the rest is free for the next sweep


def test_one_outcome_the_database_refuses_does_not_hold_back_the_others(
        provider_connector, endpoint, settings, monkeypatch):
    settings.ALLOY_OAUTH = {"REFRESH_CONCURRENCY": 4, "LEASE_SECONDS": 4}
    credentials = due_credentials(provider_connector, [f"rt-{i}" for i in range(4)])
    poisoned = credentials[2].pk
    write = records.write_with_events

    def refuse_one(writes):
        if any(w.credential_id == poisoned for w in writes):
            raise ValueError("this row cannot be stored")
        return write(writes)

    monkeypatch.setattr(records, "write_with_events", refuse_one)
    endpoint.latency = 0
    counts = refresh_batch([c.pk for c in credentials])
    assert counts[Result.REFRESHED] == 3 and counts["unrecorded"] == 1
    for credential in credentials:
        row = stored(credential)
        if credential.pk == poisoned:
            # Not recorded: its lease runs out (the request went; the provider rotated).
            assert row.version == 0 and row.lease_until > timezone.now()
        else:
            assert row.version == 1 and row.refresh_token.endswith("-next")


def test_a_soft_time_limit_stops_new_requests_and_still_writes_those_in_flight(
        provider_connector, endpoint, settings, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    settings.ALLOY_OAUTH = {"REFRESH_CONCURRENCY": 2}
    credentials = due_credentials(provider_connector, [f"rt-{i}" for i in range(6)])
    next_answer = batch._next_answer
    strikes = iter([True])

    def interrupted_once(answers):
        if next(strikes, False):
            raise SoftTimeLimitExceeded()
        return next_answer(answers)

    monkeypatch.setattr(batch, "_next_answer", interrupted_once)
    with pytest.raises(SoftTimeLimitExceeded):
        refresh_batch([c.pk for c in credentials])
    rows = [stored(c) for c in credentials]
    # The two in flight when it struck were written; nothing else was started.
    assert [row.version for row in rows] == [1, 1, 0, 0, 0, 0]
    assert all(row.lease_until is None for row in rows)
    assert sorted(endpoint.presented) == ["rt-0", "rt-1"]


def test_request_threads_never_touch_the_database(provider_connector, endpoint, settings,
                                                  monkeypatch):
    """However many requests are in flight, a batch uses this thread's connection and the
    lease keeper's: the pool's threads only talk to providers."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    settings.ALLOY_OAUTH = {"REFRESH_CONCURRENCY": 8}
    credentials = due_credentials(provider_connector, [f"rt-{i}" for i in range(16)])
    threads_using_the_database = set()
    cursor = BaseDatabaseWrapper.cursor

    def watched(self):
        threads_using_the_database.add(threading.current_thread().name)
        return cursor(self)

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", watched)
    refresh_batch([c.pk for c in credentials])
    assert not [name for name in threads_using_the_database
                if name.startswith("alloy_oauth-refresh")]
    assert all(stored(c).version == 1 for c in credentials)


def test_the_sweep_and_its_batches_through_a_worker(provider_connector, endpoint,
                                                    celery_worker, settings):
    from alloy_oauth import tasks

    settings.ALLOY_OAUTH = {"SWEEP_BATCH_SIZE": 5}
    credentials = due_credentials(provider_connector, [f"rt-{i}" for i in range(12)])
    batches_done = threading.Semaphore(0)

    def count_batch(sender, **kwargs):
        if sender.name == "alloy_oauth.tasks.refresh_credential_batch":
            batches_done.release()

    task_postrun.connect(count_batch, weak=False, dispatch_uid="batch-through-a-worker")
    try:
        assert tasks.refresh_due_credentials()["enqueued"] == 12
        # Told by the worker when each batch task has returned, rather than by polling the
        # database: in-memory SQLite locks whole tables between connections, and a read here
        # could collide with the worker's writes (12 credentials in batches of 5: 3 tasks).
        assert all(batches_done.acquire(timeout=30) for _ in range(3))
    finally:
        task_postrun.disconnect(dispatch_uid="batch-through-a-worker")
    assert sorted(stored(c).refresh_token for c in credentials) == sorted(
        f"rt-{i}-next" for i in range(12))
    assert leases.credentials().filter(lease_until__isnull=False).count() == 0
