"""Secret hygiene for the new authentication types: API keys, passwords and client
credentials tokens are rotated with the other encrypted columns, and appear in no log
record (every logger at DEBUG, urllib3's request lines included), event, error or page."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth.models import Connector, Credential, CredentialEvent

OLD, NEW = "old-key-0123456789abcdef", "new-key-abcdef0123456789"


@pytest.mark.django_db
def test_rotation_re_encrypts_the_new_secret_columns(settings, make_connector):
    settings.FERNET_KEYS = [OLD]
    connector = make_connector(auth_type="basic", api_base_url="https://api.example")
    Credential.objects.create(connector=connector, external_id="a", api_key="key-1",
                              username="ann", password="pw-1")
    settings.FERNET_KEYS = [NEW, OLD]
    out = StringIO()
    call_command("alloy_oauth_rotate_keys", stdout=out, stderr=StringIO())
    for column in ("api_key", "username", "password"):
        assert f"alloy_oauth.Credential.{column}: 0 current, 1 re-encrypted" in out.getvalue()
    settings.FERNET_KEYS = [NEW]
    credential = Credential.objects.get()
    assert (credential.api_key, credential.username, credential.password) == (
        "key-1", "ann", "pw-1")
    assert not credential.undecryptable
    settings.FERNET_KEYS = ["a-key-that-decrypts-nothing"]
    assert Credential.objects.get().undecryptable


@pytest.mark.django_db(transaction=True)
def test_no_entered_secret_or_service_token_anywhere(oauth_provider, live_server,
                                                     django_user_model, every_logger_at_debug,
                                                     settings):
    caplog = every_logger_at_debug
    settings.DEBUG = True  # SQL is logged too
    api = oauth_provider.base_url + "/provider/api"
    Connector.objects.create(
        name="Keyed", slug="keyed", auth_type="api_key", api_base_url=api,
        test_request_path="key/", token_placement="query", token_query_param="api_key",
        validated_at=timezone.now())  # (live: offered to end users)
    Connector.objects.create(name="Basic", slug="basic", auth_type="basic",
                             api_base_url=api, test_request_path="basic/",
                             validated_at=timezone.now())
    service = Connector.objects.create(
        name="Service", slug="service", auth_type="oauth2_client_credentials",
        token_url=oauth_provider.token_url, client_id=oauth_provider.service_client_id,
        client_secret=oauth_provider.service_client_secret, scope="read", api_base_url=api)
    user = django_user_model.objects.create_user("alice")
    site = Client(enforce_csrf_checks=True)
    site.force_login(user)

    def enter(slug: str, **values: str) -> int:
        url = reverse("alloy_oauth:enter_secret", args=[slug])
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                          site.get(url).content.decode()).group(1)
        return site.post(url, {**values, "csrfmiddlewaretoken": token}).status_code

    wrong_key, wrong_password = "wrong-key-8c1d2e", "wrong-password-4f5a6b"
    assert enter("keyed", api_key=wrong_key) == 400
    assert enter("keyed", api_key=oauth_provider.api_key) == 303
    assert enter("basic", username=oauth_provider.username, password=wrong_password) == 400
    assert enter("basic", username=oauth_provider.username,
                 password=oauth_provider.password) == 303
    for credential in Credential.objects.all():
        assert credential.session().get(credential.connector.test_request_path).ok
    cc = Credential.objects.create(connector=service, external_id="service")
    token = cc.get_access_token()
    assert cc.session().get("me/").ok
    for credential in Credential.objects.all():
        credential.revoke()

    secrets = [oauth_provider.api_key, oauth_provider.password, wrong_key, wrong_password,
               token, oauth_provider.service_client_secret]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "api_key=[redacted]" in logged  # urllib3's request line, redacted
    texts = [logged, *CredentialEvent.objects.values_list("detail", flat=True),
             *Credential.objects.values_list("last_error", flat=True)]
    for secret in secrets:
        for text in texts:
            assert secret not in text
