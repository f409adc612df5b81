"""Fill from issuer (alloy_oauth/discovery.py and the admin's discover endpoint): discovery
documents served on 127.0.0.1, by a programmable server and by the live django-oauth-toolkit
provider."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth import discovery
from alloy_oauth.forms import ConnectorForm
from alloy_oauth.models import Connector, Credential

from tests.support.document_server import DocumentServer
from tests.support.provider_server import ProviderServer

#: The test server is on 127.0.0.1, which discovery refuses unless its network is allowed.
ALLOW_LOOPBACK = {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "HTTP_TIMEOUT": 2}
OAUTH = "/.well-known/oauth-authorization-server"
OIDC = "/.well-known/openid-configuration"


def metadata(issuer: str, **extra) -> dict:
    return {"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token", **extra}


@pytest.fixture
def server(settings):
    settings.ALLOY_OAUTH = ALLOW_LOOPBACK
    with DocumentServer() as running:
        yield running


def test_an_rfc8414_document_fills_every_field(server):
    server.routes[OAUTH] = metadata(
        server.url, revocation_endpoint=server.url + "/revoke",
        code_challenge_methods_supported=["S256"],
        token_endpoint_auth_methods_supported=["client_secret_post", "private_key_jwt"],
        authorization_response_iss_parameter_supported=True,
        scopes_supported=["read", "write"])
    found = discovery.discover(server.url + "/")
    assert found.document_url == server.url + OAUTH
    assert found.fields == {
        "issuer": server.url, "auth_url": server.url + "/authorize",
        "token_url": server.url + "/token", "revocation_url": server.url + "/revoke",
        "require_issuer": True, "use_pkce": True, "client_auth_method": "client_secret_post"}
    assert any("read write" in note for note in found.notes)


def test_an_issuer_with_a_path_is_looked_up_by_rfc8414s_path_insertion(server):
    issuer = server.url + "/tenant/one"
    server.routes[OAUTH + "/tenant/one"] = metadata(issuer)
    found = discovery.discover(issuer)
    assert server.requested == [OAUTH + "/tenant/one"]
    assert found.fields["auth_url"] == issuer + "/authorize"
    # RFC 8414 §2: no list means client_secret_basic; no PKCE list leaves PKCE as it is.
    assert found.fields["client_auth_method"] == "client_secret_basic"
    assert "use_pkce" not in found.fields and found.fields["require_issuer"] is False


def test_openid_connect_discovery_then_the_appended_form(server):
    issuer = server.url + "/realms/acme"
    server.routes["/realms/acme" + OIDC] = metadata(issuer)
    found = discovery.discover(issuer)
    assert found.document_url == issuer + OIDC
    assert server.requested == [OAUTH + "/realms/acme", "/realms/acme" + OIDC]

    server.requested.clear()
    server.routes = {"/prefix" + OAUTH: metadata(server.url + "/prefix")}
    found = discovery.discover(server.url + "/prefix")
    assert found.document_url == server.url + "/prefix" + OAUTH


def test_any_url_of_the_provider_finds_its_origins_document(server):
    server.routes[OIDC] = metadata(server.url, code_challenge_methods_supported=["plain"])
    found = discovery.discover(server.url + "/oauth/authorize?client_id=x")
    assert found.fields["token_url"] == server.url + "/token"
    assert found.fields["use_pkce"] is False  # a list without S256
    assert any("PKCE with S256 is not listed" in note for note in found.notes)


def test_the_document_url_itself(server):
    server.routes[OIDC] = metadata(server.url)
    assert discovery.discover(server.url + OIDC).fields["issuer"] == server.url


def test_another_issuers_document_is_not_used(server):
    server.routes[OAUTH] = metadata("https://attacker.example")
    with pytest.raises(discovery.DiscoveryError, match="names the issuer “https://attacker"):
        discovery.discover(server.url)


def test_an_answer_that_is_not_json(server):
    server.routes[OAUTH] = (200, "<html>Welcome</html>", "text/html")
    with pytest.raises(discovery.DiscoveryError) as raised:
        discovery.discover(server.url)
    assert "something other than a JSON object (text/html)" in str(raised.value)
    assert f"{server.url}{OIDC} answered HTTP 404" in str(raised.value)


def test_a_timeout_ends_the_search(server, settings):
    settings.ALLOY_OAUTH = {**ALLOW_LOOPBACK, "HTTP_TIMEOUT": 0.5}
    server.routes[OAUTH] = ("sleep", 2)
    with pytest.raises(discovery.DiscoveryError, match="did not answer within 0.5 seconds"):
        discovery.discover(server.url)
    assert server.requested == [OAUTH]  # not asked again


def test_an_endpoint_that_would_read_as_a_placeholder_is_refused(server):
    server.routes[OAUTH] = metadata(server.url, token_endpoint=server.url + "/{tenant}/token")
    with pytest.raises(discovery.DiscoveryError, match="token_endpoint contains"):
        discovery.discover(server.url)


def test_an_insecure_endpoint_is_refused(server):
    server.routes[OAUTH] = metadata(server.url, token_endpoint="http://example.com/token")
    with pytest.raises(discovery.DiscoveryError, match="token_endpoint must use https"):
        discovery.discover(server.url)


def test_no_usable_client_authentication_leaves_it_as_it_was(server):
    server.routes[OAUTH] = metadata(server.url,
                                    token_endpoint_auth_methods_supported=["private_key_jwt"])
    found = discovery.discover(server.url)
    assert "client_auth_method" not in found.fields
    assert any("private_key_jwt" in note for note in found.notes)


def test_addresses_inside_the_network_are_refused(settings):
    settings.ALLOY_OAUTH = {}
    with DocumentServer() as server:
        server.routes[OAUTH] = metadata(server.url)
        with pytest.raises(discovery.DiscoveryError, match="not a public address"):
            discovery.discover(server.url)
        assert server.requested == []


@pytest.mark.parametrize("url, message", [
    ("ftp://example.com", "must be an absolute http(s) URL"),
    ("http://example.com", "must use https"),
    ("https://" + "a" * 600 + ".example", "at most 500 characters"),
])
def test_bad_input(url, message):
    with pytest.raises(discovery.DiscoveryError, match=re.escape(message)):
        discovery.discover(url)


# --- the admin's endpoint --------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("op", "op@example.com", "pw")


@pytest.mark.django_db
def test_the_endpoint_answers_json_to_staff(server, staff):
    server.routes[OAUTH] = metadata(server.url)
    client = Client()
    client.force_login(staff)
    url = reverse("admin:alloy_oauth_connector_discover")
    answer = client.post(url, {"url": server.url})
    assert answer.status_code == 200
    assert answer.json()["fields"]["auth_url"] == server.url + "/authorize"
    server.routes.clear()
    failed = client.post(url, {"url": server.url})
    assert failed.status_code == 400 and "No discovery document" in failed.json()["error"]
    assert client.post(url, {"url": " "}).json()["error"].startswith("Enter the provider")
    assert client.get(url).status_code == 405


@pytest.mark.django_db
def test_the_endpoint_needs_staff_and_csrf(server, staff, django_user_model):
    url = reverse("admin:alloy_oauth_connector_discover")
    anonymous = Client().post(url, {"url": server.url})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    unprivileged = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    client = Client()
    client.force_login(unprivileged)
    assert client.post(url, {"url": server.url}).status_code == 403
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff)
    assert checked.post(url, {"url": server.url}).status_code == 403
    assert server.requested == []


# --- django-oauth-toolkit --------------------------------------------------------------------


@pytest.fixture(scope="module")
def discoverable_provider(tmp_path_factory):
    """The live provider with an issuer, which it sends as iss (RFC 9207) and names in its
    RFC 8414 document (served at the issuer with the well-known part appended)."""
    provider = ProviderServer(tmp_path_factory.mktemp("discovery-provider"))
    provider.issuer = provider.base_url + "/provider/o"
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.mark.django_db(transaction=True)
def test_django_oauth_toolkits_document_makes_a_working_connector(discoverable_provider,
                                                                  live_server, settings,
                                                                  django_user_model):
    settings.ALLOY_OAUTH = {**ALLOW_LOOPBACK, "CALLBACK_BASE_URL": live_server.url}
    found = discovery.discover(discoverable_provider.issuer)
    assert found.document_url == discoverable_provider.issuer + OAUTH
    assert found.fields == {
        "issuer": discoverable_provider.issuer, "auth_url": discoverable_provider.auth_url,
        "token_url": discoverable_provider.token_url,
        "revocation_url": discoverable_provider.revocation_url, "require_issuer": True,
        "use_pkce": True, "client_auth_method": "client_secret_basic"}
    data = {"name": "DOT", "slug": "dot", "client_id": discoverable_provider.client_id,
            "client_secret": discoverable_provider.client_secret, "scope": "read",
            "scope_separator": " ", "refresh_params": "{}", "authorization_params": "{}",
            "token_params": "{}", "connection_params": "[]", "metadata_fields": "{}",
            "callback_params": "[]", "is_active": "on",
            **{name: ("on" if value is True else value) for name, value in found.fields.items()}}
    form = ConnectorForm(data=data)
    assert form.is_valid(), form.errors
    connector = form.save()
    Connector.objects.filter(pk=connector.pk).update(validated_at=timezone.now())  # (live)
    # An end user connects with it: PKCE, client_secret_basic and the iss the provider sends.
    site = Client()
    site.force_login(django_user_model.objects.create_user("alice", password="pw"))
    discoverable_provider.connect(site, connector.slug)
    credential = connector.credentials.get()
    assert credential.status == Credential.Status.ACTIVE
    assert discoverable_provider.call_api(credential.access_token).status_code == 200


@pytest.mark.django_db
def test_only_staff_who_may_edit_see_the_button(staff, django_user_model):
    connector = Connector.objects.create(name="Acme", slug="acme", client_id="id",
                                         auth_url="https://acme.example/authorize",
                                         token_url="https://acme.example/token")
    page = reverse("admin:alloy_oauth_connector_change", args=[connector.pk])
    editor = Client()
    editor.force_login(staff)
    assert 'id="alloy-oauth-discover"' in editor.get(page).content.decode()
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_connector"))
    client = Client()
    client.force_login(viewer)
    answer = client.get(page)
    assert answer.status_code == 200
    assert 'id="alloy-oauth-discover"' not in answer.content.decode()
    assert client.post(reverse("admin:alloy_oauth_connector_discover"),
                       {"url": "https://acme.example"}).status_code == 403
