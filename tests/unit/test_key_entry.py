"""The end user enters an API key, a user name and password or a bearer token on our own
page (the connect popup of such connectors): a CSRF-protected POST, checked with the
connector's test request, stored encrypted, never shown back."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from alloy_oauth import headless
from alloy_oauth.models import Credential
from alloy_oauth.signals import credential_connected

pytestmark = pytest.mark.django_db

API = "https://api.example/v1"


@pytest.fixture
def key_connector(make_connector):
    return make_connector(slug="keyed", name="Keyed", auth_type="api_key", auth_url="",
                          token_url="", client_id="", api_base_url=API,
                          test_request_path="/me", token_header="X-Api-Key",
                          token_template="{api_key}")


@pytest.fixture
def user_client(django_user_model):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("alice"))
    return client


def csrf(client, url) -> str:
    html = client.get(url).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def enter_url(slug="keyed", **query) -> str:
    from urllib.parse import urlencode
    return reverse("alloy_oauth:enter_secret", args=[slug]) + (
        "?" + urlencode(query) if query else "")


def test_authorize_sends_entered_types_to_our_page(user_client, key_connector):
    answer = user_client.get(reverse("alloy_oauth:authorize", args=["keyed"]) +
                             "?popup=1&flow=f1&next=/after/")
    assert answer.status_code == 307
    assert answer["Location"] == enter_url(popup="1", flow="f1", next="/after/")


def test_the_form_asks_only_for_the_types_fields(user_client, key_connector, make_connector):
    html = user_client.get(enter_url()).content.decode()
    assert 'name="api_key"' in html and 'type="password"' in html
    assert 'name="password"' not in html and 'name="username"' not in html
    make_connector(slug="basic", auth_type="basic", api_base_url=API)
    html = user_client.get(enter_url("basic")).content.decode()
    assert 'name="username"' in html and 'name="password"' in html


def test_a_valid_key_is_stored_and_reported_to_the_opener(user_client, key_connector,
                                                          responses):
    responses.get(f"{API}/me", json={})
    connected = []
    credential_connected.connect(lambda sender, credential, created, **kw: connected.append(
        created), weak=False, dispatch_uid="key-entry-test")
    try:
        url = enter_url(popup="1", flow="f1")
        answer = user_client.post(url, {"api_key": "alice-KEY-0001",
                                         "csrfmiddlewaretoken": csrf(user_client, url)})
    finally:
        credential_connected.disconnect(dispatch_uid="key-entry-test")
    html = answer.content.decode()
    assert answer.status_code == 200 and "alice-KEY-0001" not in html
    result = json.loads(re.search(r'id="alloy-oauth-result"[^>]*>(.*?)</script>', html).group(1))
    credential = Credential.objects.get()
    assert result == {"source": "alloy_oauth", "connector": "keyed", "flow": "f1",
                      "status": "connected", "credential": credential.pk, "created": True}
    assert credential.api_key == "alice-KEY-0001" and credential.user.username == "alice"
    assert responses.calls[0].request.headers["X-Api-Key"] == "alice-KEY-0001"
    assert connected == [True]
    assert answer["Cache-Control"].startswith("max-age=0") or "no-store" in answer["Cache-Control"]


def test_a_refused_key_says_what_failed_and_stores_nothing(user_client, key_connector,
                                                           responses):
    responses.get(f"{API}/me", status=401)
    url = enter_url()
    answer = user_client.post(url, {"api_key": "bad-KEY-0002",
                                     "csrfmiddlewaretoken": csrf(user_client, url)})
    html = answer.content.decode()
    assert answer.status_code == 400
    assert "Not stored: the API refused it" in html and "HTTP 401" in html
    assert "bad-KEY-0002" not in html
    assert not Credential.objects.exists()


def test_csrf_is_required(user_client, key_connector):
    answer = user_client.post(enter_url(), {"api_key": "k"})
    assert answer.status_code == 403
    assert not Credential.objects.exists()


def test_entering_again_replaces_the_key(user_client, key_connector, responses):
    responses.get(f"{API}/me", json={})
    for key in ("first-key", "second-key"):
        url = enter_url()
        answer = user_client.post(url, {"api_key": key,
                                         "csrfmiddlewaretoken": csrf(user_client, url)})
        assert answer.status_code == 303
    credential = Credential.objects.get()
    assert credential.api_key == "second-key" and credential.version == 1
    assert [e.kind for e in credential.events.all()] == ["connected", "connected"]


def test_anonymous_visitors_log_in_first(key_connector):
    answer = Client().get(enter_url())
    assert answer.status_code == 302 and "login" in answer["Location"]


def test_oauth2_connectors_have_no_such_page(user_client, connector):
    assert user_client.get(enter_url(connector.slug)).status_code == 404


def test_a_headless_link_works_once(key_connector, responses):
    responses.get(f"{API}/me", json={})
    link_url = headless.connect_url(key_connector, external_id="tenant-7")
    client = Client(enforce_csrf_checks=True)
    answer = client.get(link_url)
    assert answer.status_code == 307
    url = answer["Location"]
    post = {"api_key": "tenant-key", "csrfmiddlewaretoken": csrf(client, url)}
    assert client.post(url, post).status_code == 303
    assert Credential.objects.get().external_id == "tenant-7"
    again = client.post(url, post)
    assert again.status_code == 400 and "already been used" in again.content.decode()


def test_disconnect_deletes_the_key(user_client, key_connector, responses):
    responses.get(f"{API}/me", json={})
    url = enter_url()
    user_client.post(url, {"api_key": "k-1", "csrfmiddlewaretoken": csrf(user_client, url)})
    page = reverse("alloy_oauth:connections")
    html = user_client.get(page).content.decode()
    assert "Keyed" in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    user_client.post(reverse("alloy_oauth:disconnect", args=["keyed"]),
                     {"csrfmiddlewaretoken": token}, HTTP_ORIGIN="http://testserver")
    credential = Credential.objects.get()
    assert credential.status == "revoked" and credential.api_key == ""


def test_connection_parameters_are_asked_with_the_secret(user_client, make_connector,
                                                         responses):
    """A Shopify custom app's token: per shop, in X-Shopify-Access-Token."""
    make_connector(
        slug="shop-token", auth_type="bearer", auth_url="", token_url="", client_id="",
        api_base_url="https://{shop}.myshopify.com/admin/api/2024-10",
        test_request_path="shop.json", token_header="X-Shopify-Access-Token",
        token_template="{token}",
        connection_params=[{"name": "shop", "label": "Shop name",
                            "pattern": "[a-z0-9][a-z0-9-]*"}])
    url = enter_url("shop-token", shop="acme")
    html = user_client.get(url).content.decode()
    assert 'name="param_shop"' in html and 'value="acme"' in html
    token = csrf(user_client, url)
    answer = user_client.post(url, {"param_shop": "not a shop!", "access_token": "shpat_1",
                                    "csrfmiddlewaretoken": token})
    assert answer.status_code == 400 and not Credential.objects.exists()
    assert "shpat_1" not in answer.content.decode()
    responses.get("https://globex.myshopify.com/admin/api/2024-10/shop.json", json={})
    answer = user_client.post(url, {"param_shop": "globex", "access_token": "shpat_1",
                                    "csrfmiddlewaretoken": token})
    assert answer.status_code == 303
    credential = Credential.objects.get()
    assert credential.connection_config == {"shop": "globex"}
    assert responses.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_1"
    responses.get("https://globex.myshopify.com/admin/api/2024-10/orders.json", json={})
    credential.session().get("orders.json")
    assert responses.calls[1].request.headers["X-Shopify-Access-Token"] == "shpat_1"
