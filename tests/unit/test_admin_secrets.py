"""No admin page shows a secret, whatever the operator's permissions, and the connector form
neither answers 500 on hostile JSON nor mails a typed client secret to ADMINS when it fails."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import DataError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.log import AdminEmailHandler

from alloy_oauth.models import (
    AuthorizationRequest, Connector, Credential, CredentialEvent, WebhookDelivery, WebhookEndpoint,
)

from tests.support.connector_page import VALID
from tests.support.staff import staff_client

pytestmark = pytest.mark.django_db

APP = "alloy_oauth"
#: Every secret the fixtures plant: none may appear on any admin page.
SECRETS = {
    "client secret": "client-secret-value",
    "access token": "access-token-XYZ123",
    "refresh token": "refresh-token-ABC789",
    "id_token in the token response": "id-token-QRS456",
    "PKCE verifier": "pkce-verifier-LMN654",
    "webhook signing secret": "webhook-secret-value-GHJ321xyz",
    "previous webhook signing secret": "webhook-previous-secret-TUV987",
    "API key": "api-key-value-DEF246",
    "Basic password": "basic-password-KLM135",
    "bearer token": "bearer-token-WXY864",
}


@pytest.fixture
def planted(connector, django_user_model):
    """One object of every model of the app, each holding its secrets."""
    user = django_user_model.objects.create_user("enduser")
    credential = Credential.objects.create(
        connector=connector, user=user, access_token=SECRETS["access token"],
        refresh_token=SECRETS["refresh token"],
        token_response={"id_token": SECRETS["id_token in the token response"]},
        scope="read write", expires_at=timezone.now() + timedelta(hours=1),
    )
    CredentialEvent.objects.create(credential=credential, kind="connected", detail="Connected.")
    for auth_type, secrets in (("api_key", {"api_key": SECRETS["API key"]}),
                               ("basic", {"username": "basic-user",
                                          "password": SECRETS["Basic password"]}),
                               ("bearer", {"access_token": SECRETS["bearer token"]})):
        entered = Connector.objects.create(name=auth_type, slug=auth_type, auth_type=auth_type,
                                           api_base_url="https://api.example")
        Credential.objects.create(connector=entered, user=user, **secrets)
    AuthorizationRequest.objects.create(
        connector=connector, user=user, state_hash="0" * 64,
        code_verifier=SECRETS["PKCE verifier"], redirect_uri="http://testserver/oauth/callback/",
        session_binding="b" * 64, expires_at=timezone.now() + timedelta(minutes=10),
    )
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example/in", secret=SECRETS["webhook signing secret"],
        previous_secret=SECRETS["previous webhook signing secret"],
        previous_secret_expires_at=timezone.now() + timedelta(hours=1),
        events=["credential.revoked"])
    WebhookDelivery.objects.create(endpoint=endpoint, event="credential.revoked",
                                   connector=connector, payload={"id": "x", "data": {}})
    return credential


def pages_of_the_app() -> list[str]:
    """Every list, object and history page of every model of the app registered in the admin
    (the inlines are on their parent's page)."""
    pages = []
    for model in admin.site._registry:
        if model._meta.app_label != APP:
            continue
        name = f"admin:{APP}_{model._meta.model_name}"
        pages.append(reverse(f"{name}_changelist"))
        for pk in model.objects.values_list("pk", flat=True):
            pages += [reverse(f"{name}_change", args=[pk]), reverse(f"{name}_history", args=[pk])]
    return pages


@pytest.mark.parametrize("actions", [("view",), ("view", "change")],
                         ids=["view only", "view and change"])
def test_no_admin_page_shows_a_secret(planted, django_user_model, actions):
    client = staff_client(django_user_model, *actions)
    pages = pages_of_the_app()
    # connector, credential, webhook endpoint and delivery: list, object, history
    assert len(pages) >= 12
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        for what, secret in SECRETS.items():
            assert secret not in html, (page, what)


def test_the_pkce_verifier_has_no_admin_page(admin_client, planted):
    assert AuthorizationRequest not in admin.site._registry
    assert admin_client.get(f"/admin/{APP}/authorizationrequest/").status_code == 404


def readonly_value(html: str, field: str) -> str:
    """What a read-only row of an admin page shows for ``field``."""
    match = re.search(rf'field-{field}\b.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert match, field
    return match.group(1).strip()


class TestWhatAViewerSees:
    def page(self, client, obj) -> str:
        url = reverse(f"admin:{APP}_{obj._meta.model_name}_change", args=[obj.pk])
        response = client.get(url)
        assert response.status_code == 200
        return response.content.decode()

    def test_connector_client_secret(self, connector, django_user_model):
        viewer = staff_client(django_user_model, "view")
        html = self.page(viewer, connector)
        assert readonly_value(html, "client_secret_state") == "stored"
        assert 'name="client_secret"' not in html and 'type="password"' not in html
        Connector.objects.update(client_secret="")
        assert readonly_value(self.page(viewer, connector), "client_secret_state") == "not stored"

    def test_webhook_secret(self, planted, django_user_model):
        endpoint = WebhookEndpoint.objects.get()
        html = self.page(staff_client(django_user_model, "view"), endpoint)
        assert readonly_value(html, "secret_state") == "stored"
        assert 'type="password"' not in html
        assert "signed with it too until" in readonly_value(html, "rotation")
        html = self.page(staff_client(django_user_model, "view", "change"), endpoint)
        assert 'type="password"' in html and "A secret is stored" in html

    def test_undecryptable_client_secret(self, connector, django_user_model, settings):
        settings.FERNET_KEYS = ["another-key-that-cannot-decrypt-the-stored-values"]
        html = self.page(staff_client(django_user_model, "view"), connector)
        assert readonly_value(html, "client_secret_state") == (
            "cannot be decrypted with FERNET_KEYS")

    def test_credential_tokens_without_their_last_characters(self, planted, django_user_model):
        viewer = staff_client(django_user_model, "view")
        html = self.page(viewer, planted)
        assert readonly_value(html, "token_states") == (
            "access token: stored; refresh token: stored")
        assert "Z123" not in html and "C789" not in html
        Credential.objects.update(refresh_token="")
        assert readonly_value(self.page(viewer, planted), "token_states") == (
            "access token: stored; refresh token: not stored")

    def test_who_may_act_on_a_credential_sees_the_last_four(self, planted, django_user_model):
        html = self.page(staff_client(django_user_model, "view", "change"), planted)
        assert readonly_value(html, "tokens") == (
            "access token: stored (ends …Z123); refresh token: stored (ends …C789)")

    def test_extra_token_parameters_other_than_public_ones(self, connector, django_user_model):
        connector.token_params = {"audience": "https://api.example", "api_key": "param-secret"}
        connector.refresh_params = {"scope": "offline_access", "client_assertion": "jwt-secret"}
        connector.authorization_params = {"access_type": "offline"}
        connector.save()
        html = self.page(staff_client(django_user_model, "view"), connector)
        assert "param-secret" not in html and "jwt-secret" not in html
        assert readonly_value(html, "token_params_for_viewers") == (
            "{&quot;api_key&quot;: &quot;[redacted]&quot;, "
            "&quot;audience&quot;: &quot;https://api.example&quot;}")
        assert "offline_access" in readonly_value(html, "refresh_params_for_viewers")
        assert "offline" in readonly_value(html, "authorization_params")


@pytest.fixture
def mail_with_frames(admins, monkeypatch):
    """ADMINS get the error report with the HTML part that lists every frame's variables."""
    handlers = [handler for handler in logging.getLogger("django").handlers
                if isinstance(handler, AdminEmailHandler)]
    assert handlers
    for handler in handlers:
        monkeypatch.setattr(handler, "include_html", True)


def test_a_failing_connector_form_mails_no_secret(connector, admin_user, mail_with_frames,
                                                  mailoutbox, monkeypatch):
    """The client secret typed in the form (in the POST, in cleaned_data, in the values
    Django's save has in hand when the database fails) is not in the report."""
    typed = "typed-client-secret-3f9a"

    def database_fails(*args, **kwargs):
        raise DataError("simulated failure of the UPDATE")

    monkeypatch.setattr(Connector, "_do_update", database_fails)
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    response = client.post(reverse("admin:alloy_oauth_connector_change", args=[connector.pk]),
                           {**VALID, "slug": "example", "token_url": connector.token_url,
                            "client_secret": typed})
    assert response.status_code == 500
    [report] = mailoutbox
    html = report.alternatives[0][0]
    assert "simulated failure of the UPDATE" in report.body and "_save_table" in html
    assert "client_secret = '********************'" in report.body  # listed, but hidden
    for text in (report.subject, report.body, html):
        assert typed not in text
        assert SECRETS["client secret"] not in text
