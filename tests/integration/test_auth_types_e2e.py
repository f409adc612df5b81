"""Every authentication type end to end against the test project's provider (a live
django-oauth-toolkit server on 127.0.0.1, see provider_server): client credentials tokens
from its token endpoint, an API key and HTTP Basic checked by its small protected views."""

from __future__ import annotations

import pytest

from alloy_oauth.models import Connector, Credential
from alloy_oauth.refresh import Result
from alloy_oauth.refresh.single import refresh_one

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def service_connector(oauth_provider) -> Connector:
    return Connector.objects.create(
        name="Provider (service)", slug="provider-service",
        auth_type=Connector.AuthType.CLIENT_CREDENTIALS, token_url=oauth_provider.token_url,
        client_id=oauth_provider.service_client_id,
        client_secret=oauth_provider.service_client_secret, scope="read",
        api_base_url=oauth_provider.base_url + "/provider/api")


def test_client_credentials_token_from_the_real_provider(oauth_provider, service_connector):
    credential = Credential.objects.create(connector=service_connector, external_id="service")
    first = credential.get_access_token()
    assert first
    answer = credential.session().get("me/")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"client_id": oauth_provider.service_client_id}
    # Renewed (forced, as the sweep would when due): a new token from a new request.
    assert credential.refresh(force=True).result is Result.REFRESHED
    assert credential.access_token != first and credential.refresh_token == ""
    assert credential.session().get("me/").status_code == 200


def test_client_credentials_with_client_secret_post(oauth_provider, service_connector):
    service_connector.client_auth_method = "client_secret_post"
    service_connector.save()
    credential = Credential.objects.create(connector=service_connector, external_id="service")
    assert refresh_one(credential.pk).result is Result.REFRESHED


def test_wrong_service_secret_is_an_operator_error(oauth_provider, service_connector):
    service_connector.client_secret = "wrong"
    service_connector.save()
    credential = Credential.objects.create(connector=service_connector, external_id="service")
    assert refresh_one(credential.pk).result is Result.FAILED
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ERROR
    assert "wrong" not in credential.last_error


@pytest.mark.parametrize("placement", [
    {"token_header": "X-Api-Key", "token_template": "{api_key}"},
    {"token_placement": "query", "token_query_param": "api_key"},
])
def test_api_key_against_the_protected_view(oauth_provider, placement):
    connector = Connector.objects.create(
        name="Keyed", slug="keyed", auth_type=Connector.AuthType.API_KEY,
        api_base_url=oauth_provider.base_url + "/provider/api", **placement)
    good = Credential.objects.create(connector=connector, external_id="a",
                                     api_key=oauth_provider.api_key)
    bad = Credential.objects.create(connector=connector, external_id="b", api_key="nope")
    assert good.session().get("key/").status_code == 200
    assert bad.session().get("key/").status_code == 401


def test_basic_against_the_protected_view(oauth_provider):
    connector = Connector.objects.create(
        name="Basic", slug="basic", auth_type=Connector.AuthType.BASIC,
        api_base_url=oauth_provider.base_url + "/provider/api")
    good = Credential.objects.create(connector=connector, external_id="a",
                                     username=oauth_provider.username,
                                     password=oauth_provider.password)
    bad = Credential.objects.create(connector=connector, external_id="b",
                                    username=oauth_provider.username, password="wrong")
    assert good.session().get("basic/").json() == {"username": oauth_provider.username}
    assert bad.session().get("basic/").status_code == 401
