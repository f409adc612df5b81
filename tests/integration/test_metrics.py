"""Metrics: the values after a scripted run of the engine and the webhooks, the database's
gauges, who may scrape, Celery's prefork workers (multiprocess mode), and nothing at all
without prometheus_client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from alloy_oauth.metrics import metrics_view
from alloy_oauth.models import Credential, WebhookDelivery, WebhookEndpoint
from alloy_oauth.refresh.batch import refresh_batch
from alloy_oauth.refresh.single import refresh_one

from tests.support import REPO_DIR
from tests.support.example_provider import TOKEN_URL


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(client: Client, **headers: str) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics/", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


@pytest.fixture(autouse=True)
def metrics_url(settings):
    settings.ROOT_URLCONF = __name__


def make(connector, name, **fields) -> Credential:
    values = dict(access_token=f"a-{name}-secret", refresh_token=f"r-{name}-secret",
                  expires_at=timezone.now() + timedelta(minutes=1),
                  next_refresh_at=timezone.now() - timedelta(seconds=30))
    values.update(fields)
    return Credential.objects.create(connector=connector, external_id=name, **values)


def test_a_scripted_run(connector, make_connector, responses, admin_client):
    """Two refreshes, a transient failure, a dead grant, a client error: each counted by
    connector and result, each request timed; the gauges read the database."""
    results = ("refreshed", "retry", "reauth_required", "failed")
    before = {r: value("alloy_oauth_refreshes_total", connector="example", result=r)
              for r in results}
    timed = value("alloy_oauth_refresh_request_seconds_count", connector="example")
    answers = iter([(200, {"access_token": "n1", "expires_in": 3600}),
                    (200, {"access_token": "n2", "expires_in": 3600}),
                    (503, {}),
                    (400, {"error": "invalid_grant"}),
                    (401, {"error": "invalid_client"})])

    def provider(request):
        status, body = next(answers)
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    responses.add_callback("POST", TOKEN_URL, callback=provider)
    credentials = [make(connector, f"c{index}") for index in range(5)]
    outcomes = [refresh_one(c.pk).result for c in credentials]
    assert outcomes == ["refreshed", "refreshed", "retry", "reauth_required", "failed"]
    after = {r: value("alloy_oauth_refreshes_total", connector="example", result=r)
             for r in results}
    assert {r: after[r] - before[r] for r in results} == {
        "refreshed": 2, "retry": 1, "reauth_required": 1, "failed": 1}
    assert value("alloy_oauth_refresh_request_seconds_count", connector="example") == timed + 5
    # A batch counts the same way.
    batch_before = value("alloy_oauth_refreshes_total", connector="example", result="refreshed")
    responses.replace(responses.POST, TOKEN_URL, json={"access_token": "b", "expires_in": 3600})
    batch = [make(connector, f"b{index}") for index in range(3)]
    assert refresh_batch([c.pk for c in batch])["refreshed"] == 3
    assert value("alloy_oauth_refreshes_total", connector="example",
                 result="refreshed") == batch_before + 3

    # The gauges, from the database.
    other = make_connector(slug="other")
    make(other, "late", next_refresh_at=timezone.now() - timedelta(minutes=10))
    make(other, "later", next_refresh_at=timezone.now() + timedelta(minutes=10))
    make(other, "gone", status="revoked")
    endpoint = WebhookEndpoint.objects.create(url="https://a.example/", secret="s" * 30,
                                              events=["credential.revoked"])
    WebhookDelivery.objects.create(endpoint=endpoint, event="credential.revoked", payload={})
    samples = scraped(admin_client)
    assert samples[("alloy_oauth_credentials", (("connector", "example"),
                                                ("status", "active")))] == 6
    assert samples[("alloy_oauth_credentials", (("connector", "example"),
                                                ("status", "reauth_required")))] == 1
    assert samples[("alloy_oauth_credentials", (("connector", "example"),
                                                ("status", "error")))] == 1
    assert samples[("alloy_oauth_credentials", (("connector", "other"),
                                                ("status", "revoked")))] == 1
    assert samples[("alloy_oauth_refresh_backlog", (("connector", "other"),))] == 1
    assert samples[("alloy_oauth_refresh_backlog", (("connector", "example"),))] == 0
    assert 600 <= samples[("alloy_oauth_refresh_oldest_overdue_seconds",
                           (("connector", "other"),))] < 660
    assert samples[("alloy_oauth_webhook_deliveries_pending",
                    (("endpoint", str(endpoint.pk)),))] == 1
    # The process's own counters are in the same scrape.
    assert samples[("alloy_oauth_refreshes_total", (("connector", "example"),
                                                    ("result", "failed")))] == after["failed"]


def test_who_may_scrape(db, admin_client, settings, django_user_model):
    assert Client().get("/metrics/").status_code == 403
    user = Client()
    user.force_login(django_user_model.objects.create_user("enduser"))
    assert user.get("/metrics/").status_code == 403
    assert admin_client.get("/metrics/").status_code == 200
    assert admin_client.get("/metrics/")["Cache-Control"] == "no-store"
    bearer = {"HTTP_AUTHORIZATION": "Bearer scrape-token-0123456789"}
    assert Client().get("/metrics/", **bearer).status_code == 403  # no token configured
    settings.ALLOY_OAUTH = {"METRICS_TOKEN": "scrape-token-0123456789"}
    assert Client().get("/metrics/", **bearer).status_code == 200
    assert Client().get("/metrics/", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert Client().get("/metrics/", HTTP_AUTHORIZATION="Basic c2NyYXBl").status_code == 403


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_DIR, capture_output=True, text=True,
        timeout=120, env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.support.settings",
                          "DATABASE_URL": "sqlite://:memory:", **env})


def test_nothing_without_prometheus_client():
    """Every module of the app imports without it, nothing is counted, the view is 404."""
    result = run_python("""
        import sys
        sys.modules["prometheus_client"] = None  # as if not installed: importing it fails
        import django, pkgutil, importlib
        django.setup()
        import alloy_oauth
        for module in pkgutil.walk_packages(alloy_oauth.__path__, "alloy_oauth."):
            if ".migrations." not in module.name:
                importlib.import_module(module.name)
        from alloy_oauth import metrics
        from alloy_oauth.refresh import single
        assert not metrics.ENABLED
        metrics.count_refreshes(iter([("x", "refreshed")]))
        metrics.count_webhook_delivery("credential.revoked", "succeeded")
        from django.test import RequestFactory
        response = metrics.metrics_view(RequestFactory().get("/metrics/"))
        assert response.status_code == 404, response.status_code
        print("ok", sorted(name for name, module in sys.modules.items()
                           if name.startswith("prometheus") and module is not None))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "[]"]


def test_the_engine_is_not_wrapped_without_prometheus_client():
    result = run_python("""
        import sys
        sys.modules["prometheus_client"] = None
        import django
        django.setup()
        from alloy_oauth.refresh import single
        print(single.request.__qualname__)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "request"


def test_prefork_workers_share_their_counts(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR, what forked children (Celery's prefork pool) count is
    in the scrape of another process."""
    result = run_python("""
        import multiprocessing
        import django
        django.setup()
        from django.core.management import call_command
        from alloy_oauth import metrics

        def child():
            metrics.count_refreshes([("github", "refreshed")])
            metrics.count_webhook_delivery("credential.revoked", "succeeded")

        processes = [multiprocessing.get_context("fork").Process(target=child) for _ in range(3)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        call_command("migrate", verbosity=0)
        from prometheus_client import generate_latest
        print(generate_latest(metrics.registry()).decode())
    """, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'alloy_oauth_refreshes_total{connector="github",result="refreshed"} 3.0' in (
        result.stdout)
    assert ('alloy_oauth_webhook_deliveries_total{event="credential.revoked",result="succeeded"}'
            ' 3.0') in result.stdout
    assert "alloy_oauth_refresh_backlog" in result.stdout  # the database's gauges too


from django.urls import path  # noqa: E402  (this module is the URLconf of its tests)

urlpatterns = [path("metrics/", metrics_view)]
