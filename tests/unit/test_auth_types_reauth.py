"""Entered secrets (API key, Basic, bearer token) that the API refuses: a 401 from the API
base URL's host marks the credential ``reauth_required`` through the engine (event, signal,
Connections page); and what ``get_access_token()`` gives for each authentication type."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from alloy_oauth.exceptions import (
    CredentialError, NoAccessToken, ReauthorizationRequired, TokenRefreshFailed,
)
from alloy_oauth.models import Credential, CredentialEvent
from alloy_oauth.signals import credential_reauth_required

from tests.support.api_server import ApiServer
from tests.support.credentials import stored
from tests.support.example_provider import TOKEN_URL

pytestmark = pytest.mark.django_db

SECRETS = {"access_token": "the-token", "api_key": "the-key", "username": "ann",
           "password": "pa:ss"}
ENTERED = ["api_key", "basic", "bearer"]


@pytest.fixture
def servers():
    """The API (127.0.0.1) and another host (localhost): each answers 401 on /protected
    (nothing is expected there) and 200 elsewhere."""
    with ApiServer() as api, ApiServer(host="localhost") as other:
        yield api, other


@pytest.fixture
def reauth_signals():
    received = []

    def handler(sender, credential, reason, **kwargs):
        received.append((credential.pk, reason))

    credential_reauth_required.connect(handler, weak=False)
    yield received
    credential_reauth_required.disconnect(handler)


@pytest.fixture
def make_credential(make_connector, django_user_model):
    def make(auth_type, api_base_url="https://api.example/v1", user=None, **connector_fields):
        connector = make_connector(auth_type=auth_type, api_base_url=api_base_url,
                                   **connector_fields)
        owner = {"user": user} if user else {"external_id": "someone"}
        return Credential.objects.create(connector=connector, **owner, **SECRETS)
    return make


def reauth_events(credential: Credential) -> list[str]:
    return list(credential.events.filter(kind=CredentialEvent.Kind.REAUTH_REQUIRED)
                .values_list("detail", flat=True))


class TestRefusedSecret:
    @pytest.mark.parametrize("auth_type", ENTERED)
    def test_401_from_the_api_marks_reauth_required(self, make_credential, servers,
                                                    reauth_signals, auth_type):
        api, _ = servers
        credential = make_credential(auth_type, api_base_url=api.url)
        version = credential.version
        response = credential.session().get("protected?page=2")
        assert response.status_code == 401  # the caller still gets the API's answer
        assert len(api.requests) == 1  # no retry
        row = stored(credential)
        assert row.status == Credential.Status.REAUTH_REQUIRED
        assert row.version == version + 1
        expected = (f"The API refused the stored secret (HTTP 401 to GET {api.url}/protected): "
                    f"it must be entered again.")
        assert row.last_error == expected
        assert reauth_events(credential) == [expected]
        assert reauth_signals == [(credential.pk, expected)]
        # The session's credential knows it too: the next request is not sent.
        with pytest.raises(ReauthorizationRequired):
            credential.session().get("protected")
        assert len(api.requests) == 1

    def test_the_reason_never_holds_the_secret_of_a_query_parameter(self, make_credential,
                                                                     servers):
        api, _ = servers
        credential = make_credential("api_key", api_base_url=api.url, token_placement="query",
                                     token_query_param="key")
        assert credential.session().get("protected").status_code == 401
        assert api.requests[0]["query"]["key"] == ["the-key"]  # it was sent, in the query
        row = stored(credential)
        assert row.status == Credential.Status.REAUTH_REQUIRED
        assert "the-key" not in row.last_error and "key=" not in row.last_error
        assert all("the-key" not in detail for detail in reauth_events(credential))

    @pytest.mark.parametrize("auth_type", ENTERED)
    def test_200_changes_nothing(self, make_credential, servers, reauth_signals, auth_type):
        api, _ = servers
        credential = make_credential(auth_type, api_base_url=api.url)
        before = stored(credential)
        assert credential.session().get("anything").status_code == 200
        after = stored(credential)
        assert (after.status, after.version, after.last_error) == (
            Credential.Status.ACTIVE, before.version, "")
        assert not credential.events.exists()
        assert reauth_signals == []

    def test_403_changes_nothing(self, make_credential, responses, reauth_signals):
        responses.get("https://api.example/v1/me", status=403)
        credential = make_credential("api_key")
        assert credential.session().get("me").status_code == 403
        assert stored(credential).status == Credential.Status.ACTIVE
        assert reauth_signals == []

    def test_401_from_another_host_changes_nothing(self, make_credential, servers,
                                                   reauth_signals):
        api, other = servers
        credential = make_credential("api_key", api_base_url=api.url)
        # An absolute URL elsewhere (sent without the secret) ...
        assert credential.session().get(f"{other.url}/protected").status_code == 401
        # ... and a redirect from the API to another host, which never saw the secret.
        response = credential.session().get(f"redirect?to={quote(other.url + '/protected')}")
        assert response.status_code == 401
        assert [r["path"] for r in other.requests] == ["/protected", "/protected"]
        assert "Authorization" not in other.requests[1]["headers"]
        assert stored(credential).status == Credential.Status.ACTIVE
        assert not credential.events.exists()
        assert reauth_signals == []

    def test_a_redirect_on_the_api_host_that_ends_in_401_marks(self, make_credential, servers):
        api, _ = servers
        credential = make_credential("bearer", api_base_url=api.url)
        response = credential.session().get(f"redirect?to={quote(api.url + '/protected')}")
        assert response.status_code == 401
        assert stored(credential).status == Credential.Status.REAUTH_REQUIRED

    def test_a_secret_replaced_meanwhile_is_not_marked(self, make_credential, servers,
                                                       reauth_signals):
        """The 401 answered the old key: the new one, entered since, stays active."""
        api, _ = servers
        credential = make_credential("api_key", api_base_url=api.url)
        session = credential.session()
        Credential.objects.filter(pk=credential.pk).update(version=credential.version + 1)
        assert session.get("protected").status_code == 401
        assert stored(credential).status == Credential.Status.ACTIVE
        assert reauth_signals == []

    def test_the_connections_page_says_reconnect(self, make_credential, servers, client,
                                                 django_user_model):
        api, _ = servers
        alice = django_user_model.objects.create_user("alice")
        credential = make_credential("api_key", api_base_url=api.url, user=alice)
        client.force_login(alice)

        def state() -> str:
            entries = json.loads(client.get("/oauth/connections/status/").content)
            return {entry["credential"]: entry["state"]
                    for entry in entries["connections"]}[credential.pk]

        assert state() == "connected"
        credential.session().get("protected")
        assert state() == "reconnect"
        page = client.get("/oauth/connections/").content.decode()
        assert "Reconnect" in page and "the-key" not in page

    def test_the_admin_shows_the_status(self, make_credential, servers, admin_client):
        api, _ = servers
        credential = make_credential("basic", api_base_url=api.url)
        credential.session().get("protected")
        page = admin_client.get(
            f"/admin/alloy_oauth/credential/{credential.pk}/change/").content.decode()
        assert "Reconnection required" in page
        assert "The API refused the stored secret" in page
        assert "pa:ss" not in page

    def test_oauth2_keeps_refreshing_on_401(self, make_credential, responses):
        """OAuth 2.0: a 401 refreshes and retries, and a refused retry marks nothing."""
        responses.get("https://api.example/v1/me", status=401)
        responses.post(TOKEN_URL, json={"access_token": "new-token", "token_type": "Bearer",
                                        "expires_in": 3600, "refresh_token": "r2"})
        credential = make_credential("oauth2")
        Credential.objects.filter(pk=credential.pk).update(
            refresh_token="r1", expires_at=timezone.now() + timedelta(hours=1))
        credential.refresh_from_db()
        assert credential.session().get("me").status_code == 401
        api_calls = [c for c in responses.calls if c.request.url.startswith("https://api.")]
        assert [c.request.headers["Authorization"] for c in api_calls] == [
            "Bearer the-token", "Bearer new-token"]
        assert stored(credential).status == Credential.Status.ACTIVE


class TestGetAccessToken:
    def test_api_key_gives_the_key(self, make_credential):
        assert make_credential("api_key").get_access_token() == "the-key"

    def test_bearer_gives_the_token(self, make_credential):
        assert make_credential("bearer").get_access_token() == "the-token"

    def test_oauth2_gives_the_access_token(self, make_credential):
        credential = make_credential("oauth2")
        Credential.objects.filter(pk=credential.pk).update(
            expires_at=timezone.now() + timedelta(hours=1))
        credential.refresh_from_db()
        assert credential.get_access_token() == "the-token"

    def test_basic_raises_a_clear_error(self, make_credential):
        credential = make_credential("basic")
        with pytest.raises(NoAccessToken) as raised:
            credential.get_access_token()
        message = str(raised.value)
        assert "credential.session()" in message and "credential.username" in message
        assert str(credential.connector) in message
        assert "ann" not in message.replace("credential", "") and "pa:ss" not in message
        assert raised.value.credential == credential
        # A mistake of the calling code, not a state to reconnect from.
        assert isinstance(raised.value, TypeError)
        assert not isinstance(raised.value, CredentialError)

    def test_basic_raises_in_async_code_too(self, make_credential):
        credential = make_credential("basic")
        with pytest.raises(NoAccessToken):
            async_to_sync(credential.aget_access_token)()

    def test_basic_session_still_sends_the_pair(self, make_credential, servers):
        api, _ = servers
        credential = make_credential("basic", api_base_url=api.url)
        session = credential.session()
        assert session.authorized
        assert session.get("anything").status_code == 200
        assert api.requests[0]["headers"]["Authorization"].startswith("Basic ")
        with pytest.raises(NoAccessToken):
            session.access_token

    @pytest.mark.parametrize("auth_type", ENTERED)
    def test_a_revoked_credential_raises_reauthorization_required(self, make_credential,
                                                                   auth_type):
        credential = make_credential(auth_type)
        credential.revoke()
        with pytest.raises(ReauthorizationRequired):
            credential.session().get("me")
        assert not credential.session().authorized
        if auth_type != "basic":
            with pytest.raises(ReauthorizationRequired):
                credential.get_access_token()

    def test_an_undecryptable_key_raises_token_refresh_failed(self, make_credential, settings):
        credential = make_credential("api_key")
        settings.FERNET_KEYS = ["another key entirely, not the one it was encrypted with"]
        credential = stored(credential)
        with pytest.raises(TokenRefreshFailed):
            credential.get_access_token()
