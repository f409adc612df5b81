"""The connector presets (alloy_oauth/presets/providers.toml): each one is sound data, makes a
connector the form accepts, and is listed in docs/providers.md; the add page applies them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from alloy_oauth import connection_params
from alloy_oauth.forms import ConnectorForm
from alloy_oauth.models import Connector
from alloy_oauth.presets import (
    OPERATOR_FIELDS,
    TOKEN_PLACEMENT_FIELDS,
    Preset,
    all_presets,
    get_preset,
    model_field_names,
)

from tests.support import REPO_DIR

PROVIDERS_DOC = REPO_DIR / "docs" / "providers.md"
TABLE_START = "<!-- presets table: generated from alloy_oauth/presets/providers.toml -->"
TABLE_END = "<!-- end of presets table -->"
#: What the issue asks for at least.
REQUIRED = {"google", "microsoft", "github", "gitlab", "slack", "salesforce", "hubspot",
            "shopify", "zoom", "dropbox", "box", "notion", "atlassian", "asana", "linear",
            "airtable", "xero", "quickbooks", "stripe-connect", "zendesk", "intercom", "discord",
            "spotify", "linkedin", "x", "figma", "calendly", "docusign", "pipedrive",
            "mailchimp"}
PRESETS = {preset.slug: preset for preset in all_presets()}
#: A sample account for the presets whose URLs need one: connection parameters, metadata.
SAMPLE_VALUES = {"shop": "acme", "subdomain": "acme", "tenant": "contoso.onmicrosoft.com",
                 "region": "eu"}
SAMPLE_METADATA = {"instance_url": "https://acme.my.salesforce.com",
                   "api_domain": "https://acme.pipedrive.com", "realmId": "9130347599326446"}


def test_the_providers_people_connect_most_have_a_preset():
    assert len(PRESETS) >= 30
    assert REQUIRED <= set(PRESETS)
    assert len(PRESETS) == len(all_presets())  # slugs are unique


@pytest.mark.parametrize("slug", sorted(PRESETS))
def test_every_key_is_known(slug):
    preset = PRESETS[slug]
    # A key is a Connector field, or one of the four token placement fields of
    # docs/configuration.md that the model may not have yet.
    unknown = set(preset.fields) - model_field_names() - TOKEN_PLACEMENT_FIELDS
    assert not unknown, f"{slug}: not Connector fields: {unknown}"
    assert not set(preset.fields) & OPERATOR_FIELDS, "the operator's own values are never preset"
    assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", slug)
    assert preset.name and preset.docs
    assert {"auth_url", "token_url"} <= set(preset.fields)


@pytest.mark.parametrize("slug", sorted(PRESETS))
def test_every_url_is_https(slug):
    preset = PRESETS[slug]
    assert preset.docs.startswith("https://")
    for name in Connector.URL_FIELDS:
        url = preset.fields.get(name)
        if url:
            sample = connection_params.sample_url(url)
            assert sample.startswith("https://"), (name, url)


@pytest.mark.parametrize("slug", sorted(PRESETS))
def test_token_placement_is_what_the_design_allows(slug):
    fields = PRESETS[slug].fields
    assert fields.get("token_placement", "header") in ("header", "query")
    assert "{token}" in fields.get("token_template", "{token}")
    if fields.get("token_placement") == "query":
        assert fields.get("token_query_param")


@pytest.mark.parametrize("slug", sorted(PRESETS))
def test_the_logo_is_a_static_file(slug):
    logo = PRESETS[slug].logo
    if logo:
        assert logo == f"alloy_oauth/logos/{slug}.svg"
        assert finders.find(logo), f"{logo} is missing"


def test_every_logo_file_belongs_to_a_preset():
    folder = Path(finders.find("alloy_oauth/logos/LICENSE.md")).parent
    assert {path.stem for path in folder.glob("*.svg")} == {
        slug for slug, preset in PRESETS.items() if preset.logo}


@pytest.mark.parametrize("slug", sorted(PRESETS))
def test_the_placeholders_are_declared(slug):
    fields = PRESETS[slug].fields
    declared = connection_params.declared(fields.get("connection_params", []))
    params = {param.name for param in declared}
    metadata = {f"metadata.{key}" for key in
                [*fields.get("metadata_fields", {}), *fields.get("callback_params", [])]}
    for name in (*Connector.URL_FIELDS, "account_label"):
        for placeholder in re.findall(r"\{([^{}]*)\}", fields.get(name, "")):
            assert placeholder in params | metadata, (name, placeholder)


def form_data(preset: Preset) -> dict[str, str]:
    """The add form as the browser posts it after the preset filled it (every field's initial
    value, as rendered) and the operator pasted the client ID, the secret and the scopes."""
    form = ConnectorForm(initial=preset.initial())
    data = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    return {**data, "client_id": "id", "client_secret": "secret", "scope": "read"}


@pytest.mark.django_db
@pytest.mark.parametrize("slug", sorted(PRESETS))
def test_the_preset_makes_a_connector_the_form_accepts(slug):
    preset = PRESETS[slug]
    form = ConnectorForm(data=form_data(preset))
    assert form.is_valid(), form.errors
    connector = form.save()
    for name, value in preset.fields.items():
        if name in model_field_names():
            assert getattr(connector, name) == value, name
    # Its URLs come out as https URLs for a sample account.
    config = {param.name: SAMPLE_VALUES[param.name] for param in connector.params}
    for name in ("auth_url", "token_url", "revocation_url", "api_base_url"):
        if getattr(connector, name):
            url = connector.url(name, config, SAMPLE_METADATA)
            assert url.startswith("https://") and "{" not in url, (name, url)


def test_a_field_the_model_does_not_have_is_left_out():
    preset = Preset(slug="p", name="P", docs="https://example.com/docs",
                    logo="alloy_oauth/logos/x.svg",
                    fields={"auth_url": "https://example.com/a", "token_header": "X-Token",
                            "token_template": "{token}"})
    initial = preset.initial()
    assert initial["auth_url"] == "https://example.com/a"
    assert set(initial) <= model_field_names()
    if "token_header" in model_field_names():  # (once the model has the field)
        assert initial["token_header"] == "X-Token"


# --- docs/providers.md ---------------------------------------------------------------------


def markdown_table() -> str:
    def cell(text: str) -> str:
        return f"`{text}`" if text else "—"

    rows = ["| provider | auth URL | token URL | API base URL | also filled | docs |",
            "|---|---|---|---|---|---|"]
    for preset in all_presets():
        fields = preset.fields
        extras = []
        if fields.get("connection_params"):
            extras.append("asks for " + ", ".join(
                f"`{param['name']}`" for param in fields["connection_params"]))
        if fields.get("client_auth_method") == "client_secret_post":
            extras.append("`client_secret_post`")
        if fields.get("revocation_url"):
            extras.append("revocation URL")
        if fields.get("refresh_url"):
            extras.append("refresh URL")
        if fields.get("authorization_params"):
            extras.append(cell(" ".join(f"{key}={value}" for key, value in
                                        fields["authorization_params"].items())))
        for name in ("metadata_fields", "callback_params"):
            if fields.get(name):
                extras.append("metadata " + ", ".join(f"`{key}`" for key in fields[name]))
        if fields.get("scope_separator") == ",":
            extras.append("comma-separated scopes")
        if fields.get("use_pkce") is False:
            extras.append("no PKCE")
        if "token_header" in fields or "token_template" in fields:
            extras.append("token as " + cell(
                f"{fields.get('token_header', 'Authorization')}: "
                f"{fields.get('token_template', '{token_type} {token}')}"))
        rows.append(f"| [{preset.name}](#{preset.recipe_anchor}) (`{preset.slug}`) | "
                    f"{cell(fields['auth_url'])} | "
                    f"{cell(fields['token_url'])} | {cell(fields.get('api_base_url', ''))} | "
                    f"{'; '.join(extras) or '—'} | "
                    f"[docs]({preset.docs}) |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def test_docs_list_every_preset():
    """docs/providers.md's table is this file's: ALLOY_OAUTH_UPDATE_DOCS=1 rewrites it."""
    text = PROVIDERS_DOC.read_text()
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    assert pattern.search(text), f"docs/providers.md has no {TABLE_START}"
    expected = pattern.sub(lambda _: markdown_table(), text)
    if os.environ.get("ALLOY_OAUTH_UPDATE_DOCS") == "1":
        PROVIDERS_DOC.write_text(expected)
        text = expected
    assert text == expected, "run ALLOY_OAUTH_UPDATE_DOCS=1 pytest tests/unit/test_presets.py"


#: ``<a id="recipe-github"></a>``: the anchors of docs/providers.md's recipes.
RECIPE_ANCHOR = re.compile(r'<a id="(recipe-[^"]*)"></a>')


def test_every_preset_has_its_recipe():
    """Each preset's recipe anchor is in docs/providers.md once, just above its heading, and
    no recipe anchor names a preset that does not exist."""
    text = PROVIDERS_DOC.read_text()
    anchors = RECIPE_ANCHOR.findall(text)
    assert sorted(anchors) == sorted(preset.recipe_anchor for preset in all_presets())
    for anchor in anchors:  # each introduces a section with words of its own
        section = text.split(f'<a id="{anchor}"></a>\n', 1)[1]
        heading, _, body = section.partition("\n")
        assert heading.startswith("#"), f"{anchor} is not just above a heading"
        assert len(body.split("\n#", 1)[0].split()) > 30, f"{anchor}'s recipe is a stub"


def test_recipe_anchors_are_made_from_the_slug():
    """Published copies of docs/providers.md are linked with these anchors: they must not
    follow a heading's wording."""
    assert get_preset("github").recipe_anchor == "recipe-github"
    assert get_preset("microsoft-tenant").recipe_anchor == "recipe-microsoft-tenant"


# --- the add page --------------------------------------------------------------------------


@pytest.fixture
def operator_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    return client


@pytest.mark.django_db
def test_the_add_page_offers_every_preset(operator_client):
    page = operator_client.get(reverse("admin:alloy_oauth_connector_add")).content.decode()
    for preset in all_presets():
        assert f'<option value="{preset.slug}">' in page


@pytest.mark.django_db
def test_the_add_page_is_filled_from_a_preset(operator_client):
    url = reverse("admin:alloy_oauth_connector_add") + "?preset=shopify"
    page = operator_client.get(url).content.decode()
    assert 'value="https://{shop}.myshopify.com/admin/oauth/authorize"' in page
    assert 'value="shopify"' in page and 'value="Shopify"' in page
    assert "&quot;name&quot;: &quot;shop&quot;" in page  # the connection parameter's JSON
    assert get_preset("shopify").docs in page  # the documentation is linked
    assert 'id="alloy-oauth-preset-applied"' in page
    assert '<img class="alloy-oauth-preset-logo" src="/static/alloy_oauth/logos/shopify.svg"' in page


@pytest.mark.django_db
def test_the_add_page_links_the_presets_recipe(operator_client, settings):
    settings.ALLOY_OAUTH = {"PROVIDER_RECIPES_URL": "https://docs.example/providers.html"}
    add = reverse("admin:alloy_oauth_connector_add")
    page = operator_client.get(add + "?preset=zendesk").content.decode()
    assert ('id="alloy-oauth-preset-recipe" '
            'href="https://docs.example/providers.html#recipe-zendesk"') in page
    assert 'data-anchor-prefix="recipe-"' in page  # for the script, when another is picked
    page = operator_client.get(add).content.decode()  # no preset yet: the link waits, hidden
    assert 'id="alloy-oauth-preset-recipe-help" hidden' in page
    assert 'id="alloy-oauth-preset-recipe" href="https://docs.example/providers.html" ' in page


@pytest.mark.django_db
def test_without_a_recipes_url_the_add_page_names_the_recipe(operator_client, settings):
    settings.ALLOY_OAUTH = {}
    url = reverse("admin:alloy_oauth_connector_add") + "?preset=zendesk"
    page = operator_client.get(url).content.decode()
    assert ">docs/providers.md#recipe-zendesk</code>" in page
    assert 'id="alloy-oauth-preset-recipe" href' not in page


@pytest.mark.django_db
def test_an_unknown_preset_is_said_so(operator_client):
    url = reverse("admin:alloy_oauth_connector_add") + "?preset=nope"
    answer = operator_client.get(url, follow=True)
    assert answer.status_code == 200
    assert "There is no preset “nope”" in answer.content.decode()
    assert 'id="alloy-oauth-preset-applied"' not in answer.content.decode()
