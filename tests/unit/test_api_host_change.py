"""Moving a connector's API base URL to another host (scheme, host and port) moves where
every stored credential's secret is sent: the admin refuses to save it until the operator
ticks a confirmation that names the new host and how many credentials (issue 14)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from alloy_oauth.models import Connector, Credential

from tests.support.connector_page import page_values, press_validate

pytestmark = pytest.mark.django_db

OLD = "https://api.example.com/v1"
NEW_HOST = "https://evil.example.net"


@pytest.fixture
def api_connector(make_connector) -> Connector:
    return make_connector(auth_type="api_key", auth_url="", token_url="", client_id="",
                          client_secret="", api_base_url=OLD)


def add_credentials(connector: Connector, count: int, prefix: str = "owner", **fields) -> None:
    for number in range(count):
        Credential.objects.create(connector=connector, external_id=f"{prefix}-{number}",
                                  api_key=f"key-{number}", **fields)


def save(client, connector: Connector, **changes):
    return client.post(reverse("admin:alloy_oauth_connector_change", args=[connector.pk]),
                       page_values(connector, **changes))


def saved_url(connector: Connector) -> str:
    return Connector.objects.get(pk=connector.pk).api_base_url


class TestRefusedWithoutConfirmation:
    def test_names_the_host_and_the_count(self, admin_client, api_connector):
        add_credentials(api_connector, 3)
        add_credentials(api_connector, 1, "revoked", status=Credential.Status.REVOKED)  # no secret
        response = save(admin_client, api_connector, api_base_url=f"{NEW_HOST}/v1")
        assert response.status_code == 200  # the page again, with the question
        assert saved_url(api_connector) == OLD
        html = response.content.decode()
        assert ("The API base URL now points to another host: https://evil.example.net "
                "instead of https://api.example.com.") in html
        assert "each of the 3 credentials stored for this connector sends its secret" in html
        assert "Yes, send the stored secrets of 3 credentials to https://evil.example.net" in html
        assert ('<input type="checkbox" name="confirm_api_host" '
                'value="https://evil.example.net"') in html
        for number in range(3):
            assert f"key-{number}" not in html

    def test_one_credential_is_said_so(self, admin_client, api_connector):
        add_credentials(api_connector, 1)
        html = save(admin_client, api_connector, api_base_url=f"{NEW_HOST}/v1").content.decode()
        assert "the credential stored for this connector sends its secret" in html
        assert "Yes, send the stored credential&#x27;s secret to https://evil.example.net" in html

    def test_saved_once_ticked(self, admin_client, api_connector):
        add_credentials(api_connector, 2)
        response = save(admin_client, api_connector, api_base_url=f"{NEW_HOST}/v1",
                        confirm_api_host=NEW_HOST)
        assert response.status_code == 302
        assert saved_url(api_connector) == f"{NEW_HOST}/v1"

    def test_a_tick_for_another_host_confirms_nothing(self, admin_client, api_connector):
        """The operator ticked for one host, then typed another before saving."""
        add_credentials(api_connector, 2)
        response = save(admin_client, api_connector, api_base_url="https://other.example.org",
                        confirm_api_host=NEW_HOST)
        assert response.status_code == 200
        assert saved_url(api_connector) == OLD
        html = response.content.decode()
        assert 'value="https://other.example.org"' in html
        assert "checked" not in html.split('name="confirm_api_host"')[1].split(">")[0]

    @pytest.mark.parametrize("new_url", [
        "http://api.example.com/v1",  # another scheme
        "https://api.example.com:8443/v1",  # another port
        "https://API.example.com.evil.net/v1",
    ])
    def test_scheme_and_port_count(self, admin_client, api_connector, new_url, settings):
        settings.DEBUG = True  # (lets the plain http URL through the form's https rule)
        add_credentials(api_connector, 1)
        assert save(admin_client, api_connector, api_base_url=new_url).status_code == 200
        assert saved_url(api_connector) == OLD

    def test_every_type_is_asked(self, admin_client, make_connector):
        """An OAuth 2.0 connector's access tokens go to the API base URL's host too."""
        connector = make_connector(api_base_url=OLD)
        Credential.objects.create(connector=connector, external_id="x", access_token="t")
        response = save(admin_client, connector, api_base_url=f"{NEW_HOST}/v1",
                        client_secret="client-secret-value")
        assert response.status_code == 200
        assert "Yes, send the stored secrets" not in response.content.decode()  # singular
        assert saved_url(connector) == OLD


class TestNoConfirmationNeeded:
    def test_no_credentials(self, admin_client, api_connector):
        add_credentials(api_connector, 2, status=Credential.Status.REVOKED)
        assert save(admin_client, api_connector, api_base_url=f"{NEW_HOST}/v1").status_code == 302
        assert saved_url(api_connector) == f"{NEW_HOST}/v1"

    @pytest.mark.parametrize("new_url", [
        "https://api.example.com/v2",  # only the path
        "https://API.Example.com:443/v1",  # the same host, written otherwise
    ])
    def test_same_host(self, admin_client, api_connector, new_url):
        add_credentials(api_connector, 2)
        assert save(admin_client, api_connector, api_base_url=new_url).status_code == 302
        assert saved_url(api_connector) == new_url

    def test_set_for_the_first_time_or_cleared(self, admin_client, make_connector):
        connector = make_connector(api_base_url="")
        Credential.objects.create(connector=connector, external_id="x", access_token="t")
        assert save(admin_client, connector, api_base_url=OLD).status_code == 302
        assert saved_url(connector) == OLD
        assert save(admin_client, connector, api_base_url="",
                    test_request_path="").status_code == 302
        assert saved_url(connector) == ""

    def test_the_page_shows_no_question_until_needed(self, admin_client, api_connector):
        add_credentials(api_connector, 2)
        html = admin_client.get(reverse("admin:alloy_oauth_connector_change",
                                        args=[api_connector.pk])).content.decode()
        assert '<input type="hidden" name="confirm_api_host"' in html
        assert "Yes, send" not in html


def test_viewers_see_no_question(client, django_user_model, api_connector):
    staff = django_user_model.objects.create_user("viewer", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_connector"))
    client.force_login(staff)
    response = client.get(reverse("admin:alloy_oauth_connector_change", args=[api_connector.pk]))
    assert response.status_code == 200
    assert "confirm_api_host" not in response.content.decode()
    assert "New API host confirmed" not in response.content.decode()


def test_validate_reports_what_save_would_ask(admin_client, api_connector):
    """Validate credential checks what Save would save: it says the new host needs the tick."""
    add_credentials(api_connector, 2)
    report = press_validate(admin_client, api_connector, api_base_url=f"{NEW_HOST}/v1")
    assert report["ok"] is False
    assert report["checks"] == [{
        "name": "Yes, send the stored secrets of 2 credentials to https://evil.example.net",
        "state": "failed", "symbol": report["checks"][0]["symbol"],
        "message": report["checks"][0]["message"]}]
    assert "now points to another host: https://evil.example.net" in (
        report["checks"][0]["message"])
