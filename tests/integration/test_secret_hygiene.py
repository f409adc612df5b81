"""The whole life of a credential (connect, refresh, a failure, recovery, revoke) against the
live provider, with every logger at DEBUG and a webhook endpoint receiving every event: no
token, client secret, code, PKCE verifier or webhook secret in any log record, event, broker
message, webhook delivery (payload, headers), admin page or error report."""

from __future__ import annotations

import json
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.views.debug import ExceptionReporter

from alloy_oauth import credential_store, protocol, refresh, tasks
from alloy_oauth.models import (
    AuthorizationRequest, Connector, Credential, CredentialEvent, WebhookDelivery, WebhookEndpoint,
)
from alloy_oauth.refresh.revocation import revoke_credential
from alloy_oauth.refresh.single import refresh_one
from alloy_oauth.signals import credential_refreshed
from alloy_oauth.webhooks import EVENT_TYPES

from tests.support.local_server import LocalServer
from tests.support.tickets import authorize_url

WEBHOOK_SECRET = "webhook-signing-secret-5b1d0c9e7a"

pytestmark = pytest.mark.django_db(transaction=True)


def basic_header(provider, secret: str) -> str:
    request = requests.Request("POST", provider.token_url).prepare()
    protocol.ClientSecretBasic(provider.client_id, secret)(request)
    return request.headers["Authorization"]


def test_no_secret_anywhere(oauth_provider, live_server, admin_client, django_user_model,
                            broker, every_logger_at_debug, settings, monkeypatch):
    settings.DEBUG = True  # SQL is logged too
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "http://127.0.0.1",
                            "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    secrets: set[str] = {oauth_provider.client_secret, WEBHOOK_SECRET,
                         basic_header(oauth_provider, oauth_provider.client_secret)}
    seen_tokens = []
    credential_refreshed.connect(
        lambda credential, **kw: seen_tokens.append((credential.access_token,
                                                     credential.refresh_token)),
        weak=False, dispatch_uid="hygiene")
    outputs: list[str] = []

    def admin_pages() -> None:
        for url in [reverse("admin:alloy_oauth_connector_changelist"),
                    reverse("admin:alloy_oauth_credential_changelist"),
                    reverse("admin:alloy_oauth_webhookendpoint_changelist"),
                    reverse("admin:alloy_oauth_webhookdelivery_changelist"),
                    *[reverse("admin:alloy_oauth_webhookendpoint_change", args=[pk])
                      for pk in WebhookEndpoint.objects.values_list("pk", flat=True)],
                    *[reverse("admin:alloy_oauth_webhookdelivery_change", args=[pk])
                      for pk in WebhookDelivery.objects.values_list("pk", flat=True)],
                    *[reverse("admin:alloy_oauth_credential_change", args=[pk])
                      for pk in Credential.objects.values_list("pk", flat=True)],
                    *[reverse("admin:alloy_oauth_connector_change", args=[pk])
                      for pk in Connector.objects.values_list("pk", flat=True)]]:
            outputs.append(admin_client.get(url).content.decode())

    receiver = LocalServer(secret=WEBHOOK_SECRET).__enter__()
    try:
        WebhookEndpoint.objects.create(url=receiver.url + "/hooks", secret=WEBHOOK_SECRET,
                                       events=list(EVENT_TYPES))
        connector = Connector.objects.create(
            validated_at=timezone.now(),  # live: offered to end users
            name="Live", slug="live", auth_url=oauth_provider.auth_url,
            token_url=oauth_provider.token_url, revocation_url=oauth_provider.revocation_url,
            client_id=oauth_provider.client_id, client_secret=oauth_provider.client_secret,
            scope="read")
        # Connect.
        site = Client()
        site.force_login(django_user_model.objects.create_user("alice"))
        browser = requests.Session()
        oauth_provider.login(browser)
        back = oauth_provider.consent(browser, site.get(authorize_url(site, "live"))["Location"])
        secrets.add(parse_qs(urlsplit(back).query)["code"][0])
        assert site.get(f"/oauth/callback/?{urlsplit(back).query}").status_code == 303
        credential = Credential.objects.get()
        secrets.update({credential.access_token, credential.refresh_token})
        admin_pages()

        # Refresh, through the sweep and a worker's task (the broker's messages kept).
        Credential.objects.update(next_refresh_at=credential.expires_at.replace(year=2000))
        assert tasks.refresh_due_credentials()["enqueued"] == 1
        messages = broker.drain()
        outputs.extend(json.dumps(m["headers"]) + str(m["body"]) for m in messages)
        assert tasks.refresh_credential.apply(args=(credential.pk,)).get() == "refreshed"
        outputs.append(json.dumps(tasks.refresh_credential.request.__dict__, default=str))
        admin_pages()

        # A failure: the operator's client secret is wrong now.
        connector.client_secret = "a-wrong-secret-value"
        connector.save()
        secrets.update({"a-wrong-secret-value", basic_header(oauth_provider,
                                                              "a-wrong-secret-value")})
        assert refresh_one(credential.pk, force=True).result is (
            refresh.Result.FAILED)
        connector.client_secret = oauth_provider.client_secret
        connector.save()
        assert refresh_one(credential.pk, force=True).result is (
            refresh.Result.REFRESHED)
        admin_pages()

        # An error report, should the callback ever break after the exchange.
        reports = []

        def report(sender, request, **kwargs):
            reports.append(ExceptionReporter(request, *sys.exc_info(), is_email=True)
                           .get_traceback_html())

        def crash(pending, token):
            secrets.update({token.access_token, token.refresh_token or ""} - {""})
            raise RuntimeError("unexpected")

        monkeypatch.setattr(credential_store, "_store_credential", crash)
        got_request_exception.connect(report, dispatch_uid="hygiene-report")
        settings.DEBUG = False  # (the DEBUG page shows everything by design)
        back = oauth_provider.consent(browser, site.get(authorize_url(site, "live"))["Location"])
        secrets.add(parse_qs(urlsplit(back).query)["code"][0])
        site.raise_request_exception = False
        assert site.get(f"/oauth/callback/?{urlsplit(back).query}").status_code == 500
        got_request_exception.disconnect(dispatch_uid="hygiene-report")
        monkeypatch.undo()
        settings.DEBUG = True
        outputs.extend(reports)

        # Revoke.
        assert revoke_credential(credential.pk).result is refresh.Result.REVOKED
        admin_pages()

        # Every event out to the webhook endpoint, through the worker's task.
        messages = broker.drain()
        outputs.extend(json.dumps(m["headers"]) + str(m["body"]) for m in messages)
        for delivery_id in WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True):
            assert tasks.deliver_webhook.apply(args=(delivery_id,)).get() == "succeeded"
        admin_pages()
    finally:
        credential_refreshed.disconnect(dispatch_uid="hygiene")
        receiver.__exit__(None, None, None)

    received = receiver.requests
    assert [json.loads(r["body"])["type"] for r in received] == [
        "credential.connected", "credential.refresh_failed", "credential.recovered",
        "credential.revoked"]
    assert all(r["verified"] for r in received)
    outputs.extend(json.dumps(r["headers"]) + r["body"].decode() for r in received)
    outputs.extend(json.dumps(p) for p in WebhookDelivery.objects.values_list("payload",
                                                                              flat=True))

    for access, refresh_token in seen_tokens:
        secrets.update({access, refresh_token})
    secrets.update(p.code_verifier for p in AuthorizationRequest.objects.all())
    secrets.discard("")
    assert len(seen_tokens) >= 2 and len(secrets) >= 12  # it really saw the whole life

    records = every_logger_at_debug.records
    assert len(records) > 100
    outputs.append(every_logger_at_debug.text)
    outputs.extend(str(record.args) for record in records)
    outputs.extend(CredentialEvent.objects.values_list("detail", flat=True))
    outputs.extend(Credential.objects.values_list("last_error", flat=True))
    outputs.append(json.dumps(list(Connector.objects.values("validation_error",
                                                            "validation_report"))))
    everything = "\n".join(outputs)
    for secret in secrets:
        assert secret not in everything, f"a secret ({len(secret)} characters) leaked"
