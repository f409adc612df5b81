"""Webhooks: which endpoints get which events, signed deliveries to a real receiver on
127.0.0.1 (which checks each signature with the snippet of docs/events.md), retries after
500s and timeouts, the URL policy, the pending cap, a real Celery worker, the admin."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth import refresh, tasks, validation
from alloy_oauth.models import Credential, WebhookDelivery, WebhookEndpoint
from alloy_oauth.refresh.single import refresh_one
from alloy_oauth.signals import credential_connected, credential_recovered, credential_revoked, send
from alloy_oauth.webhooks import delivery, events, signing, verify

from tests.support.local_server import LocalServer, documented_verifier

SECRET = "whsec-test-0123456789abcdefghijkl"
ALLOW_LOOPBACK = {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "HTTP_TIMEOUT": 1,
                  "LEASE_SECONDS": 4, "WEBHOOK_RETRY_BACKOFF": 1}


@pytest.fixture
def loopback_allowed(settings):
    settings.ALLOY_OAUTH = dict(ALLOW_LOOPBACK)
    return settings


@pytest.fixture
def receiver():
    with LocalServer(secret=SECRET) as server:
        yield server


def make_endpoint(url: str, **fields) -> WebhookEndpoint:
    connectors = fields.pop("connectors", [])
    values = {"secret": SECRET, "events": list(events.EVENT_TYPES)}
    values.update(fields)
    endpoint = WebhookEndpoint.objects.create(url=url, **values)
    endpoint.connectors.set(connectors)
    return endpoint


def make_credential(connector, name="alice", **fields) -> Credential:
    values = dict(access_token=f"access-{name}-secret-token", refresh_token=f"refresh-{name}-secret",
                  expires_at=timezone.now() + timedelta(hours=1))
    values.update(fields)
    return Credential.objects.create(connector=connector, external_id=name, **values)


def due_now(delivery_row: WebhookDelivery) -> None:
    # A second ago: attempt() compares with the database's clock, which SQLite reads to the
    # millisecond; this process's now, to the microsecond, may be just ahead of it.
    WebhookDelivery.objects.filter(pk=delivery_row.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1))


class TestSigning:
    def test_sign_and_verify(self):
        body = b'{"id":"x"}'
        now = int(time.time())
        header = signing.signature_header([SECRET], now, body)
        assert header.startswith(f"t={now},v1=")
        documented = documented_verifier()
        for check in (verify, documented):
            assert check(SECRET, header, body)
            assert not check(SECRET, header, body + b" ")  # tampered
            assert not check("another-secret-of-enough-length", header, body)
            assert not check(SECRET, header.replace(f"t={now}", f"t={now + 1}"), body)
            assert not check(SECRET, "v1=" + header.split("v1=")[1], body)  # no timestamp
            assert not check(SECRET, "", body)

    def test_replay_window(self):
        body = b"{}"
        old = int(time.time()) - signing.TOLERANCE - 1
        header = signing.signature_header([SECRET], old, body)
        assert not verify(SECRET, header, body)
        assert not documented_verifier()(SECRET, header, body)
        assert verify(SECRET, header, body, tolerance=signing.TOLERANCE + 60)

    def test_two_secrets_while_rotating(self):
        body = b"{}"
        header = signing.signature_header([SECRET, "the-previous-secret-value-xyz"],
                                          int(time.time()), body)
        assert header.count("v1=") == 2
        assert verify(SECRET, header, body)
        assert verify("the-previous-secret-value-xyz", header, body)


class TestWhoGetsWhat:
    def test_events_connectors_and_active(self, connector, make_connector, loopback_allowed,
                                          django_capture_on_commit_callbacks):
        other = make_connector()
        everything = make_endpoint("https://a.example/hook")
        revocations_of_other = make_endpoint("https://b.example/hook", events=[events.REVOKED],
                                             connectors=[other])
        make_endpoint("https://c.example/hook", is_active=False)
        credential = make_credential(connector)
        with django_capture_on_commit_callbacks() as callbacks:
            send(credential_revoked, credential)
        assert [d.endpoint for d in WebhookDelivery.objects.all()] == [everything]
        assert len(callbacks) == 1
        send(credential_revoked, make_credential(other, "bob"))
        assert {d.endpoint for d in WebhookDelivery.objects.filter(connector=other)} == {
            everything, revocations_of_other}
        send(credential_connected, make_credential(other, "carol"), created=True)
        assert set(WebhookDelivery.objects.filter(event=events.CONNECTED)
                   .values_list("endpoint", flat=True)) == {everything.pk}

    def test_one_event_id_for_every_endpoint(self, connector):
        make_endpoint("https://a.example/hook")
        make_endpoint("https://b.example/hook")
        send(credential_revoked, make_credential(connector))
        first, second = WebhookDelivery.objects.all()
        assert first.event_id == second.event_id
        assert first.payload == second.payload and first.payload["id"] == str(first.event_id)

    def test_no_endpoint_no_delivery_one_query(self, connector, django_assert_num_queries):
        credential = make_credential(connector)
        with django_assert_num_queries(1):
            send(credential_revoked, credential)
        assert not WebhookDelivery.objects.exists()

    def test_connected_and_reconnected(self, connector):
        make_endpoint("https://a.example/hook")
        credential = make_credential(connector)
        send(credential_connected, credential, created=True)
        send(credential_connected, credential, created=False)
        assert list(WebhookDelivery.objects.order_by("pk").values_list("event", flat=True)) == [
            events.CONNECTED, events.RECONNECTED]

    def test_payload_has_ids_and_statuses_only(self, connector):
        make_endpoint("https://a.example/hook")
        credential = make_credential(connector, status="reauth_required")
        send(credential_revoked, credential)
        payload = WebhookDelivery.objects.get().payload
        assert payload["type"] == "credential.revoked"
        assert set(payload) == {"id", "type", "created_at", "data"}
        assert payload["data"]["credential"] == {
            "id": credential.pk, "connector": "example", "user_id": None,
            "external_id": "alice", "account": None, "connection_config": {}, "metadata": {},
            "status": "reauth_required", "failure_count": 0,
            "expires_at": credential.expires_at.isoformat().replace("+00:00", "Z"),
            "next_refresh_at": None, "last_refreshed_at": None}
        text = json.dumps(payload)
        for secret in (credential.access_token, credential.refresh_token,
                       connector.client_secret, SECRET):
            assert secret not in text

    def test_payload_says_which_account(self, connector):
        """Connection parameters and metadata (issue 13): which shop, which org."""
        connector.account_label = "{shop}"
        connector.save()
        make_endpoint("https://a.example/hook")
        credential = make_credential(connector, connection_config={"shop": "acme"},
                                     metadata={"realmId": "9130"})
        send(credential_revoked, credential)
        data = WebhookDelivery.objects.get().payload["data"]["credential"]
        assert (data["account"], data["connection_config"], data["metadata"]) == (
            "acme", {"shop": "acme"}, {"realmId": "9130"})

    def test_validation_failed(self, connector, settings):
        make_endpoint("https://a.example/hook")
        connector.token_url = "http://provider.example/token"  # plain http: refused
        connector.save()  # (unsaved edits' failures are the page's only: no event)
        validation.preflight(connector, redirect_uri="https://app.example/cb")
        [row] = WebhookDelivery.objects.all()
        assert row.event == events.VALIDATION_FAILED
        assert row.payload["data"]["connector"] == {"id": connector.pk, "slug": "example",
                                                    "name": "Example"}
        assert "must use https" in row.payload["data"]["message"]
        validation.record_failure(connector, "The provider refused the code.")
        assert WebhookDelivery.objects.count() == 2

    def test_a_failing_webhook_never_fails_the_refresh(self, connector, responses, monkeypatch):
        """Whatever goes wrong while recording the event (here the database), the refresh's
        own outcome stands."""
        make_endpoint("https://a.example/hook")
        credential = make_credential(connector, next_refresh_at=timezone.now())
        responses.post(connector.token_url, status=503, body="")

        def broken(*args, **kwargs):
            raise RuntimeError("the delivery table is gone")

        monkeypatch.setattr(events, "_pending_count", broken)
        assert refresh_one(credential.pk).result is refresh.Result.RETRY
        assert Credential.objects.get(pk=credential.pk).failure_count == 1


def test_a_dead_endpoint_never_slows_a_refresh(connector, responses, receiver, loopback_allowed,
                                               django_capture_on_commit_callbacks):
    """The refresh records the event and hands it to the broker; nobody waits for the
    endpoint (which here would take 5 s to answer)."""
    receiver.default = ("sleep", 5, 200)
    make_endpoint(receiver.url + "/hook")
    credential = make_credential(connector, next_refresh_at=timezone.now())
    responses.post(connector.token_url, status=503, body="")
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh_one(credential.pk).result is refresh.Result.RETRY
    assert time.monotonic() - started < 2
    assert receiver.requests == []
    assert WebhookDelivery.objects.get().status == "pending"


class TestThePendingCap:
    def test_events_beyond_the_cap_are_dropped_and_counted(self, connector, settings,
                                                            django_capture_on_commit_callbacks):
        from prometheus_client import REGISTRY

        settings.ALLOY_OAUTH = {"WEBHOOK_MAX_PENDING": 2}
        make_endpoint("https://a.example/hook")
        credential = make_credential(connector)
        labels = {"event": events.REVOKED, "result": "dropped"}
        before = REGISTRY.get_sample_value("alloy_oauth_webhook_deliveries_total", labels) or 0
        with django_capture_on_commit_callbacks() as callbacks:
            for _ in range(4):
                send(credential_revoked, credential)
        statuses = list(WebhookDelivery.objects.order_by("pk").values_list("status", flat=True))
        assert statuses == ["pending", "pending", "dropped", "dropped"]
        assert len(callbacks) == 2  # dropped ones are not enqueued
        assert REGISTRY.get_sample_value("alloy_oauth_webhook_deliveries_total",
                                         labels) == before + 2
        dropped = WebhookDelivery.objects.filter(status="dropped").first()
        assert "already pending" in dropped.last_error and dropped.next_attempt_at is None


class TestTheBroker:
    def test_the_message_carries_the_delivery_id_only(self, connector, broker,
                                                      django_capture_on_commit_callbacks):
        make_endpoint("https://a.example/hook")
        credential = make_credential(connector)
        with django_capture_on_commit_callbacks(execute=True):
            send(credential_revoked, credential)
        [message] = broker.drain()
        row = WebhookDelivery.objects.get()
        assert message["headers"]["task"] == "alloy_oauth.tasks.deliver_webhook"
        assert json.loads(message["body"])[0] == [row.pk]
        raw = json.dumps(message["headers"]) + str(message["body"])
        for secret in (credential.access_token, credential.refresh_token, SECRET,
                       connector.client_secret, credential.external_id):
            assert secret not in raw

    def test_a_broker_that_refuses_is_not_waited_for(self, connector, monkeypatch,
                                                     django_capture_on_commit_callbacks):
        make_endpoint("https://a.example/hook")

        def refuse(*args, **kwargs):
            raise ConnectionRefusedError("broker down")

        monkeypatch.setattr(tasks.deliver_webhook, "apply_async", refuse)
        with django_capture_on_commit_callbacks(execute=True):
            send(credential_revoked, make_credential(connector))
        assert WebhookDelivery.objects.get().status == "pending"  # the sweep will enqueue it

    def test_the_sweep_enqueues_lost_deliveries_and_forgets_old_ones(self, connector, broker,
                                                                     settings):
        settings.ALLOY_OAUTH = {"WEBHOOK_RETENTION": 3600}
        endpoint = make_endpoint("https://a.example/hook")
        now = timezone.now()
        lost = WebhookDelivery.objects.create(endpoint=endpoint, event="x", payload={},
                                              next_attempt_at=now - timedelta(minutes=2))
        WebhookDelivery.objects.create(endpoint=endpoint, event="x", payload={},
                                       next_attempt_at=now)  # its message is on its way
        WebhookDelivery.objects.create(endpoint=endpoint, event="x", payload={},
                                       status="succeeded", created_at=now - timedelta(hours=2))
        WebhookDelivery.objects.create(endpoint=endpoint, event="x", payload={},
                                       status="failed", created_at=now - timedelta(minutes=5))
        result = tasks.refresh_due_credentials()
        assert (result["webhooks_enqueued"], result["webhooks_purged"]) == (1, 1)
        [message] = broker.drain()
        assert message["headers"]["task"] == "alloy_oauth.tasks.deliver_webhook"
        assert json.loads(message["body"])[0] == [lost.pk] and message["headers"]["expires"]
        assert WebhookDelivery.objects.count() == 3


@pytest.fixture
def pending(connector, receiver, loopback_allowed):
    """One pending delivery of a revocation to the receiver."""
    endpoint = make_endpoint(receiver.url + "/hook")
    send(credential_revoked, make_credential(connector))
    return WebhookDelivery.objects.get(endpoint=endpoint)


class TestAttempts:
    def test_delivered_signed(self, pending, receiver):
        assert delivery.attempt(pending.pk).result == "succeeded"
        [request] = receiver.requests
        assert request["verified"] is True
        headers = request["headers"]
        assert headers["Alloy-OAuth-Event-Id"] == str(pending.event_id)
        assert headers["Alloy-OAuth-Event"] == "credential.revoked"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(request["body"]) == pending.payload
        row = WebhookDelivery.objects.get(pk=pending.pk)
        assert (row.status, row.attempts, row.response_code, row.next_attempt_at) == (
            "succeeded", 1, 200, None)
        assert row.delivered_at is not None
        # Done: another message for it sends nothing.
        assert delivery.attempt(pending.pk).result == "not_due"
        assert len(receiver.requests) == 1

    def test_retried_after_a_500_and_a_timeout(self, pending, receiver):
        receiver.answers.extend([500, ("sleep", 2.5, 200)])
        attempted = delivery.attempt(pending.pk)
        assert attempted.result == "retry" and 0.5 <= attempted.retry_in <= 1
        row = WebhookDelivery.objects.get(pk=pending.pk)
        assert (row.status, row.attempts, row.response_code) == ("pending", 1, 500)
        assert "answered HTTP 500" in row.last_error and row.next_attempt_at > timezone.now()
        # Not before its time.
        assert delivery.attempt(pending.pk).result == "not_due"
        due_now(pending)
        started = time.monotonic()
        assert delivery.attempt(pending.pk).result == "retry"
        assert time.monotonic() - started < 2.4  # HTTP_TIMEOUT is 1 s
        row = WebhookDelivery.objects.get(pk=pending.pk)
        assert (row.attempts, row.response_code) == (2, None)
        assert "did not answer within 1 seconds" in row.last_error
        # 1 to 2 s after the attempt (the second backoff), less the time this test took since.
        assert 0.5 <= (row.next_attempt_at - timezone.now()).total_seconds() <= 2
        due_now(pending)
        assert delivery.attempt(pending.pk).result == "succeeded"
        requests = receiver.wait_for(3)
        # The same event each time, signed anew each time.
        assert all(r["verified"] for r in requests)
        assert {r["headers"]["Alloy-OAuth-Event-Id"] for r in requests} == {str(pending.event_id)}
        assert len({r["body"] for r in requests}) == 1
        assert WebhookDelivery.objects.get(pk=pending.pk).attempts == 3

    def test_gives_up_after_the_last_attempt(self, pending, receiver, settings):
        settings.ALLOY_OAUTH = {**ALLOW_LOOPBACK, "WEBHOOK_MAX_ATTEMPTS": 2}
        receiver.default = 503
        assert delivery.attempt(pending.pk).result == "retry"
        due_now(pending)
        assert delivery.attempt(pending.pk).result == "failed"
        row = WebhookDelivery.objects.get(pk=pending.pk)
        assert (row.status, row.attempts, row.response_code, row.next_attempt_at) == (
            "failed", 2, 503, None)
        assert "Gave up after 2 attempts" in row.last_error

    def test_a_redirect_is_not_followed(self, pending, receiver):
        receiver.answers.append(("redirect", receiver.url + "/elsewhere"))
        assert delivery.attempt(pending.pk).result == "retry"
        assert [r["path"] for r in receiver.requests] == ["/hook"]
        assert WebhookDelivery.objects.get(pk=pending.pk).response_code == 302

    def test_a_disabled_endpoint_fails_at_once(self, pending, receiver):
        WebhookEndpoint.objects.update(is_active=False)
        assert delivery.attempt(pending.pk).result == "failed"
        assert WebhookDelivery.objects.get(pk=pending.pk).last_error == "The endpoint is disabled."
        assert not receiver.requests

    def test_an_undecryptable_secret_sends_nothing(self, pending, receiver, settings):
        settings.FERNET_KEYS = ["another-key-that-cannot-decrypt-the-stored-values"]
        assert delivery.attempt(pending.pk).result == "failed"
        assert "cannot be decrypted" in WebhookDelivery.objects.get(pk=pending.pk).last_error
        assert not receiver.requests

    def test_the_previous_secret_signs_too_for_a_while(self, pending, receiver):
        WebhookEndpoint.objects.update(secret="the-new-secret-0123456789abcd",
                                       previous_secret=SECRET,
                                       previous_secret_expires_at=timezone.now() + timedelta(hours=1))
        assert delivery.attempt(pending.pk).result == "succeeded"
        [request] = receiver.requests
        assert request["verified"]  # the receiver still has the old secret
        assert request["headers"]["Alloy-OAuth-Signature"].count("v1=") == 2

    def test_resend(self, pending, receiver):
        assert delivery.attempt(pending.pk).result == "succeeded"
        assert delivery.resend([pending.pk]) == 1
        row = WebhookDelivery.objects.get(pk=pending.pk)
        assert (row.status, row.attempts, row.delivered_at) == ("pending", 0, None)
        assert delivery.attempt(pending.pk).result == "succeeded"
        assert [r["headers"]["Alloy-OAuth-Event-Id"] for r in receiver.requests] == [
            str(pending.event_id)] * 2


class TestTheURLPolicy:
    @pytest.fixture
    def resolves_to(self, monkeypatch):
        answers = {}

        def getaddrinfo(host, port, *args, **kwargs):
            if host not in answers:
                raise socket.gaierror("unknown")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return answers

    @pytest.mark.parametrize("address", [
        "127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "224.0.0.1"])
    def test_non_public_addresses_are_refused(self, resolves_to, address):
        resolves_to["hooks.example"] = address
        problem = delivery.url_problem("https://hooks.example/in")
        assert problem and "not a public address" in problem

    def test_public_addresses_pass(self, resolves_to):
        resolves_to["hooks.example"] = "93.184.216.34"
        assert delivery.url_problem("https://hooks.example/in") is None

    def test_allowed_networks(self, resolves_to, settings):
        resolves_to["internal.example"] = "10.20.3.4"
        settings.ALLOY_OAUTH = {"WEBHOOK_ALLOWED_NETWORKS": ["10.20.0.0/16"]}
        assert delivery.url_problem("https://internal.example/in") is None
        resolves_to["internal.example"] = "10.21.3.4"
        assert "not a public address" in delivery.url_problem("https://internal.example/in")

    def test_the_provider_rule_and_dns(self, resolves_to, settings):
        resolves_to["hooks.example"] = "93.184.216.34"
        assert "must use https" in delivery.url_problem("http://hooks.example/in")
        assert "does not resolve" in delivery.url_problem("https://nowhere.example/in")
        settings.DEBUG = True  # a developer's machine: anything
        assert delivery.url_problem("http://hooks.example/in") is None
        assert delivery.url_problem("http://127.0.0.1:8000/in") is None

    def test_a_refused_url_is_never_contacted(self, connector, receiver, settings):
        settings.ALLOY_OAUTH = {"HTTP_TIMEOUT": 1, "LEASE_SECONDS": 4}  # loopback not allowed
        make_endpoint(receiver.url + "/hook")
        send(credential_revoked, make_credential(connector))
        row = WebhookDelivery.objects.get()
        assert delivery.attempt(row.pk).result == "failed"
        assert "127.0.0.1, which is not a public address" in (
            WebhookDelivery.objects.get(pk=row.pk).last_error)
        assert not receiver.requests


@pytest.fixture
def recoveries():
    """What ``credential_recovered`` receivers are given."""
    received = []
    credential_recovered.connect(lambda credential, **kw: received.append(kw), weak=False,
                                 dispatch_uid="test-recovered")
    yield received
    credential_recovered.disconnect(dispatch_uid="test-recovered")


class TestRecovered:
    """A provider that fails, then comes back: ``recovered``, with how long it failed."""

    def test_after_transient_failures(self, connector, loopback_allowed, receiver, recoveries):
        make_endpoint(receiver.url + "/hook", events=[events.RECOVERED, events.REFRESH_FAILED])
        with LocalServer() as provider:
            provider.answers.extend([503, 503])
            provider.default = (200, {"access_token": "new-access-token-value",
                                      "expires_in": 3600})
            connector.token_url = provider.url + "/token"
            connector.save()
            credential = make_credential(connector, next_refresh_at=timezone.now())
            outcomes = []
            first_failure = timezone.now()
            for _ in range(3):
                Credential.objects.filter(pk=credential.pk).update(next_refresh_at=timezone.now())
                outcomes.append(refresh_one(credential.pk).result)
                time.sleep(0.3)
        assert outcomes == ["retry", "retry", "refreshed"]
        [recovered] = recoveries
        assert recovered["failures"] == 2
        assert timedelta(seconds=0.5) <= recovered["failing_for"] <= timezone.now() - first_failure
        kinds = list(credential.events.order_by("created_at", "id").values_list("kind", flat=True))
        assert kinds == ["refresh_failed", "refresh_failed", "recovered"]
        assert "again after 2 consecutive failure(s)" in credential.events.first().detail
        row = Credential.objects.get(pk=credential.pk)
        assert (row.failure_count, row.failing_since) == (0, None)
        hooks = list(WebhookDelivery.objects.order_by("pk"))
        assert [h.event for h in hooks] == [events.REFRESH_FAILED] * 2 + [events.RECOVERED]
        assert hooks[0].payload["data"]["will_retry"] is True
        data = hooks[-1].payload["data"]
        assert data["failures"] == 2 and data["failing_seconds"] == int(
            recovered["failing_for"].total_seconds())
        assert data["credential"]["status"] == "active"
        for hook in hooks:
            assert delivery.attempt(hook.pk).result == "succeeded"
        assert all(r["verified"] for r in receiver.wait_for(3))

    def test_from_error_with_a_forced_refresh(self, connector, responses, recoveries):
        """A credential the operator's broken client put in error comes back."""
        credential = make_credential(connector, next_refresh_at=timezone.now())
        responses.post(connector.token_url, status=401, json={"error": "invalid_client"})
        assert refresh_one(credential.pk).result is refresh.Result.FAILED
        assert Credential.objects.get(pk=credential.pk).failing_since is not None
        responses.replace(responses.POST, connector.token_url,
                          json={"access_token": "fresh", "expires_in": 60})
        assert refresh_one(credential.pk, force=True).result is (
            refresh.Result.REFRESHED)
        [recovered] = recoveries
        assert recovered["failures"] == 1 and recovered["failing_for"] > timedelta(0)

    def test_not_after_a_plain_success(self, connector, responses, recoveries):
        credential = make_credential(connector, next_refresh_at=timezone.now())
        responses.post(connector.token_url, json={"access_token": "fresh", "expires_in": 60})
        assert refresh_one(credential.pk).result is refresh.Result.REFRESHED
        assert recoveries == []
        assert list(credential.events.values_list("kind", flat=True)) == ["refreshed"]

    def test_failing_since_is_the_first_failure_of_the_run(self, connector, responses):
        credential = make_credential(connector, next_refresh_at=timezone.now())
        responses.post(connector.token_url, status=503, body="")
        refresh_one(credential.pk)
        first = Credential.objects.get(pk=credential.pk).failing_since
        Credential.objects.filter(pk=credential.pk).update(next_refresh_at=timezone.now())
        refresh_one(credential.pk)
        row = Credential.objects.get(pk=credential.pk)
        assert row.failure_count == 2 and row.failing_since == first


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_retries_after_a_500(celery_worker, connector, receiver, settings):
    """Through the broker and a real worker: the first attempt gets a 500, the worker tries
    again after the backoff, the second is delivered; the same event both times."""
    settings.ALLOY_OAUTH = dict(ALLOW_LOOPBACK)
    receiver.answers.append(500)
    make_endpoint(receiver.url + "/hook")
    credential = make_credential(connector)
    with transaction.atomic():  # enqueued once committed
        send(credential_revoked, credential)
        assert receiver.requests == []
    requests = receiver.wait_for(2)
    assert len(requests) == 2, requests
    assert all(r["verified"] for r in requests)
    assert requests[1]["at"] - requests[0]["at"] >= 0.5  # the backoff
    assert requests[0]["headers"]["Alloy-OAuth-Event-Id"] == (
        requests[1]["headers"]["Alloy-OAuth-Event-Id"])
    deadline = time.monotonic() + 10
    while WebhookDelivery.objects.get().status != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.response_code) == ("succeeded", 2, 200)


class TestAdmin:
    def add(self, client, **data):
        values = {"url": "https://hooks.example/in", "description": "", "is_active": "on",
                  "secret": SECRET, "events": list(events.EVENT_TYPES)}
        values.update(data)
        return client.post(reverse("admin:alloy_oauth_webhookendpoint_add"), values)

    @pytest.fixture
    def public_dns(self, monkeypatch):
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))])

    def test_add_with_a_write_only_secret(self, admin_client, public_dns):
        page = admin_client.get(reverse("admin:alloy_oauth_webhookendpoint_add"))
        assert page.status_code == 200 and 'type="password"' in page.content.decode()
        assert self.add(admin_client).status_code == 302
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.secret == SECRET and endpoint.events == list(events.EVENT_TYPES)
        html = admin_client.get(reverse("admin:alloy_oauth_webhookendpoint_change",
                                        args=[endpoint.pk])).content.decode()
        assert SECRET not in html and "A secret is stored" in html

    def test_the_secret_is_required_and_long(self, admin_client, public_dns):
        assert "Enter the signing secret" in self.add(admin_client, secret="").content.decode()
        assert "at least 24 characters" in self.add(admin_client, secret="short").content.decode()
        assert not WebhookEndpoint.objects.exists()

    def test_the_url_policy(self, admin_client, monkeypatch):
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))])
        html = self.add(admin_client).content.decode()
        assert "169.254.169.254, which is not a public address" in html
        html = self.add(admin_client, url="http://hooks.example/in").content.decode()
        assert "must use https" in html
        assert not WebhookEndpoint.objects.exists()

    def test_a_new_secret_keeps_the_old_one_signing_for_a_day(self, admin_client, public_dns):
        self.add(admin_client)
        endpoint = WebhookEndpoint.objects.get()
        url = reverse("admin:alloy_oauth_webhookendpoint_change", args=[endpoint.pk])
        data = {"url": endpoint.url, "description": "", "is_active": "on",
                "events": [events.REVOKED]}
        assert admin_client.post(url, {**data, "secret": ""}).status_code == 302  # kept
        endpoint.refresh_from_db()
        assert (endpoint.secret, endpoint.previous_secret, endpoint.events) == (
            SECRET, "", [events.REVOKED])
        new = "the-new-secret-0123456789abcdef"
        assert admin_client.post(url, {**data, "secret": new}).status_code == 302
        endpoint.refresh_from_db()
        assert (endpoint.secret, endpoint.previous_secret) == (new, SECRET)
        assert timedelta(hours=23) < endpoint.previous_secret_expires_at - timezone.now() <= (
            timedelta(hours=24))
        html = admin_client.get(url).content.decode()
        assert "signed with it too until" in html and SECRET not in html and new not in html

    def test_deliveries_list_and_resend(self, admin_client, connector, broker,
                                        django_capture_on_commit_callbacks):
        endpoint = make_endpoint("https://a.example/hook")
        send(credential_revoked, make_credential(connector))
        row = WebhookDelivery.objects.get()
        WebhookDelivery.objects.update(status="failed", attempts=10, response_code=503,
                                       last_error="The endpoint answered HTTP 503.")
        html = admin_client.get(reverse("admin:alloy_oauth_webhookdelivery_changelist")).content
        assert b"credential.revoked" in html and b"503" in html and b"Failed" in html
        page = admin_client.get(reverse("admin:alloy_oauth_webhookdelivery_change",
                                        args=[row.pk])).content.decode()
        assert "credential.revoked" in page and 'name="_save"' not in page
        broker.purge()
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:alloy_oauth_webhookdelivery_changelist"),
                                         {"action": "resend", "_selected_action": [row.pk]})
        assert response.status_code == 302
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("pending", 0)
        [message] = broker.drain()
        assert json.loads(message["body"])[0] == [row.pk]
        assert endpoint.deliveries.count() == 1

    def test_a_viewer_cannot_resend(self, connector, django_user_model):
        make_endpoint("https://a.example/hook")
        send(credential_revoked, make_credential(connector))
        row = WebhookDelivery.objects.get()
        WebhookDelivery.objects.update(status="failed")
        viewer = django_user_model.objects.create_user("viewer", is_staff=True)
        viewer.user_permissions.add(*Permission.objects.filter(
            content_type__app_label="alloy_oauth", codename__startswith="view_"))
        client = Client()
        client.force_login(viewer)
        client.post(reverse("admin:alloy_oauth_webhookdelivery_changelist"),
                    {"action": "resend", "_selected_action": [row.pk]})
        assert WebhookDelivery.objects.get().status == "failed"
