"""The operator's side of connection parameters and metadata: the connector form's checks,
Validate credential with parameter values, and the credential pages."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from alloy_oauth.models import AuthorizationRequest, Connector, Credential

from tests.support.connector_page import VALID, form, press_validate

pytestmark = pytest.mark.django_db

SHOPIFY = {
    **VALID, "name": "Shopify", "slug": "shopify",
    "auth_url": "https://{shop}.myshopify.com/admin/oauth/authorize",
    "token_url": "https://{shop}.myshopify.com/admin/oauth/access_token",
    "api_base_url": "https://{shop}.myshopify.com/admin/api/2024-10", "test_request_path": "",
    "connection_params": json.dumps([{"name": "shop", "label": "Shop", "help": "acme",
                                      "pattern": "[a-z0-9][a-z0-9-]*"}]),
    "metadata_fields": json.dumps({"scope": "scope"}), "callback_params": "[]",
    "account_label": "{shop}", "allow_multiple_accounts": "on",
}


class TestConnectorForm:
    def test_a_templated_connector(self):
        f = form(SHOPIFY)
        assert f.is_valid(), f.errors
        connector = f.save()
        assert connector.auth_url == SHOPIFY["auth_url"]
        assert connector.params[0].name == "shop" and connector.allow_multiple_accounts
        assert connector.url("token_url", {"shop": "acme"}) == \
            "https://acme.myshopify.com/admin/oauth/access_token"

    def test_salesforce_and_zoho(self):
        salesforce = form({**SHOPIFY, "slug": "sf",
                           "auth_url": "https://login.salesforce.com/services/oauth2/authorize",
                           "token_url": "https://login.salesforce.com/services/oauth2/token",
                           "api_base_url": "{metadata.instance_url}/services/data/v62.0",
                           "connection_params": "[]", "account_label": "",
                           "metadata_fields": '{"instance_url": "instance_url"}'})
        assert salesforce.is_valid(), salesforce.errors
        # (No scheme is put in front of a template that starts with its origin.)
        assert salesforce.save().api_base_url == "{metadata.instance_url}/services/data/v62.0"
        zoho = form({**SHOPIFY, "slug": "zoho",
                     "auth_url": "https://accounts.zoho.{region}/oauth/v2/auth",
                     "token_url": "https://accounts.zoho.{region}/oauth/v2/token",
                     "api_base_url": "https://www.zohoapis.{region}/crm/v6",
                     "account_label": "{metadata.api_domain}",
                     "metadata_fields": '{"api_domain": "api_domain"}',
                     "connection_params": json.dumps([{"name": "region", "label": "Data centre",
                                                       "choices": ["com", "eu", "com.au"]}])})
        assert zoho.is_valid(), zoho.errors

    @pytest.mark.parametrize("changes, field, words", [
        ({"auth_url": "https://{nope}.myshopify.com/a"}, "auth_url", "not a declared"),
        ({"auth_url": "https://accounts.example.{shop}/a"}, "auth_url", "fixed domain"),
        ({"auth_url": "https://{shop}/a"}, "auth_url", "fixed domain"),
        ({"token_url": "https://{shop}myshopify.com/t"}, "token_url", "fixed domain"),
        ({"token_url": "https://x.example.com:{shop}/t"}, "token_url", "port"),
        ({"auth_url": "{metadata.scope}/a"}, "auth_url", "API base URL only"),
        ({"api_base_url": "{metadata.nope}/a"}, "api_base_url", "not a metadata field"),
        ({"api_base_url": "{shop}/a"}, "api_base_url", "whole origin"),
        ({"revocation_url": "https://{shop}.myshopify.com/#{shop}"}, "revocation_url",
         "fragment"),
        ({"connection_params": '[{"name": "shop"}]'}, "connection_params", "pattern or choices"),
        ({"connection_params": '[{"name": "next", "pattern": "x"}]'}, "connection_params",
         "uses this name itself"),
        ({"connection_params": '[{"name": "shop", "pattern": "(a+)+"}]'}, "connection_params",
         "exponential"),
        ({"connection_params": '{"shop": "x"}'}, "connection_params", "JSON list"),
        ({"metadata_fields": '{"t": "authed_user.access_token"}'}, "metadata_fields",
         "holds a secret"),
        ({"metadata_fields": '["x"]'}, "metadata_fields", "JSON object"),
        ({"callback_params": '["state"]'}, "callback_params", "OAuth response itself"),
        ({"account_label": "{metadata.email}"}, "account_label", "not a metadata field"),
    ])
    def test_errors(self, changes, field, words):
        f = form({**SHOPIFY, **changes})
        assert not f.is_valid()
        assert words in " ".join(f.errors.get(field, [])), f.errors

    def test_choices_that_do_not_fit_their_slot(self):
        f = form({**SHOPIFY, "auth_url": "https://accounts.zoho.{region}/a",
                  "connection_params": json.dumps([
                      {"name": "shop", "label": "Shop", "pattern": "[a-z]+"},
                      {"name": "region", "label": "Region", "choices": ["com", "evil.com/x"]}])})
        assert not f.is_valid()
        assert "host name" in " ".join(f.errors["auth_url"])

    def test_new_parameters_need_the_secret_typed_again(self):
        """New choices or patterns make new hosts for the URLs the secret is sent to."""
        connector = form(SHOPIFY).save()
        data = {**SHOPIFY, "client_secret": "", "connection_params": json.dumps([
            {"name": "shop", "label": "Shop", "pattern": "[a-z0-9.-]+"}])}
        f = form(data, instance=connector)
        assert not f.is_valid()
        assert "You changed the values the connection parameters allow" in " ".join(f.errors["client_secret"])
        assert form({**data, "client_secret": "typed-again"}, instance=connector).is_valid()
        # A new label or help text sends the secret nowhere new, nor does a parameter of a
        # connector whose secret's URLs name none.
        relabelled = form({**SHOPIFY, "client_secret": "", "connection_params": json.dumps([
            {"name": "shop", "label": "Store", "pattern": "[a-z0-9][a-z0-9-]*"}])},
            instance=Connector.objects.get(pk=connector.pk))
        assert relabelled.is_valid(), relabelled.errors
        plain = form({**VALID, "slug": "plain"}).save()
        data = {**VALID, "slug": "plain", "client_secret": "",
                "connection_params": json.dumps([{"name": "x", "label": "X", "pattern": "a"}])}
        assert form(data, instance=plain).is_valid()

    def test_through_the_admin(self, admin_client):
        data = {**SHOPIFY, "api_base_url": "{metadata.instance_url}/services",
                "metadata_fields": '{"instance_url": "instance_url"}', "account_label": "{shop}"}
        response = admin_client.post(reverse("admin:alloy_oauth_connector_add"), data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        connector = Connector.objects.get()
        assert connector.api_base_url == "{metadata.instance_url}/services"
        page = admin_client.get(reverse("admin:alloy_oauth_connector_change",
                                        args=[connector.pk])).content.decode()
        assert 'data-alloy-oauth-param="shop"' in page  # asked for beside Validate


@pytest.fixture
def shopify() -> Connector:
    return form(SHOPIFY).save()


class TestValidate:
    def url(self, connector):
        return reverse("admin:alloy_oauth_connector_validate", args=[connector.pk])

    def test_the_values_are_needed_and_checked(self, admin_client, shopify, responses):
        for data in ({}, {"param-shop": "evil.com/x?"}):
            result = press_validate(admin_client, shopify, **data)
            assert result["ok"] is False and "authorize_url" not in result
            assert result["checks"][0]["name"] == "Connection parameters"
        assert not responses.calls  # nothing was sent anywhere

    def test_the_endpoints_of_those_values(self, admin_client, shopify, responses):
        responses.get("https://acme.myshopify.com/admin/oauth/authorize", status=302)
        responses.post("https://acme.myshopify.com/admin/oauth/access_token",
                       json={"error": "invalid_grant"}, status=400)
        result = press_validate(admin_client, shopify, flow="f1", **{"param-shop": "acme"})
        assert result["ok"], result["checks"]
        assert result["checks"][0]["message"] == "shop=acme"
        assert result["authorize_url"].startswith(
            "https://acme.myshopify.com/admin/oauth/authorize?")
        pending = AuthorizationRequest.objects.get()
        assert (pending.connection_config, pending.flow_id) == ({"shop": "acme"}, "f1")
        shopify.refresh_from_db()
        assert shopify.validation_report["connection_config"] == {"shop": "acme"}

    def test_the_list_action_asks_for_the_values(self, admin_client, shopify):
        response = admin_client.post(reverse("admin:alloy_oauth_connector_changelist"), {
            "action": "validate_preflight", "_selected_action": [shopify.pk]}, follow=True)
        assert "Enter Shop." in response.content.decode()


def test_credential_pages_show_parameters_and_metadata(admin_client, shopify,
                                                      django_user_model):
    credential = Credential.objects.create(
        connector=shopify, user=django_user_model.objects.create_user("alice"),
        access_token="access-SECRET", refresh_token="refresh-SECRET",
        token_response={"id_token": "id-SECRET"}, connection_config={"shop": "acme"},
        metadata={"scope": "read_products"})
    listing = admin_client.get(reverse("admin:alloy_oauth_credential_changelist"))
    assert "<td class=\"field-account\">acme</td>" in listing.content.decode()
    page = admin_client.get(reverse("admin:alloy_oauth_credential_change",
                                    args=[credential.pk])).content.decode()
    assert "<th>shop</th><td>acme</td>" in page
    assert "<th>scope</th><td>read_products</td>" in page
    assert "SECRET" not in page.replace("…", "")  # (token tails are 4 characters: "CRET")
