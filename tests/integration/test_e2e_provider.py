"""End to end against a live django-oauth-toolkit server on 127.0.0.1 (see provider_server)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from alloy_oauth import protocol
from alloy_oauth.models import AuthorizationRequest, Connector, Credential

from tests.support.tickets import authorize_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dot_connector(oauth_provider) -> Connector:
    return Connector.objects.create(
        validated_at=timezone.now(),  # live: offered to end users
        name="Demo provider",
        slug="demo",
        auth_url=oauth_provider.auth_url,
        token_url=oauth_provider.token_url,
        client_id=oauth_provider.client_id,
        client_secret=oauth_provider.client_secret,
        scope="read,write",
    )


@pytest.fixture
def site_callback(live_server, settings) -> None:
    """For tests that drive our side with Django's test client (host "testserver"): register
    the callback under the live server's address, as a site behind a proxy would."""
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": live_server.url}


@pytest.fixture
def end_user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pw")


def test_connect_through_the_real_provider(live_server, oauth_provider, dot_connector, end_user):
    # A browser with a logged-in session at our site...
    site = Client()
    site.force_login(end_user)
    browser = requests.Session()
    browser.cookies.set(settings.SESSION_COOKIE_NAME,
                        site.cookies[settings.SESSION_COOKIE_NAME].value, domain="127.0.0.1")

    # ...presses "connect",
    answer = browser.get(live_server.url + authorize_url(site, "demo", next="/after/"),
                         allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    provider_url = answer.headers["Location"]
    assert provider_url.startswith(oauth_provider.auth_url + "?")

    # ...signs in at the provider, which (consent skipped) sends the browser back,
    oauth_provider.login(browser)
    back = oauth_provider.consent(browser, provider_url)
    assert back.startswith(f"{live_server.url}/oauth/callback/?")
    assert "code" in parse_qs(urlsplit(back).query)

    # ...and our callback exchanges the code at the provider and sends the browser on.
    final = browser.get(back, allow_redirects=False, timeout=10)
    assert final.status_code == 303, final.text[:1000]
    assert final.headers["Location"] == "/after/"

    credential = Credential.objects.get()
    assert credential.user == end_user
    assert credential.status == Credential.Status.ACTIVE
    assert credential.scope == "read write"
    assert credential.refresh_token
    assert credential.expires_at is not None

    # The token works against the provider's protected API.
    api = oauth_provider.call_api(credential.access_token)
    assert api.status_code == 200
    assert api.json()["username"] == oauth_provider.username
    assert oauth_provider.call_api("not-a-token").status_code == 401

    # Nothing secret is stored in plain text: read the raw rows.
    pending = AuthorizationRequest.objects.get()
    secrets = [credential.access_token, credential.refresh_token, pending.code_verifier,
               oauth_provider.client_secret]
    raw = b""
    for table in ("alloy_oauth_credential", "alloy_oauth_connector",
                  "alloy_oauth_authorizationrequest", "alloy_oauth_credentialevent"):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            for row in cursor.fetchall():
                raw += b"|".join(
                    bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                    for v in row
                )
    for secret in secrets:
        assert secret and secret.encode() not in raw
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM alloy_oauth_credential")
        assert bytes(cursor.fetchone()[0]).startswith(b"gAAAAA")  # a Fernet token


def test_provider_is_strict_about_client_secret_basic(oauth_provider):
    """Why ClientSecretBasic exists: the live provider rejects the raw Basic header that
    requests' HTTPBasicAuth (and requests-oauthlib's default) sends for this secret."""
    data = {"grant_type": "authorization_code", "code": "bogus",
            "redirect_uri": "http://127.0.0.1/oauth/callback/"}
    raw = requests.post(oauth_provider.token_url, data=data, timeout=10,
                        auth=(oauth_provider.client_id, oauth_provider.client_secret))
    assert raw.status_code == 401 and raw.json()["error"] == "invalid_client"

    encoded = requests.post(
        oauth_provider.token_url, data=data, timeout=10,
        auth=protocol.ClientSecretBasic(oauth_provider.client_id, oauth_provider.client_secret),
    )
    # The client was accepted; only the (bogus) code was refused.
    assert encoded.status_code == 400 and encoded.json()["error"] == "invalid_grant"


def test_client_secret_post_against_the_real_provider(
    site_callback, oauth_provider, dot_connector, end_user
):
    dot_connector.client_auth_method = Connector.ClientAuthMethod.CLIENT_SECRET_POST
    dot_connector.save()
    site = Client()
    site.force_login(end_user)
    browser = requests.Session()
    oauth_provider.login(browser)
    provider_url = site.get(authorize_url(site, "demo"))["Location"]
    back = oauth_provider.consent(browser, provider_url)
    query = urlsplit(back).query
    response = site.get(f"/oauth/callback/?{query}")
    assert response.status_code == 303
    assert oauth_provider.call_api(Credential.objects.get().access_token).status_code == 200


def test_wrong_client_secret_shows_a_clear_page(site_callback, oauth_provider, dot_connector,
                                                end_user):
    dot_connector.client_secret = "wrong-secret"
    dot_connector.save()
    site = Client()
    site.force_login(end_user)
    browser = requests.Session()
    oauth_provider.login(browser)
    back = oauth_provider.consent(browser, site.get(authorize_url(site, "demo"))["Location"])
    response = site.get(f"/oauth/callback/?{urlsplit(back).query}")
    assert response.status_code == 400
    assert response.context["reason"] == "token_error"
    assert "invalid_client" in response.content.decode()
    assert not Credential.objects.exists()


def basic_header_value(oauth_provider) -> str:
    request = requests.Request("POST", oauth_provider.token_url).prepare()
    protocol.ClientSecretBasic(oauth_provider.client_id, oauth_provider.client_secret)(request)
    return request.headers["Authorization"].split(" ", 1)[1]


def test_no_secret_in_debug_logs(site_callback, oauth_provider, dot_connector, end_user, caplog,
                                 settings):
    """The whole flow with every logger at DEBUG (and DEBUG on, so SQL is logged too): no
    token, client secret, code or PKCE verifier in any log record."""
    settings.DEBUG = True
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        site = Client()
        site.force_login(end_user)
        browser = requests.Session()
        oauth_provider.login(browser)
        back = oauth_provider.consent(browser, site.get(authorize_url(site, "demo"))["Location"])
        code = parse_qs(urlsplit(back).query)["code"][0]
        assert site.get(f"/oauth/callback/?{urlsplit(back).query}").status_code == 303
        # A failing exchange is logged too: replaying the code is refused by the provider.
        provider_url = site.get(authorize_url(site, "demo"))["Location"]
        state = parse_qs(urlsplit(provider_url).query)["state"][0]
        assert site.get("/oauth/callback/", {"state": state, "code": code}).status_code == 400
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)

    credential = Credential.objects.get()
    verifiers = [p.code_verifier for p in AuthorizationRequest.objects.all()]
    secrets = [credential.access_token, credential.refresh_token, code,
               oauth_provider.client_secret, *verifiers, basic_header_value(oauth_provider)]
    assert len(caplog.records) > 10  # the capture really saw the flow
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in text
