"""The recipes of docs/providers.md, typed into the connector form as an operator would: each
must be accepted, and its URLs must come out right for a sample account (the presets of
issue 13: Shopify, Salesforce, Microsoft single-tenant, Zoho by region, QuickBooks)."""

from __future__ import annotations

import re

import pytest

from alloy_oauth.forms import ConnectorForm

from tests.support import REPO_DIR

pytestmark = pytest.mark.django_db

RECIPES = REPO_DIR / "docs" / "providers.md"
#: The table's words for the form's fields.
FIELDS = {
    "Auth URL": "auth_url", "Access token URL": "token_url", "Scope": "scope",
    "Scope separator (Advanced)": "scope_separator", "Client authentication": "client_auth_method",
    "Extra authorization parameters": "authorization_params", "Revocation URL": "revocation_url",
    "Connection parameters": "connection_params", "Metadata fields": "metadata_fields",
    "Callback parameters": "callback_params", "Account label": "account_label",
    "Default token lifetime": "default_expires_in",
}


def recipes() -> dict[str, dict[str, str]]:
    """Each section's table: ``{section title: {form field: value}}``."""
    found: dict[str, dict[str, str]] = {}
    title = ""
    for line in RECIPES.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("# ")
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 2 or cells[0] in ("field", "---"):
            continue
        values = [value.replace("\\|", "|") for value in re.findall(r"`([^`]*)`", cells[1])]
        if cells[0] == "API base URL / test path":
            found.setdefault(title, {}).update(api_base_url=values[0], test_request_path=values[1])
        elif cells[0] in FIELDS and values:
            found.setdefault(title, {})[FIELDS[cells[0]]] = values[0]
    return found


#: A sample account per recipe: its connection parameters and metadata, and the URLs they make.
SAMPLES = {
    "Shopify": ({"shop": "acme"}, {}, {
        "auth_url": "https://acme.myshopify.com/admin/oauth/authorize",
        "token_url": "https://acme.myshopify.com/admin/oauth/access_token",
        "api_base_url": "https://acme.myshopify.com/admin/api/2025-01"}),
    "Salesforce": ({}, {"instance_url": "https://acme.my.salesforce.com"}, {
        "api_base_url": "https://acme.my.salesforce.com/services/data/v62.0"}),
    "Microsoft single-tenant": ({"tenant": "contoso.onmicrosoft.com"}, {}, {
        "token_url":
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"}),
    "Zoho (by data centre)": ({"region": "com.au"}, {}, {
        "token_url": "https://accounts.zoho.com.au/oauth/v2/token",
        "api_base_url": "https://www.zohoapis.com.au/crm/v6"}),
    "QuickBooks Online (Intuit)": ({}, {"realmId": "9130347599326446"}, {
        "api_base_url": "https://quickbooks.api.intuit.com/v3/company/9130347599326446"}),
}


@pytest.mark.parametrize("title", sorted(SAMPLES))
def test_the_recipe_works(title):
    recipe = recipes()[title]
    data = {"name": title, "slug": re.sub(r"[^a-z]+", "-", title.lower()).strip("-"),
            "is_active": "on", "client_id": "id", "client_secret": "secret", "use_pkce": "on",
            "client_auth_method": "client_secret_basic", "scope_separator": " ",
            "refresh_params": "{}", "authorization_params": "{}", "token_params": "{}",
            "connection_params": "[]", "metadata_fields": "{}", "callback_params": "[]",
            **recipe}
    form = ConnectorForm(data=data)
    assert form.is_valid(), form.errors
    connector = form.save()
    config, metadata, urls = SAMPLES[title]
    for field, url in urls.items():
        assert connector.url(field, config, metadata) == url


def test_every_recipe_with_parameters_is_tried():
    with_parameters = {title for title, recipe in recipes().items()
                       if "{" in "".join(recipe.get(field, "") for field in (
                           "auth_url", "token_url", "api_base_url"))}
    assert with_parameters == set(SAMPLES)
