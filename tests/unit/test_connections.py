"""The end user's side: the Connections page, Disconnect, the connect button, headless links."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth import headless
from alloy_oauth.models import AuthorizationRequest, Credential

from tests.support.example_provider import TOKEN_URL
from tests.support.flow import open_link
from tests.support.tickets import authorize_url, ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


@pytest.fixture
def site(client, alice) -> Client:
    client.force_login(alice)
    return client


def connect_as(user, connector, **fields) -> Credential:
    values = dict(access_token="alice-access-SECRET", refresh_token="alice-refresh-SECRET",
                  expires_at=timezone.now() + timedelta(minutes=50),
                  last_refreshed_at=timezone.now() - timedelta(minutes=3))
    values.update(fields)
    return Credential.objects.create(connector=connector, user=user, **values)


class TestConnectionsPage:
    def test_never_framed_nor_cached(self, site, connector):
        response = site.get(reverse("alloy_oauth:connections"))
        assert response["X-Frame-Options"] == "DENY"
        assert "no-store" in response["Cache-Control"]

    def test_its_forms_send_an_origin_header(self, site, connector):
        """Issue 11: under "no-referrer" browsers send "Origin: null" with the Disconnect
        form, which Django's CSRF check refuses (test_browser_forms.py presses it)."""
        response = site.get(reverse("alloy_oauth:connections"))
        assert response["Referrer-Policy"] == "same-origin"
        body = response.content.decode()
        assert '<meta name="referrer" content="same-origin">' in body
        assert "no-referrer" not in body

    def test_needs_login(self, client, connector):
        response = client.get(reverse("alloy_oauth:connections"))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

    def test_states(self, site, alice, make_connector, django_user_model):
        github = make_connector(name="GitHub", slug="github")
        slack = make_connector(name="Slack", slug="slack")
        make_connector(name="Notion", slug="notion")
        make_connector(name="Hidden", slug="hidden", is_active=False)
        connect_as(alice, github)
        connect_as(alice, slack, status="reauth_required")
        connect_as(django_user_model.objects.create_user("bob"), make_connector(slug="bobs"))
        response = site.get(reverse("alloy_oauth:connections"))
        states = {row["connector"].slug: row["state"] for row in response.context["rows"]}
        assert states == {"github": "connected", "slack": "reconnect", "notion": "not_connected",
                          "bobs": "not_connected"}
        html = response.content.decode()
        assert "access expires in 49" in html and "refreshed 3" in html
        assert "Needs reconnecting" in html and "Hidden" not in html
        assert 'data-alloy-oauth-connect="notion"' in html
        assert "alloy_oauth/connect.js" in html
        assert "SECRET" not in html

    def test_operator_problems_and_disabled_connectors(self, site, alice, make_connector):
        broken = make_connector(slug="broken")
        retired = make_connector(slug="retired", is_active=False)
        connect_as(alice, broken, status="error")
        connect_as(alice, retired)
        response = site.get(reverse("alloy_oauth:connections"))
        states = {row["connector"].slug: row["state"] for row in response.context["rows"]}
        assert states == {"broken": "unavailable", "retired": "unavailable"}
        html = response.content.decode()
        assert "Unavailable for now" in html
        assert 'data-alloy-oauth-connect="retired"' not in html  # cannot connect, may disconnect
        assert reverse("alloy_oauth:disconnect", args=["retired"]) in html

    def test_revoked_counts_as_not_connected(self, site, alice, connector):
        connect_as(alice, connector, status="revoked")
        response = site.get(reverse("alloy_oauth:connections"))
        assert response.context["rows"][0]["state"] == "not_connected"


class TestDisconnect:
    def url(self):
        return reverse("alloy_oauth:disconnect", args=["example"])

    def test_revokes_at_the_provider_and_deletes_the_tokens(self, site, alice, connector,
                                                           responses):
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, body="")
        credential = connect_as(alice, connector)
        response = site.post(self.url(), follow=True)
        assert response.redirect_chain[-1][0] == reverse("alloy_oauth:connections")
        assert "Disconnected from Example." in response.content.decode()
        credential.refresh_from_db()
        assert (credential.status, credential.access_token, credential.refresh_token) == (
            "revoked", "", "")
        assert "token=alice-refresh-SECRET" in responses.calls[0].request.body

    def test_provider_down_keeps_the_connection_and_says_so(self, site, alice, connector,
                                                            responses):
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, status=503, body="")
        credential = connect_as(alice, connector)
        html = site.post(self.url(), follow=True).content.decode()
        assert "could not be disconnected" in html and "tokens are kept" in html
        credential.refresh_from_db()
        assert credential.status == "active" and credential.access_token

    def test_a_hostile_refusal_is_reported_not_a_500(self, site, alice, connector, responses):
        # A NUL in the provider's text cannot be stored in PostgreSQL: it never gets there.
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, status=400,
                       json={"error": "invalid_request", "error_description": "no\u0000pe"})
        credential = connect_as(alice, connector)
        html = site.post(self.url(), follow=True).content.decode()
        assert "invalid_request: no pe" in html and "tokens are kept" in html
        credential.refresh_from_db()
        assert (credential.status, credential.lease_until) == ("active", None)

    @pytest.mark.parametrize("answer", [
        {"status": 404, "body": "<html>Not Found</html>"},  # a mistyped revocation URL
        {"status": 405, "body": ""},
        {"status": 400, "json": {"error": "unsupported_token_type"}},
        {"status": 503, "json": {"error": "invalid_token"}},  # a server error says nothing
        {"status": 200, "json": {"ok": False, "error": "invalid_auth"}},  # Slack's refusal
        {"status": 200, "body": "<html>Sign in</html>", "content_type": "text/html"},
        {"status": 200, "body": "\ufeff <!doctype html><html>Sign in</html>"},
        {"status": 401, "json": {"error": "invalid_grant"}},  # our client was refused
        # A gateway's answer: in doubt, but a revocation rotates nothing, so the lease goes.
        {"status": 504, "body": ""},
    ])
    def test_a_refusal_that_is_not_about_the_token_keeps_it(self, site, alice, connector,
                                                           responses, answer):
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, **answer)
        credential = connect_as(alice, connector)
        html = site.post(self.url(), follow=True).content.decode()
        assert "Disconnected" not in html and "tokens are kept" in html
        credential.refresh_from_db()
        assert (credential.status, credential.lease_until) == ("active", None)
        assert credential.refresh_token != ""

    def test_a_plain_ok_is_a_confirmation(self, site, alice, connector, responses):
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, status=200, body="OK",
                       content_type="text/html")
        credential = connect_as(alice, connector)
        assert "Disconnected from Example." in site.post(self.url(), follow=True).content.decode()
        credential.refresh_from_db()
        assert credential.status == "revoked"

    def test_a_token_the_provider_no_longer_knows_is_deleted(self, site, alice, connector,
                                                             responses):
        connector.revocation_url = "https://provider.example/oauth/revoke"
        connector.save()
        responses.post(connector.revocation_url, status=400, json={"error": "invalid_token"})
        credential = connect_as(alice, connector, status="reauth_required")
        assert "Disconnected from Example." in site.post(self.url(), follow=True).content.decode()
        credential.refresh_from_db()
        assert (credential.status, credential.refresh_token) == ("revoked", "")
        assert "no longer knows the token" in credential.events.first().detail

    def test_needs_post_and_csrf(self, alice, connector):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(alice)
        credential = connect_as(alice, connector)
        assert browser.get(self.url()).status_code == 405
        assert browser.post(self.url()).status_code == 403
        assert Credential.objects.get(pk=credential.pk).status == "active"

    def test_only_the_users_own_credential(self, site, connector, django_user_model):
        bobs = connect_as(django_user_model.objects.create_user("bob"), connector)
        site.post(self.url())
        assert Credential.objects.get(pk=bobs.pk).status == "active"

    def test_next_stays_on_the_site(self, site, alice, connector):
        connect_as(alice, connector)
        assert site.post(self.url(), {"next": "https://evil.example/"})["Location"] == (
            reverse("alloy_oauth:connections"))
        assert site.post(self.url(), {"next": "/settings/"})["Location"] == "/settings/"


def test_connect_button_tag(connector):
    html = Template(
        '{% load alloy_oauth %}{% alloy_oauth_script %}'
        '{% alloy_oauth_connect_button connector %}'
        '{% alloy_oauth_connect_button "example" label="Reconnect" next="/s/?a=1" %}'
    ).render(Context({"connector": connector}))
    assert '<script src="/static/alloy_oauth/connect.js" defer></script>' in html
    assert 'href="/oauth/example/authorize/"' in html and "</span> Connect Example</a>" in html
    assert 'href="/oauth/example/authorize/?next=/s/%3Fa%3D1"' in html
    assert 'data-alloy-oauth-connect="example"' in html and "</span> Reconnect</a>" in html


def test_connect_button_without_user_or_session_on_the_request(connector, rf):
    # A host without AuthenticationMiddleware, or a template rendered for a bare request:
    # no ticket (the person will be asked to confirm), no exception.
    html = Template('{% load alloy_oauth %}{% alloy_oauth_connect_button "example" %}').render(
        Context({"request": rf.get("/")}))
    assert 'href="/oauth/example/authorize/"' in html


def test_connect_button_by_slug_shows_the_name(connector):
    connector.name = "GitHub"
    connector.save()
    html = Template('{% load alloy_oauth %}{% alloy_oauth_connect_button "example" %}').render(
        Context())
    assert "</span> Connect GitHub</a>" in html


@pytest.mark.parametrize("slug", ["missing", "example"])
def test_connect_button_for_no_active_connector_renders_nothing(connector, caplog, slug):
    connector.is_active = False
    connector.save()
    html = Template('{% load alloy_oauth %}{% alloy_oauth_connect_button slug %}').render(
        Context({"slug": slug}))
    assert html.strip() == ""
    assert f"no live connector '{slug}'" in caplog.text


class TestHeadlessLinks:
    def test_connect_an_external_end_user(self, client, connector, responses):
        responses.post(TOKEN_URL, json={"access_token": "at", "refresh_token": "rt"})
        url = headless.connect_url(connector, "customer-42", next_url="/welcome/")
        assert url.startswith("/oauth/example/authorize/?link=")
        response = open_link(client, url)  # not logged in: the link names the end user
        assert response.status_code == 303
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        pending = AuthorizationRequest.objects.get()
        assert (pending.external_id, pending.user, pending.next_url) == (
            "customer-42", None, "/welcome/")
        response = client.get("/oauth/callback/", {"state": state, "code": "c"})
        assert response["Location"] == "/welcome/"
        credential = Credential.objects.for_owner(external_id="customer-42").get()
        assert credential.connector == connector and credential.user is None

    def test_opening_a_link_starts_nothing_until_confirmed(self, client, connector):
        """A link scanner, or another site sending a victim's browser to the link, cannot
        connect whatever account that browser is signed in to at the provider."""
        url = headless.connect_url(connector, "customer-42")
        page = client.get(url)
        assert page.status_code == 200 and page["X-Frame-Options"] == "DENY"
        assert not AuthorizationRequest.objects.exists()
        assert open_link(Client(), url).status_code == 303  # still usable by the end user

    def test_confirming_needs_csrf(self, connector):
        browser = Client(enforce_csrf_checks=True)
        url = headless.connect_url(connector, "customer-42")
        path, _, query = url.partition("?")
        link = parse_qs(query)["link"][0]
        assert browser.post(path, {"link": link}).status_code == 403
        assert not AuthorizationRequest.objects.exists()

    def test_popup_mode(self, client, connector):
        response = open_link(client, headless.connect_url(connector, "customer-42"),
                             popup="1", flow="f1234")
        assert response.status_code == 303
        pending = AuthorizationRequest.objects.get()
        assert pending.popup and pending.flow_id == "f1234"

    def test_absolute_with_callback_base_url(self, connector, settings):
        settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": "https://app.example.com"}
        assert headless.connect_url("example", "c1").startswith(
            "https://app.example.com/oauth/example/authorize/?link=")

    def test_a_link_works_once(self, client, connector):
        url = headless.connect_url(connector, "customer-42")
        assert open_link(client, url).status_code == 303
        response = Client().get(url)
        assert response.status_code == 400
        assert "already been used" in response.content.decode()
        assert AuthorizationRequest.objects.count() == 1

    def test_expired(self, client, connector, settings):
        url = headless.connect_url(connector, "customer-42")
        settings.ALLOY_OAUTH = {"CONNECT_LINK_MAX_AGE": 1}
        import time

        time.sleep(2.1)
        response = client.get(url)
        assert response.status_code == 400 and "expired" in response.content.decode()

    def test_forged_or_for_another_connector(self, client, connector, make_connector):
        make_connector(slug="other")
        link = parse_qs(urlsplit(headless.connect_url(connector, "c1")).query)["link"][0]
        assert client.get("/oauth/other/authorize/", {"link": link}).status_code == 400
        forged = signing.dumps({"c": "example", "e": "victim"}, salt="another-salt")
        assert client.get("/oauth/example/authorize/", {"link": forged}).status_code == 400
        assert client.get("/oauth/example/authorize/", {"link": link[:-2] + "xx"}).status_code == 400
        assert client.post("/oauth/example/authorize/", {"link": forged}).status_code == 400
        assert not AuthorizationRequest.objects.exists()

    def test_next_outside_the_site_is_dropped(self, client, connector):
        open_link(client, headless.connect_url(connector, "c1", next_url="https://evil.example/"))
        assert AuthorizationRequest.objects.get().next_url == ""

    @pytest.mark.parametrize("external_id", ["", "x" * 256])
    def test_external_id_is_checked(self, connector, external_id):
        with pytest.raises(ValueError):
            headless.connect_url(connector, external_id)


class TestCrossSiteStart:
    def test_a_navigation_from_another_site_asks_first(self, site, connector):
        url = reverse("alloy_oauth:authorize", args=["example"])
        page = site.get(url, {"next": "/s/"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert page.status_code == 200 and "You came here from another website" in (
            page.content.decode())
        assert not AuthorizationRequest.objects.exists()
        response = site.post(url, {"next": "/s/"})
        assert response.status_code == 303
        assert AuthorizationRequest.objects.get().next_url == "/s/"

    def test_our_own_pages_go_straight_on(self, site, connector):
        # The connect button's URL carries this browser's start ticket.
        url = authorize_url(site, "example")
        assert site.get(url, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 302

    def test_a_start_without_a_ticket_asks_first(self, site, connector):
        # E.g. another site links to the login page with next=<authorize>: after signing in,
        # the browser arrives same-origin, but with no ticket.
        url = reverse("alloy_oauth:authorize", args=["example"])
        page = site.get(url, headers={"Sec-Fetch-Site": "same-origin"})
        assert page.status_code == 200 and "Continue to Example" in page.content.decode()
        assert "another website" not in page.content.decode()
        assert not AuthorizationRequest.objects.exists()

    def test_a_ticket_counts_only_for_its_browser_and_connector(self, site, connector,
                                                                 make_connector, alice):
        make_connector(slug="other")
        theirs = Client()
        theirs.force_login(alice)
        for url in (authorize_url(theirs, "example"),  # same user, another browser
                    authorize_url(site, "other").replace("/other/", "/example/"),
                    reverse("alloy_oauth:authorize", args=["example"]) + "?ticket=forged"):
            assert site.get(url).status_code == 200  # the confirmation page
        assert not AuthorizationRequest.objects.exists()

    def test_a_ticket_counts_only_for_its_user(self, site, connector, django_user_model):
        # A session planted before a login (signed-cookie sessions keep their data through
        # it) holds someone else's ticket: worthless to whoever is logged in now.
        from alloy_oauth.tickets import start_purpose

        mallory = django_user_model.objects.create_user("mallory")
        url = reverse("alloy_oauth:authorize", args=["example"]) + "?ticket=" + ticket(
            site, start_purpose("example", mallory.pk))
        assert site.get(url).status_code == 200  # the confirmation page
        assert not AuthorizationRequest.objects.exists()

    def test_a_ticket_does_not_excuse_a_cross_site_start(self, site, connector):
        page = site.get(authorize_url(site, "example"), headers={"Sec-Fetch-Site": "cross-site"})
        assert page.status_code == 200 and "another website" in page.content.decode()
        assert "ticket" not in page.content.decode()  # not carried into the form

    def test_the_connect_button_carries_a_ticket_for_a_logged_in_user(self, site, connector):
        html = site.get(reverse("alloy_oauth:connections")).content.decode()
        [href] = re.findall(r'href="(/oauth/example/authorize/[^"]*)"', html)
        assert "ticket=" in href
        assert site.get(href.replace("&amp;", "&")).status_code == 302

    def test_a_bad_flow_id_is_refused(self, site, connector):
        url = reverse("alloy_oauth:authorize", args=["example"])
        assert site.get(url, {"flow": "<script>"}).status_code == 400


def test_popup_failures_report_to_the_opener(site, connector):
    """In a popup, a failure of the authorize step answers with the popup page (so the
    opener learns why), the flow id echoed."""
    url = reverse("alloy_oauth:authorize", args=["example"])
    response = site.get(url, {"popup": "1", "flow": "abc", "next": "/" + "x" * 3000})
    assert response.status_code == 400
    assert response.context["result"] == {
        "source": "alloy_oauth", "connector": "example", "flow": "abc", "status": "error",
        "reason": "invalid_request",
        "message": "This address has a repeated or oversized parameter."}
