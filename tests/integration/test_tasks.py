"""Celery: the sweep, the refresh task, the beat entry, and a real worker driven by beat."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

from celery.exceptions import Retry
from django.test import Client
from django.utils import timezone

from alloy_oauth import tasks
from alloy_oauth.beat import SWEEP_ENTRY, SWEEP_TASK, beat_schedule
from alloy_oauth.models import AuthorizationRequest, Connector, Credential
from alloy_oauth.signals import credential_refreshed

from tests.support.celery_app import app as celery_app
from tests.support.example_provider import TOKEN_URL


def make_credential(connector, name, **fields) -> Credential:
    now = timezone.now()
    values = dict(access_token=f"access-{name}-secret", refresh_token=f"refresh-{name}-secret",
                  expires_at=now + timedelta(seconds=60), next_refresh_at=now - timedelta(seconds=1))
    values.update(fields)
    return Credential.objects.create(connector=connector, external_id=name, **values)


def task_messages(broker) -> list[dict]:
    return [
        {"task": m["headers"]["task"], "args": json.loads(m["body"])[0],
         "expires": m["headers"].get("expires"), "raw": m["body"], "headers": m["headers"]}
        for m in broker.drain()
    ]


class TestSweep:
    def test_enqueues_due_ids_only(self, connector, broker, settings):
        settings.ALLOY_OAUTH = {"SWEEP_BATCH_SIZE": 2}
        due = [make_credential(connector, f"due{i}") for i in range(5)]
        make_credential(connector, "later", next_refresh_at=timezone.now() + timedelta(hours=1))
        make_credential(connector, "leased", lease_until=timezone.now() + timedelta(seconds=30))
        make_credential(connector, "dead", status="reauth_required")
        assert tasks.refresh_due_credentials() == {"enqueued": 5, "purged": 0,
                                                   "webhooks_enqueued": 0, "webhooks_purged": 0}
        messages = task_messages(broker)
        # Batches of SWEEP_BATCH_SIZE ids, soonest due first; one message each.
        assert [m["args"] for m in messages] == [[[due[0].pk, due[1].pk]],
                                                 [[due[2].pk, due[3].pk]], [[due[4].pk]]]
        assert {m["task"] for m in messages} == {"alloy_oauth.tasks.refresh_credential_batch"}
        assert all(m["expires"] for m in messages)  # stale duplicates are dropped

    def test_no_secret_goes_through_the_broker(self, connector, broker):
        credential = make_credential(connector, "x")
        tasks.refresh_due_credentials()
        [message] = task_messages(broker)
        raw = json.dumps(message["headers"]) + str(message["raw"])
        for secret in (credential.access_token, credential.refresh_token,
                       connector.client_secret):
            assert secret not in raw
        assert message["args"] == [[credential.pk]]

    def test_purges_expired_authorization_requests(self, connector, broker):
        """Expired ones go, once they no longer need to remember a used connect link."""
        now = timezone.now()
        long_ago = now - timedelta(seconds=601)  # CONNECT_LINK_MAX_AGE is 600
        for index, expires in enumerate((long_ago, now - timedelta(seconds=1),
                                         now + timedelta(minutes=5))):
            AuthorizationRequest.objects.create(
                state_hash=str(index) * 64, connector=connector, external_id="e",
                redirect_uri="https://app/cb", session_binding="b", expires_at=expires)
        assert tasks.refresh_due_credentials() == {"enqueued": 0, "purged": 1,
                                                   "webhooks_enqueued": 0, "webhooks_purged": 0}
        assert AuthorizationRequest.objects.count() == 2


class TestRefreshTask:
    def test_refreshes(self, connector, responses):
        credential = make_credential(connector, "x")
        responses.post(TOKEN_URL, json={"access_token": "new", "expires_in": 3600})
        result = tasks.refresh_credential.apply(args=(credential.pk,))
        assert result.get() == "refreshed"
        assert Credential.objects.get(pk=credential.pk).access_token == "new"

    def test_gone(self, db):
        assert tasks.refresh_credential.apply(args=(987654,)).get() == "gone"

    def test_transient_failure_is_retried_after_the_backoff(self, connector, responses,
                                                            monkeypatch):
        credential = make_credential(connector, "x")
        responses.post(TOKEN_URL, status=503, body="", headers={"Retry-After": "120"})
        retries = []

        def fake_retry(**options):
            retries.append(options)
            return Retry("retry", when=options["countdown"])

        monkeypatch.setattr(tasks.refresh_credential, "retry", fake_retry)
        result = tasks.refresh_credential.apply(args=(credential.pk,))
        assert result.state == "RETRY"
        [options] = retries
        assert options["countdown"] == 121
        assert tasks.refresh_credential.max_retries is None  # the engine decides when to stop
        assert Credential.objects.get(pk=credential.pk).failure_count == 1


class TestBeatEntry:
    def test_default_interval_from_settings(self, settings):
        settings.ALLOY_OAUTH = {"SWEEP_INTERVAL": 15}
        assert beat_schedule() == {SWEEP_ENTRY: {
            "task": SWEEP_TASK, "schedule": 15.0, "options": {"expires": 15.0}}}
        assert beat_schedule(interval=60)[SWEEP_ENTRY]["schedule"] == 60.0

    def test_task_names_are_registered(self):
        assert SWEEP_TASK in celery_app.tasks
        assert "alloy_oauth.tasks.refresh_credential" in celery_app.tasks

    def test_django_celery_beat_picks_it_up(self, transactional_db):
        # (transactional: the scheduler closes database connections as it starts)
        from django_celery_beat.models import PeriodicTask
        from django_celery_beat.schedulers import DatabaseScheduler

        DatabaseScheduler(app=celery_app, lazy=False)  # the suite's app has the entry
        periodic = PeriodicTask.objects.get(name=SWEEP_ENTRY)
        assert periodic.task == SWEEP_TASK and periodic.enabled
        assert (periodic.interval.every, periodic.interval.period) == (60, "seconds")


def test_a_real_worker_driven_by_beat_refreshes_before_expiry(
    celery_worker, strict_provider, django_user_model, settings, tmp_path
):
    """Beat sweeps every second; the worker refreshes each token (a few seconds' lifetime at
    the provider) before it expires, with nobody asking for it."""
    from celery.beat import EmbeddedService

    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "http://127.0.0.1", "SWEEP_INTERVAL": 1}
    Connector.objects.create(
        validated_at=timezone.now(),  # live: offered to end users
        name="Strict", slug="strict", auth_url=strict_provider.auth_url,
        token_url=strict_provider.token_url, client_id=strict_provider.client_id,
        client_secret=strict_provider.client_secret, scope="read", refresh_lead_time=2,
    )
    site = Client()
    site.force_login(django_user_model.objects.create_user("beat-user"))
    strict_provider.connect(site, "strict")
    credential = Credential.objects.get()

    refreshes: list[tuple] = []
    lock = threading.Lock()

    def record(credential, **kwargs):
        with lock:
            refreshes.append((credential.last_refreshed_at, credential.expires_at))

    credential_refreshed.connect(record, weak=False, dispatch_uid="beat-test")
    saved_schedule = celery_app.conf.beat_schedule
    celery_app.conf.beat_schedule = beat_schedule(interval=1)
    beat = EmbeddedService(celery_app, thread=True,
                           schedule_filename=str(tmp_path / "celerybeat-schedule"))
    beat.start()
    try:
        deadline = time.monotonic() + 30
        while len(refreshes) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        beat.stop()
        beat.join(10)
        celery_app.conf.beat_schedule = saved_schedule
        credential_refreshed.disconnect(dispatch_uid="beat-test")

    assert len(refreshes) >= 3, refreshes
    expiry = credential.expires_at
    for refreshed_at, new_expiry in refreshes:
        # Each refresh was asked for before the token it replaced expired. (When it was sent:
        # a new token expires its lifetime after its request left. The provider's own
        # time to answer, 0.3 s here and seconds on a loaded machine, is not the sweep's.)
        sent_at = new_expiry - timedelta(seconds=strict_provider.access_token_lifetime)
        assert sent_at < expiry, f"refreshed only after the token had expired: {refreshes}"
        expiry = new_expiry
    credential.refresh_from_db()
    assert credential.status == "active" and credential.failure_count == 0
    assert strict_provider.call_api(credential.access_token).status_code == 200
    assert set(credential.events.values_list("kind", flat=True)) == {"connected", "refreshed"}
