"""The authentication types in a real browser (headless Chromium) against the live server
and the live provider: an end user enters an API key in the connect popup; the operator's
connector form shows the fields of the chosen type; the operator adds a shared API key and
validates a client credentials connector without a popup.

Screenshots land in the test's temporary directory; with ALLOY_OAUTH_UPDATE_SCREENSHOTS=1
they also replace docs/images/ (``make screenshots``)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alloy_oauth.models import Connector, Credential

from tests.support.browser import log_in, redrawn, save_screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "op@example.com", "operator-pw")


@pytest.fixture
def key_connector(oauth_provider) -> Connector:
    return Connector.objects.create(
        name="Keyed API", slug="keyed", auth_type=Connector.AuthType.API_KEY,
        api_base_url=oauth_provider.base_url + "/provider/api", test_request_path="key/",
        token_header="X-Api-Key", token_template="{api_key}",
        validated_at=timezone.now())  # (live: offered to end users)


def test_end_user_enters_an_api_key_in_the_popup(page, live_server, django_user_model,
                                                 oauth_provider, key_connector, tmp_path):
    sign_in(page, live_server, django_user_model.objects.create_user("alice", password="alice-pw"))
    page.goto(f"{live_server.url}/oauth/connections/")
    page.wait_for_function("window.AlloyOAuth !== undefined")
    with page.expect_popup() as popup_info:
        page.click("a[data-alloy-oauth-connect=keyed]")
    popup = popup_info.value
    popup.wait_for_selector("#id_api_key")
    assert popup.locator("#id_api_key").get_attribute("type") == "password"
    popup.fill("#id_api_key", "not-the-key")
    popup.click("button[type=submit]")
    popup.wait_for_selector(".alloy-oauth-form-error")
    assert "Not stored: the API refused it" in popup.inner_text(".alloy-oauth-form-error")
    assert popup.input_value("#id_api_key") == ""  # never shown back
    assert not Credential.objects.exists()
    save_screenshot(popup, "enter-api-key.png", tmp_path)
    popup.fill("#id_api_key", oauth_provider.api_key)
    with redrawn(page):  # the popup reports back and closes; the page redraws its table
        popup.click("button[type=submit]")
    assert "Connected" in page.inner_text("tr[data-connector=keyed]")
    credential = Credential.objects.get()
    assert credential.api_key == oauth_provider.api_key
    assert credential.session().get("key/").status_code == 200


def visible(page, name: str) -> bool:
    return page.locator(f".form-row.field-{name}").first.is_visible()


def test_connector_form_shows_the_fields_of_the_chosen_type(page, live_server, operator,
                                                            oauth_provider, tmp_path):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/add/")
    assert visible(page, "auth_url") and visible(page, "client_id")
    page.select_option("#id_auth_type", "oauth2_client_credentials")
    assert not visible(page, "auth_url") and not visible(page, "callback_url")
    assert visible(page, "token_url") and visible(page, "client_secret")
    page.select_option("#id_auth_type", "api_key")
    assert not any(visible(page, name) for name in ("token_url", "client_id", "scope",
                                                    "refresh_url"))
    assert visible(page, "api_base_url") and visible(page, "token_template")
    page.select_option("#id_token_placement", "query")
    assert visible(page, "token_query_param") and not visible(page, "token_header")
    page.select_option("#id_token_placement", "header")
    page.fill("#id_name", "Keyed API")
    page.fill("#id_api_base_url", oauth_provider.base_url + "/provider/api")
    page.fill("#id_test_request_path", "key/")
    page.fill("#id_token_header", "X-Api-Key")
    page.fill("#id_token_template", "{password}")  # not a placeholder of API keys
    page.click("input[name=_continue]")
    page.wait_for_selector(".errorlist")
    assert "Unknown placeholder" in page.inner_text(".field-token_template")
    assert not visible(page, "auth_url")  # the type's fields again, after the error
    page.fill("#id_token_template", "{api_key}")
    save_screenshot(page, "connector-form-api-key.png", tmp_path)
    page.click("input[name=_continue]")
    page.wait_for_selector("#alloy-oauth-validate")
    connector = Connector.objects.get()
    assert (connector.auth_type, connector.token_header, connector.auth_url) == (
        "api_key", "X-Api-Key", "")


def test_operator_adds_a_shared_api_key(page, live_server, operator, oauth_provider,
                                        key_connector):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/credential/add/")
    page.select_option("#id_connector", str(key_connector.pk))
    assert visible(page, "api_key") and not visible(page, "password")
    page.fill("#id_external_id", "shared")
    page.fill("#id_api_key", "wrong")
    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    assert "Not stored" in page.content() and not Credential.objects.exists()
    page.fill("#id_api_key", oauth_provider.api_key)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    credential = Credential.objects.get()
    assert credential.api_key == oauth_provider.api_key
    assert oauth_provider.api_key not in page.content()

    # Replacing it, from the credential's page: checked first as well.
    page.goto(f"{live_server.url}/admin/alloy_oauth/credential/{credential.pk}/change/")
    page.click("#alloy-oauth-replace-secret")
    page.fill("#id_api_key", "also-wrong")
    page.click("#alloy-oauth-replace-secret-form input[type=submit]")
    page.wait_for_selector(".errornote")
    assert "HTTP 401" in page.inner_text(".errornote")
    assert page.input_value("#id_api_key") == ""
    page.fill("#id_api_key", oauth_provider.api_key)
    page.click("#alloy-oauth-replace-secret-form input[type=submit]")
    page.wait_for_selector("text=The secret was checked and replaced.")
    credential.refresh_from_db()
    assert credential.version == 1


def test_client_credentials_validated_without_a_popup(page, live_server, operator,
                                                      oauth_provider, tmp_path):
    connector = Connector.objects.create(
        name="Service", slug="service", auth_type=Connector.AuthType.CLIENT_CREDENTIALS,
        token_url=oauth_provider.token_url, client_id=oauth_provider.service_client_id,
        client_secret=oauth_provider.service_client_secret, scope="read",
        api_base_url=oauth_provider.base_url + "/provider/api", test_request_path="me/")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/alloy_oauth/connector/{connector.pk}/change/")
    popups = []
    page.on("popup", lambda popup: popups.append(popup))
    page.click("#alloy-oauth-validate")
    page.wait_for_selector("#alloy-oauth-validate-status.alloy-oauth-ok")  # no reload
    assert not popups
    connector.refresh_from_db()  # (the saved values: validated)
    assert connector.validated_at is not None, connector.validation_error
    result = page.inner_text("#alloy-oauth-validate-result")
    assert "issued a Bearer token" in result and "me/ → 200" in result, result
    save_screenshot(page, "connector-client-credentials-validated.png", tmp_path)
