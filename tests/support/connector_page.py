"""The connector page's form: valid values to start from, and the form as a browser would
post it, for tests that press "Validate credential" (which checks the values on the page)
through the test client."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django import forms
from django.urls import reverse

from alloy_oauth.forms import ConnectorForm
from alloy_oauth.models import Connector


def page_values(connector: Connector | None = None, **changes: Any) -> dict[str, Any]:
    """The values the connector's page shows (the client secret left blank, as the page
    leaves it, and the hidden initial values Django adds), with ``changes`` typed over them;
    a checkbox is absent when unticked."""
    form = ConnectorForm(instance=connector)
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled or name == "client_secret":
            continue
        value = form[name].value()
        if field.show_hidden_initial:  # (fields with a callable default: as the page renders)
            data[f"initial-{name}"] = value
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    data.update(changes)
    return {name: value for name, value in data.items() if value is not False}


def validate_url(connector: Connector | None) -> str:
    if connector is None:
        return reverse("admin:alloy_oauth_connector_validate_new")
    return reverse("admin:alloy_oauth_connector_validate", args=[connector.pk])


def press_validate(client: Any, connector: Connector | None, *, flow: str = "flow-1",
                   **changes: Any) -> dict[str, Any]:
    """Press "Validate credential" with the page's values (and ``changes``): the JSON."""
    response = client.post(validate_url(connector), {
        **page_values(connector, **changes), "_alloy_oauth_flow": flow})
    assert response.status_code == 200, response.content
    return response.json()


def state_of(authorize_url: str) -> str:
    return parse_qs(urlsplit(authorize_url).query)["state"][0]


def stub_preflight(responses: Any, connector: Connector) -> None:
    """The provider as the pre-flight wants it: the auth URL answers, and the token
    endpoint refuses the deliberately invalid code (accepting the client credentials)."""
    responses.get(connector.auth_url, status=302)
    responses.post(connector.token_url, json={"error": "invalid_grant"}, status=400)


#: A valid connector form (GitHub's), for tests that change a value or two.
VALID = {
    "name": "GitHub", "slug": "github", "is_active": "on",
    "auth_url": "https://github.com/login/oauth/authorize",
    "token_url": "https://github.com/login/oauth/access_token",
    "client_id": "Iv1.abc", "client_secret": "gh-client-secret", "scope": "repo, user",
    "refresh_url": "", "refresh_params": "{}", "refresh_lead_time": "", "default_expires_in": "",
    "client_auth_method": "client_secret_basic", "use_pkce": "on", "scope_separator": " ",
    "authorization_params": "{}", "token_params": "{}", "revocation_url": "",
    "api_base_url": "https://api.github.com", "test_request_path": "/user",
}


def form(data=None, instance=None, **changes) -> ConnectorForm:
    values = dict(VALID if data is None else data)
    values.update(changes)
    return ConnectorForm(data=values, instance=instance)
