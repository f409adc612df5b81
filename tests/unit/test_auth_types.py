"""Authentication types: where each type's secret goes on an API request
(``credential.session()``), and that it never reaches another host than the API's."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from alloy_oauth import auth_types
from alloy_oauth.models import Connector, Credential

from tests.support.api_server import ApiServer

API = "https://api.example/v1"


@pytest.fixture
def make_credential(make_connector, django_user_model):
    def make(auth_type="oauth2", api_base_url=API, credential=None, **connector_fields):
        connector = make_connector(auth_type=auth_type, api_base_url=api_base_url,
                                   **connector_fields)
        values = {"access_token": "the-token", "api_key": "the-key", "username": "ann",
                  "password": "pa:ss", **(credential or {})}
        return Credential.objects.create(connector=connector, external_id="someone", **values)
    return make


class TestTemplates:
    @pytest.mark.parametrize("auth_type, template", [
        ("oauth2", "{token_type} {token}"), ("api_key", "Token token={api_key}"),
        ("basic", "{token_type} {token}"), ("basic", "{username}/{password}"),
        ("bearer", "{token}"),
    ])
    def test_allowed(self, auth_type, template):
        assert auth_types.template_problem(template, auth_type) is None

    @pytest.mark.parametrize("auth_type, template, problem", [
        ("oauth2", "{api_key}", "Unknown placeholder"),
        ("api_key", "{password}", "Unknown placeholder"),
        ("oauth2", "{token.__class__}", "Unknown placeholder"),
        ("oauth2", "{token!r}", "no format"),
        ("oauth2", "{token:>9}", "no format"),
        ("oauth2", "Bearer {token", "Unbalanced"),
        ("oauth2", "static", "must contain"),
        ("oauth2", "{token}\r\nX-Evil: 1", "line breaks"),
    ])
    def test_refused(self, auth_type, template, problem):
        assert problem in auth_types.template_problem(template, auth_type)


class TestPlacement:
    def test_oauth2_default_header(self, make_credential, responses):
        responses.get(f"{API}/me", json={})
        make_credential().session().get("me")
        assert responses.calls[0].request.headers["Authorization"] == "Bearer the-token"

    def test_custom_header_and_template(self, make_credential, responses):
        responses.get(f"{API}/me", json={})
        make_credential(token_header="X-Shopify-Access-Token",
                        token_template="{token}").session().get("me")
        headers = responses.calls[0].request.headers
        assert headers["X-Shopify-Access-Token"] == "the-token"
        assert "Authorization" not in headers

    def test_api_key_header(self, make_credential, responses):
        responses.get(f"{API}/me", json={})
        make_credential("api_key", token_template="Token token={api_key}").session().get("me")
        assert responses.calls[0].request.headers["Authorization"] == "Token token=the-key"

    def test_api_key_default_template_is_bearer(self, make_credential, responses):
        responses.get(f"{API}/me", json={})
        make_credential("api_key").session().get("me")
        assert responses.calls[0].request.headers["Authorization"] == "Bearer the-key"

    def test_basic(self, make_credential, responses):
        responses.get(f"{API}/me", json={})
        make_credential("basic").session().get("me")
        expected = "Basic " + base64.b64encode(b"ann:pa:ss").decode()
        assert responses.calls[0].request.headers["Authorization"] == expected

    def test_bearer_ignores_token_type(self, make_credential, responses):
        responses.get(f"{API}/me", json={})
        make_credential("bearer", credential={"token_type": "MAC"}).session().get("me")
        assert responses.calls[0].request.headers["Authorization"] == "Bearer the-token"

    def test_query_parameter(self, make_credential, responses):
        responses.get(f"{API}/me", json={})
        make_credential("api_key", token_placement="query", token_query_param="api_key",
                        credential={"api_key": "k y&"}).session().get("me?page=2")
        request = responses.calls[0].request
        assert request.url == f"{API}/me?page=2&api_key={quote('k y&', safe='').replace('%20', '+')}"
        assert "Authorization" not in request.headers

    def test_no_refresh_on_401_for_entered_secrets(self, make_credential, responses):
        responses.get(f"{API}/me", status=401)
        credential = make_credential("api_key")
        assert credential.session().get("me").status_code == 401
        assert len(responses.calls) == 1  # no token endpoint asked, no second try

    def test_other_host_gets_no_secret(self, make_credential, responses):
        responses.get("https://elsewhere.example/x", json={})
        make_credential("api_key", token_header="X-Api-Key",
                        token_template="{api_key}").session().get("https://elsewhere.example/x")
        assert "X-Api-Key" not in responses.calls[0].request.headers


class TestRedirects:
    """Two real servers: the API (127.0.0.1) redirects to another host (localhost)."""

    @pytest.fixture
    def servers(self):
        with ApiServer() as api, ApiServer(host="localhost") as other:
            yield api, other

    @pytest.mark.parametrize("auth_type, fields, secret_header", [
        ("oauth2", {}, "Authorization"),
        ("api_key", {"token_header": "X-Api-Key", "token_template": "{api_key}"}, "X-Api-Key"),
        ("oauth2", {"token_header": "X-Shopify-Access-Token", "token_template": "{token}"},
         "X-Shopify-Access-Token"),
        ("basic", {}, "Authorization"),
    ])
    def test_header_dropped_on_another_host(self, make_credential, servers, auth_type, fields,
                                            secret_header):
        api, other = servers
        credential = make_credential(auth_type, api_base_url=api.url, **fields)
        response = credential.session().get(f"redirect?to={quote(other.url + '/landed')}")
        assert response.status_code == 200
        assert secret_header in api.requests[0]["headers"]
        assert [r["path"] for r in other.requests] == ["/landed"]
        assert secret_header not in other.requests[0]["headers"]
        assert "Authorization" not in other.requests[0]["headers"]

    def test_query_parameter_dropped_on_another_host(self, make_credential, servers):
        api, other = servers
        credential = make_credential("api_key", api_base_url=api.url, token_placement="query",
                                     token_query_param="key")
        # A redirect that keeps the query string, secret included, as some servers do.
        target = quote(other.url + "/landed?key=the-key&keep=1")
        credential.session().get(f"redirect?to={target}")
        assert api.requests[0]["query"]["key"] == ["the-key"]
        assert other.requests[0]["query"] == {"keep": ["1"]}

    def test_kept_on_the_same_host(self, make_credential, servers):
        api, _ = servers
        credential = make_credential("api_key", api_base_url=api.url, token_header="X-Api-Key",
                                     token_template="{api_key}")
        credential.session().get(f"redirect?to={quote(api.url + '/landed')}")
        assert api.requests[1]["headers"]["X-Api-Key"] == "the-key"


def test_connector_defaults(db):
    connector = Connector(name="x", slug="x")
    assert (connector.auth_type, connector.token_placement, connector.token_header,
            connector.token_template) == ("oauth2", "header", "Authorization",
                                          "{token_type} {token}")
