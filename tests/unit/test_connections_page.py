"""The Connections page says what is happening (issue 15 items 8 and 9): its status JSON,
"just now", the account bar, and connectors' logos (``Connector.logo_url``)."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from alloy_oauth import headless
from alloy_oauth.fields import validate_logo_url
from alloy_oauth.models import Credential
from alloy_oauth.templatetags.alloy_oauth import alloy_oauth_ago, alloy_oauth_expiry

from tests.support.example_provider import TOKEN_BODY, TOKEN_URL
from tests.support.flow import callback, open_link, start

pytestmark = pytest.mark.django_db

STATUS_URL = "/oauth/connections/status/"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", first_name="Alice", last_name="Liddell")


@pytest.fixture
def site(client, alice) -> Client:
    client.force_login(alice)
    return client


def connect(connector, **owner) -> Credential:
    return Credential.objects.create(
        account_key=str(Credential.objects.count()), connector=connector,
        access_token="ACCESS-SECRET-VALUE", refresh_token="REFRESH-SECRET-VALUE",
        expires_at=timezone.now() + timedelta(hours=1), last_refreshed_at=timezone.now(), **owner)


class TestStatus:
    def test_the_url_name(self):
        assert reverse("alloy_oauth:connections_status") == STATUS_URL

    def test_needs_login_like_the_page(self, client, connector):
        response = client.get(STATUS_URL)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_states_without_tokens_and_never_stored(self, site, alice, connector, make_connector,
                                                    django_user_model):
        mine = connect(connector, user=alice)
        other = make_connector(slug="other", name="Other")
        connect(other, user=django_user_model.objects.create_user("bob"))  # not alice's
        connect(other, external_id="customer-1")  # a headless end user's
        response = site.get(STATUS_URL)
        assert response.status_code == 200 and response["Content-Type"] == "application/json"
        assert "no-store" in response["Cache-Control"]
        body = response.content.decode()
        for secret in ("ACCESS-SECRET-VALUE", "REFRESH-SECRET-VALUE", "client-secret-value"):
            assert secret not in body
        entries = {entry["connector"]: entry for entry in json.loads(body)["connections"]}
        assert entries["example"]["state"] == "connected"
        assert entries["example"]["credential"] == mine.pk
        assert entries["other"] == {
            "connector": "other", "credential": None, "state": "not_connected", "label": "",
            "expires_at": None, "last_refreshed_at": None, "reconnect_by": None,
            "scopes_missing": []}

    def test_a_status_change_shows(self, site, alice, connector):
        credential = connect(connector, user=alice)
        before = site.get(STATUS_URL).json()
        Credential.objects.filter(pk=credential.pk).update(
            status=Credential.Status.REAUTH_REQUIRED)
        after = site.get(STATUS_URL).json()
        assert before != after and after["connections"][0]["state"] == "reconnect"

    def test_the_page_embeds_the_same_status(self, site, alice, connector):
        connect(connector, user=alice)
        page = site.get("/oauth/connections/").content.decode()
        status = site.get(STATUS_URL).json()
        embedded = page.split('id="alloy-oauth-status" type="application/json">')[1]
        assert json.loads(embedded.split("</script>")[0]) == status
        assert f'data-alloy-oauth-status="{STATUS_URL}" data-alloy-oauth-poll="10000"' in page

    def test_several_accounts(self, site, alice, make_connector):
        shops = make_connector(slug="shops", name="Shops", allow_multiple_accounts=True)
        one, two = connect(shops, user=alice), connect(shops, user=alice)
        entries = site.get(STATUS_URL).json()["connections"]
        assert [(entry["credential"], entry["state"]) for entry in entries] == [
            (None, "connected"), (one.pk, "connected"), (two.pk, "connected")]

    def test_only_get(self, site):
        assert site.post(STATUS_URL).status_code == 405


class TestRelativeTimes:
    def test_just_now_instead_of_zero_minutes(self):
        now = timezone.now()
        assert alloy_oauth_ago(now) == "just now"
        assert alloy_oauth_ago(now - timedelta(seconds=50)) == "just now"
        assert alloy_oauth_ago(now - timedelta(minutes=5, seconds=3)) == "5\xa0minutes ago"
        assert alloy_oauth_ago(now + timedelta(minutes=5, seconds=3)) == "in 5\xa0minutes"
        assert alloy_oauth_ago(None) == ""

    def test_expiry(self):
        now = timezone.now()
        assert alloy_oauth_expiry(now + timedelta(minutes=30, seconds=5)) == \
            "access expires in 30\xa0minutes"
        assert alloy_oauth_expiry(now + timedelta(seconds=20)) == \
            "access expires in less than a minute"
        assert alloy_oauth_expiry(now - timedelta(seconds=20)) == "access expired just now"
        assert alloy_oauth_expiry(now - timedelta(minutes=2, seconds=3)) == \
            "access expired 2\xa0minutes ago"
        assert alloy_oauth_expiry(None) == ""

    def test_translated(self, monkeypatch):
        # The durations come from Django's catalog; the phrases are ours, through gettext.
        with translation.override("de"):
            assert alloy_oauth_ago(timezone.now() - timedelta(minutes=5, seconds=3)) == \
                "5\xa0Minuten ago"
        monkeypatch.setattr("alloy_oauth.templatetags.alloy_oauth._", str.upper)
        assert alloy_oauth_ago(timezone.now()) == "JUST NOW"
        assert alloy_oauth_expiry(timezone.now() + timedelta(seconds=5)) == \
            "ACCESS EXPIRES IN LESS THAN A MINUTE"

    def test_the_page_says_just_now(self, site, alice, connector):
        connect(connector, user=alice)
        row = site.get("/oauth/connections/").content.decode()
        assert "refreshed just now" in row and "0\xa0minutes" not in row
        assert "access expires in 59\xa0minutes" in row


class TestAccountBar:
    def test_name_and_log_out(self, site, connector):
        page = site.get("/oauth/connections/").content.decode()
        assert "Signed in as Alice Liddell" in page
        assert 'action="/accounts/logout/"' in page and "Log out" in page

    def test_without_a_logout_url_only_the_name(self, site, connector, settings):
        settings.ROOT_URLCONF = "tests.support.urls_without_logout"
        page = site.get("/oauth/connections/").content.decode()
        assert "Signed in as Alice Liddell" in page and "Log out" not in page

    def test_log_out_works(self, site, connector):
        response = site.post("/accounts/logout/", {"next": "/oauth/connections/"})
        assert response.status_code == 302
        assert site.get("/oauth/connections/").status_code == 302  # to the login page


class TestLogo:
    @pytest.mark.parametrize("value", [
        "https://example.com/logo.svg", "tests/logo.svg",
    ])
    def test_valid(self, value):
        validate_logo_url(value)

    @pytest.mark.parametrize("value, code", [
        ("http://example.com/logo.svg", "invalid"),
        ("javascript:alert(1)", "invalid"),
        ("data:image/svg+xml,<svg onload=alert(1)>", "invalid"),
        ("/static/tests/logo.svg", "invalid"),
        ("tests/../tests/logo.svg", "invalid"),
        ("tests/./logo.svg", "invalid"),
        ("C:\\logo.svg", "invalid"),
        ("//evil.example/logo.svg", "invalid"),
        ("tests/logo.html", "invalid"),
        ("https://", "invalid"),
        ("tests/missing.svg", "missing"),
    ])
    def test_invalid(self, value, code):
        with pytest.raises(ValidationError) as error:
            validate_logo_url(value)
        assert error.value.code == code

    def test_model_validation(self, connector):
        connector.logo_url = "javascript:alert(1)"
        with pytest.raises(ValidationError) as error:
            connector.full_clean()
        assert "logo_url" in error.value.message_dict

    def test_src(self, connector):
        assert connector.logo_src == ""
        connector.logo_url = "tests/logo.svg"
        assert connector.logo_src == "/static/tests/logo.svg"
        connector.logo_url = "https://cdn.example.com/a.png"
        assert connector.logo_src == "https://cdn.example.com/a.png"

    def test_a_static_file_missing_from_a_manifest_falls_back(self, connector, settings):
        settings.STORAGES = {**settings.STORAGES, "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}
        settings.STATIC_ROOT = "/nonexistent"
        connector.logo_url = "tests/logo.svg"
        assert connector.logo_src == ""

    def render(self, connector) -> str:
        return Template("{% load alloy_oauth %}{% alloy_oauth_logo connector %}").render(
            Context({"connector": connector}))

    def test_an_image_of_fixed_size_and_no_alt(self, connector):
        connector.logo_url = 'https://cdn.example.com/a.png?"><script>'
        html = self.render(connector)
        assert html.startswith('<img class="alloy-oauth-logo" src="https://cdn.example.com/'
                               'a.png?&quot;&gt;&lt;script&gt;" alt="" width="24" height="24"')
        assert "<script>" not in html

    def test_the_initial_without_one(self, connector):
        connector.name = "github"
        html = self.render(connector)
        assert "alloy-oauth-logo-initial" in html and ">G</span>" in html and "<img" not in html

    def test_on_the_page_and_the_button(self, site, connector):
        connector.logo_url = "tests/logo.svg"
        connector.save()
        page = site.get("/oauth/connections/").content.decode()
        row = page.split('data-connector="example"')[1]
        assert row.count('src="/static/tests/logo.svg"') == 2  # the row, and its button

    def test_in_the_admin_form(self, admin_client, connector):
        page = admin_client.get(
            reverse("admin:alloy_oauth_connector_change", args=[connector.pk])).content.decode()
        assert 'name="logo_url"' in page and "alloy_oauth/logos/github.svg" in page
        response = admin_client.post(
            reverse("admin:alloy_oauth_connector_change", args=[connector.pk]),
            {"logo_url": "http://example.com/x.svg"})
        assert "Enter an https URL" in response.content.decode()


class TestConnectedMessage:
    """Where popups are blocked, the page itself goes to the provider and comes back: the
    Connections page then says "Connected to …" (as the popup flow's notice does)."""

    def test_back_on_the_page_it_says_so(self, site, connector, responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        params = start(site, next="/oauth/connections/")
        response = callback(site, state=params["state"], code="c")
        assert response["Location"] == "/oauth/connections/"
        page = site.get("/oauth/connections/").content.decode()
        assert '<li class="success">Connected to Example.</li>' in page

    def test_not_for_a_headless_end_user(self, client, connector, responses):
        responses.post(TOKEN_URL, json=TOKEN_BODY)
        started = open_link(client, headless.connect_url(connector, "c-42", next_url="/shop/"))
        state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
        response = callback(client, state=state, code="c")
        assert response["Location"] == "/shop/"
        assert list(get_messages(response.wsgi_request)) == []
