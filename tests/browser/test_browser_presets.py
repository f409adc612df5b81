"""Setting a connector up quickly, in headless Chromium: "New connector from a preset" and
"Fill from issuer" on the admin's add page, each pressed and followed by Save."""

from __future__ import annotations

import pytest

from alloy_oauth.models import Connector
from alloy_oauth.presets import get_preset

from tests.support.browser import log_in, save_screenshot
from tests.support.document_server import DocumentServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_connector_from_a_preset(page, live_server, operator, settings,
                                   tmp_path):
    settings.ALLOY_OAUTH = {"PROVIDER_RECIPES_URL": "/docs/providers.md"}
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    recipe = page.locator("#alloy-oauth-preset-recipe")
    assert not recipe.is_visible()  # no provider chosen yet
    # The recipe link follows the provider picked in the list, before the form is filled.
    page.select_option("#alloy-oauth-preset", "dropbox")
    assert recipe.is_visible()
    assert recipe.get_attribute("href") == "/docs/providers.md#recipe-dropbox"
    page.select_option("#alloy-oauth-preset", "shopify")
    assert recipe.get_attribute("href") == "/docs/providers.md#recipe-shopify"
    with page.expect_navigation():
        page.click("#alloy-oauth-preset-apply")
    preset = get_preset("shopify")
    assert page.url.endswith("/add/?preset=shopify")
    assert recipe.get_attribute("href") == "/docs/providers.md#recipe-shopify"
    # The link leads to that recipe: the test project serves docs/providers.md there.
    recipe_page = page.context.new_page()
    recipe_page.goto(live_server.url + recipe.get_attribute("href"))
    assert '<a id="recipe-shopify"></a>\n## Shopify' in recipe_page.inner_text("body")
    recipe_page.close()
    page.select_option("#alloy-oauth-preset", "")
    assert not recipe.is_visible()
    page.select_option("#alloy-oauth-preset", "shopify")
    assert page.input_value("#id_name") == "Shopify"
    assert page.input_value("#id_slug") == "shopify"
    assert page.input_value("#id_auth_url") == preset.fields["auth_url"]
    assert page.input_value("#id_token_url") == preset.fields["token_url"]
    assert page.input_value("#id_scope_separator") == ","
    assert page.input_value("#id_client_auth_method") == "client_secret_post"
    assert not page.is_checked("#id_use_pkce")
    assert '"shop"' in page.input_value("#id_connection_params")
    assert "Shopify's documentation" in page.inner_text("#alloy-oauth-preset-applied")
    # The operator pastes what only the provider's console knows.
    page.fill("#id_client_id", "shopify-client-id")
    page.fill("#id_client_secret", "shopify-client-secret")
    page.fill("#id_scope", "read_products,read_orders")
    save_screenshot(page, "connector-preset.png", tmp_path)
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert page.url.endswith("/admin/alloy_oauth/connector/")
    connector = Connector.objects.get()
    assert (connector.slug, connector.client_id, connector.client_secret) == (
        "shopify", "shopify-client-id", "shopify-client-secret")
    assert connector.auth_url == preset.fields["auth_url"]
    assert connector.api_base_url == preset.fields["api_base_url"]
    assert connector.connection_params == preset.fields["connection_params"]
    assert connector.use_pkce is False and connector.scope_separator == ","


def test_without_a_recipes_url_the_picker_names_the_recipe(page, live_server, operator,
                                                           settings):
    """No PROVIDER_RECIPES_URL: the script writes the chosen provider's recipe as text."""
    settings.ALLOY_OAUTH = {}
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    recipe = page.locator("#alloy-oauth-preset-recipe")
    assert not recipe.is_visible()
    page.select_option("#alloy-oauth-preset", "dropbox")
    assert recipe.is_visible()
    assert recipe.inner_text() == "docs/providers.md#recipe-dropbox"
    assert recipe.get_attribute("href") is None  # nothing to follow: a name, not a link
    page.select_option("#alloy-oauth-preset", "")
    assert not recipe.is_visible()


def test_fill_from_issuer(page, live_server, operator, settings, tmp_path):
    settings.ALLOY_OAUTH = {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"], "HTTP_TIMEOUT": 2}
    with DocumentServer() as server:
        issuer = server.url + "/realms/acme"
        server.routes["/.well-known/oauth-authorization-server/realms/acme"] = {
            "issuer": issuer, "authorization_endpoint": issuer + "/auth",
            "token_endpoint": issuer + "/token", "revocation_endpoint": issuer + "/revoke",
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "authorization_response_iss_parameter_supported": True,
        }
        log_in(page, live_server)
        page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
        page.fill("#alloy-oauth-discover-url", server.url + "/nowhere")
        page.click("#alloy-oauth-discover")
        page.wait_for_selector("#alloy-oauth-discover-result .alloy-oauth-failed")
        assert "No discovery document was found" in page.inner_text("#alloy-oauth-discover-result")

        page.fill("#alloy-oauth-discover-url", issuer)
        page.click("#alloy-oauth-discover")
        page.wait_for_selector("#alloy-oauth-discover-result .alloy-oauth-ok >> text=Filled from")
        assert page.input_value("#id_auth_url") == issuer + "/auth"
        assert page.input_value("#id_token_url") == issuer + "/token"
        assert page.input_value("#id_revocation_url") == issuer + "/revoke"
        assert page.input_value("#id_issuer") == issuer
        assert page.is_visible("#id_issuer")  # the collapsed Advanced section was opened
        assert page.input_value("#id_client_auth_method") == "client_secret_post"
        assert page.is_checked("#id_require_issuer") and page.is_checked("#id_use_pkce")
        notes = page.inner_text("#alloy-oauth-discover-result .alloy-oauth-note")
        assert "sends iss" in notes
        save_screenshot(page, "connector-fill-from-issuer.png", tmp_path)

        page.fill("#id_name", "Acme SSO")
        page.fill("#id_client_id", "acme-client")
        page.fill("#id_client_secret", "acme-secret")
        with page.expect_navigation():
            page.click("input[name=_save]")
    connector = Connector.objects.get()
    assert (connector.slug, connector.issuer, connector.require_issuer) == (
        "acme-sso", issuer, True)
    assert connector.token_url == issuer + "/token"
    assert connector.client_auth_method == "client_secret_post"
