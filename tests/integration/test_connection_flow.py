"""Connection parameters, metadata and several accounts through the flow, the refresh engine,
the revocation and the API session, against stubbed providers (the live provider's tenants:
test_connection_params_e2e.py)."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection
from django.http import QueryDict
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alloy_oauth import authorization, connection_params, credential_store, headless, protocol
from alloy_oauth.models import AuthorizationRequest, Connector, Credential
from alloy_oauth.refresh.batch import refresh_batch

from tests.support.migrations import at_migration, migrate_to_latest, old_connector
from tests.support.tickets import authorize_url

pytestmark = pytest.mark.django_db

SHOP_AUTH = "https://{shop}.myshopify.example/admin/oauth/authorize"
SHOP_TOKEN = "https://{shop}.myshopify.example/admin/oauth/access_token"
SHOP_REVOKE = "https://{shop}.myshopify.example/admin/oauth/revoke"
ACME_TOKEN = "https://acme.myshopify.example/admin/oauth/access_token"
GLOBEX_TOKEN = "https://globex.myshopify.example/admin/oauth/access_token"


@pytest.fixture
def shop(make_connector) -> Connector:
    return make_connector(
        name="Shop", slug="shop", auth_url=SHOP_AUTH, token_url=SHOP_TOKEN,
        revocation_url=SHOP_REVOKE, api_base_url="https://{shop}.myshopify.example/admin/api",
        connection_params=[{"name": "shop", "label": "Shop name", "help": "acme, for acme.…",
                            "pattern": "[a-z0-9][a-z0-9-]*"}],
        metadata_fields={"team_id": "team.id", "user_id": "authed_user.id"},
        callback_params=["realmId"], account_label="{shop}",
    )


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice")


@pytest.fixture
def browser(client, user) -> Client:
    client.force_login(user)
    return client


def token_body(**extra):
    return {"access_token": "at-1", "token_type": "bearer", "expires_in": 3600,
            "refresh_token": "rt-1", "team": {"id": "T1"}, **extra}


def connect(browser: Client, responses, token_url: str = ACME_TOKEN, *, body=None,
            realm: str = "9130", **query: str) -> Credential:
    """Start with the connect button's URL, come back with ``code``, ``state`` and ``realmId``."""
    responses.post(token_url, json=body or token_body(authed_user={"id": "U1"}))
    response = browser.get(authorize_url(browser, "shop", **query))
    assert response.status_code == 302, response.content[:500]
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    answer = browser.get(reverse("alloy_oauth:callback"),
                         {"state": state, "code": "the-code", "realmId": realm})
    assert answer.status_code == 303, answer.content[:500]
    return Credential.objects.get(pk=AuthorizationRequest.objects.get(
        state_hash=protocol.hash_state(state)).connector.credentials.order_by("-updated_at")
        .values_list("pk", flat=True)[0])


class TestAuthorize:
    def test_the_values_make_the_provider_urls(self, browser, shop, responses):
        response = browser.get(authorize_url(browser, "shop", shop="acme"))
        assert response.status_code == 302
        assert response["Location"].startswith(
            "https://acme.myshopify.example/admin/oauth/authorize?")
        pending = AuthorizationRequest.objects.get()
        assert pending.connection_config == {"shop": "acme"}
        # The code is exchanged at that shop's token endpoint.
        responses.post(ACME_TOKEN, json=token_body())
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        browser.get(reverse("alloy_oauth:callback"), {"state": state, "code": "c"})
        assert [call.request.url for call in responses.calls] == [ACME_TOKEN]
        assert Credential.objects.get().connection_config == {"shop": "acme"}

    def test_a_form_asks_for_missing_values(self, browser, shop):
        response = browser.get(authorize_url(browser, "shop", next="/settings/"))
        assert response.status_code == 200
        assert response.templates[0].name == "alloy_oauth/authorize_confirm.html"
        body = response.content.decode()
        assert 'name="shop"' in body and "Shop name" in body and "acme, for acme.…" in body
        assert 'role="alert"' not in body  # (no error: nothing was typed yet)
        assert 'name="next" value="/settings/"' in body and 'name="ticket"' not in body
        assert not AuthorizationRequest.objects.exists()
        answer = browser.post(reverse("alloy_oauth:authorize", args=["shop"]),
                              {"next": "/settings/", "shop": "acme"})
        assert answer.status_code == 303
        assert answer["Location"].startswith("https://acme.myshopify.example/")
        assert AuthorizationRequest.objects.get().next_url == "/settings/"

    @pytest.mark.parametrize("value", ["127.0.0.1", "evil.com/x?", "a@evil.com", "ACME", "",
                                       '"><script>alert(1)</script>', "x" * 300])
    def test_a_bad_value_is_asked_again(self, browser, shop, value):
        response = browser.get(authorize_url(browser, "shop", shop=value))
        assert response.status_code == 400 if value else 200
        body = response.content.decode()
        assert "<script>alert" not in body
        if value:
            assert "Shop name is not in the expected form." in body or "is not valid" in body
        assert not AuthorizationRequest.objects.exists()
        answer = browser.post(reverse("alloy_oauth:authorize", args=["shop"]), {"shop": value})
        assert answer.status_code == 400
        assert not AuthorizationRequest.objects.exists()

    def test_a_repeated_value_is_refused(self, browser, shop):
        url = reverse("alloy_oauth:authorize", args=["shop"]) + "?shop=acme&shop=evil"
        assert browser.get(url).status_code == 400
        assert not AuthorizationRequest.objects.exists()

    def test_a_plain_link_confirms_with_the_value_shown(self, browser, shop):
        url = reverse("alloy_oauth:authorize", args=["shop"]) + "?shop=acme"
        page = browser.get(url)
        assert page.status_code == 200 and 'value="acme"' in page.content.decode()
        assert not AuthorizationRequest.objects.exists()

    def test_a_changed_template_fails_cleanly_at_the_callback(self, browser, shop, responses):
        response = browser.get(authorize_url(browser, "shop", shop="acme"))
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        shop.connection_params = [{"name": "shop", "label": "Shop", "choices": ["globex"]}]
        shop.save()
        answer = browser.get(reverse("alloy_oauth:callback"), {"state": state, "code": "c"})
        assert answer.status_code == 400 and answer.context["reason"] == "configuration"
        assert not responses.calls and not Credential.objects.exists()


class TestMetadata:
    def test_kept_at_connect(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme")
        assert credential.metadata == {"team_id": "T1", "user_id": "U1", "realmId": "9130"}
        assert credential.token_response["authed_user"] == {"id": "U1"}
        assert str(credential) == "Shop — alice (acme)"

    def test_a_repeated_or_oversized_callback_parameter_is_not_kept(self, browser, shop,
                                                                    responses):
        responses.post(ACME_TOKEN, json=token_body())
        response = browser.get(authorize_url(browser, "shop", shop="acme"))
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        query = urlencode([("state", state), ("code", "c"), ("realmId", "1"), ("realmId", "2")])
        assert browser.get(f"/oauth/callback/?{query}").status_code == 303
        assert Credential.objects.get().metadata == {"team_id": "T1"}

    def test_a_refresh_keeps_what_only_the_code_exchange_sent(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme", body=token_body(
            authed_user={"id": "U1"}, id_token="id-token-from-the-exchange", bot="b1"))
        responses.replace(responses.POST, ACME_TOKEN, json={
            "access_token": "at-2", "token_type": "bearer", "expires_in": 3600,
            "refresh_token": "rt-2", "team": {"id": "T2"}, "bot": "b2"})
        assert credential.refresh(force=True).result == "refreshed"
        assert credential.token_response["authed_user"] == {"id": "U1"}
        assert credential.token_response["id_token"] == "id-token-from-the-exchange"
        assert credential.token_response["bot"] == "b2"  # (the refresh's values win)
        assert credential.metadata == {"team_id": "T2", "user_id": "U1", "realmId": "9130"}
        assert responses.calls[-1].request.url == ACME_TOKEN  # this shop's endpoint

    def test_a_batch_refresh_too(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme")
        Credential.objects.filter(pk=credential.pk).update(next_refresh_at=timezone.now())
        responses.replace(responses.POST, ACME_TOKEN, json={"access_token": "at-2",
                                                            "expires_in": 3600})
        assert refresh_batch([credential.pk])["refreshed"] == 1
        credential.refresh_from_db()
        assert credential.access_token == "at-2" and credential.refresh_token == "rt-1"
        assert credential.metadata == {"team_id": "T1", "user_id": "U1", "realmId": "9130"}
        assert credential.token_response["authed_user"] == {"id": "U1"}

    def test_x_refresh_token_expires_in(self, browser, shop, responses):
        """Intuit's spelling of the refresh token's lifetime (100 days)."""
        credential = connect(browser, responses, shop="acme", body=token_body(
            x_refresh_token_expires_in=8640000))
        assert abs(credential.refresh_token_expires_at
                   - (timezone.now() + timedelta(days=100))) < timedelta(minutes=1)

    def test_a_connector_without_parameters_keeps_exchange_only_fields(
            self, browser, connector, responses):
        """The defect of issue 13: a refresh replaced the token response."""
        from tests.support.example_provider import TOKEN_URL

        responses.post(TOKEN_URL, json={**token_body(), "authed_user": {"id": "U9"}})
        response = browser.get(authorize_url(browser, "example"))
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        browser.get(reverse("alloy_oauth:callback"), {"state": state, "code": "c"})
        responses.replace(responses.POST, TOKEN_URL, json={"access_token": "at-2"})
        credential = Credential.objects.get()
        credential.refresh(force=True)
        assert credential.token_response["authed_user"] == {"id": "U9"}


class TestRefreshAndRevocation:
    def test_a_stored_value_that_no_longer_fits_stops_the_refresh(self, browser, shop,
                                                                  responses):
        credential = connect(browser, responses, shop="acme")
        shop.connection_params = [{"name": "shop", "label": "Shop", "choices": ["globex"]}]
        shop.save()
        calls = len(responses.calls)
        outcome = credential.refresh(force=True)
        assert outcome.result == "failed" and len(responses.calls) == calls
        assert credential.status == Credential.Status.ERROR
        assert "Choose one of the values offered for Shop." in credential.last_error

    def test_revocation_at_the_accounts_own_endpoint(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme")
        responses.post("https://acme.myshopify.example/admin/oauth/revoke", body="")
        assert credential.revoke().result == "revoked"
        assert responses.calls[-1].request.url == \
            "https://acme.myshopify.example/admin/oauth/revoke"
        assert credential.connection_config == {"shop": "acme"}  # kept, not secret

    def test_no_revocation_without_a_url(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme")
        Credential.objects.filter(pk=credential.pk).update(connection_config={"shop": "A B"})
        outcome = credential.revoke()
        assert outcome.result == "failed" and "tokens are kept" in outcome.message
        assert credential.access_token == "at-1"


class TestSession:
    def test_the_accounts_own_api(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme")
        responses.get("https://acme.myshopify.example/admin/api/shop.json", json={"ok": 1})
        with credential.session() as api:
            assert api.get("shop.json").json() == {"ok": 1}
            assert api.absolute_url("https://elsewhere.example/x") == \
                "https://elsewhere.example/x"

    def test_metadata_in_the_api_base_url(self, browser, shop, responses):
        shop.api_base_url = "https://{shop}.myshopify.example/v3/company/{metadata.realmId}"
        shop.save()
        credential = connect(browser, responses, shop="acme", realm="../../admin")
        assert "realmId" in credential.metadata  # kept as sent: it is only text...
        with credential.session() as api, pytest.raises(connection_params.ParameterError):
            api.get("items")  # ...and can never leave its path segment
        Credential.objects.filter(pk=credential.pk).update(metadata={"realmId": "9130"})
        credential.refresh_from_db()
        responses.get("https://acme.myshopify.example/v3/company/9130/items", json=[])
        with credential.session() as api:
            assert api.get("items").json() == []


class TestReconnecting:
    def test_reconnecting_keeps_the_values(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme")
        Credential.objects.filter(pk=credential.pk).update(
            status=Credential.Status.REAUTH_REQUIRED)
        response = browser.get(authorize_url(browser, "shop"))
        assert response.status_code == 302  # no form: the stored shop
        assert response["Location"].startswith("https://acme.myshopify.example/")
        again = connect(browser, responses, shop="globex", token_url=GLOBEX_TOKEN)
        assert again.pk == credential.pk  # (one account per owner: it may change shop)
        assert again.connection_config == {"shop": "globex"}

    def test_after_disconnecting_the_form_asks_again(self, browser, shop, responses):
        credential = connect(browser, responses, shop="acme")
        Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.REVOKED)
        assert browser.get(authorize_url(browser, "shop")).status_code == 200


class TestSeveralAccounts:
    @pytest.fixture(autouse=True)
    def several(self, shop):
        shop.allow_multiple_accounts = True
        shop.save()

    def test_one_per_shop(self, browser, shop, responses, user):
        acme = connect(browser, responses, shop="acme")
        globex = connect(browser, responses, GLOBEX_TOKEN, shop="globex")
        assert acme.pk != globex.pk
        assert (acme.account_key, globex.account_key) != ("", "")
        again = connect(browser, responses, shop="acme")
        assert again.pk == acme.pk and Credential.objects.count() == 2
        assert list(Credential.objects.for_owner(user=user).filter(
            connection_config__shop="globex")) == [globex]

    def test_without_a_label_each_connection_is_an_account(self, browser, shop, responses):
        shop.account_label = ""
        shop.save()
        first = connect(browser, responses, shop="acme")
        second = connect(browser, responses, shop="acme")
        assert first.pk != second.pk
        # A Reconnect names its account.
        third = connect(browser, responses, shop="acme", credential=str(first.pk))
        assert third.pk == first.pk and Credential.objects.count() == 2

    def test_a_reconnect_keeps_the_accounts_values(self, browser, shop, responses):
        acme = connect(browser, responses, shop="acme")
        response = browser.get(authorize_url(browser, "shop", shop="globex",
                                             credential=str(acme.pk)))
        assert response["Location"].startswith("https://acme.myshopify.example/")

    def test_a_reconnect_asks_again_for_a_value_that_no_longer_fits(self, browser, shop,
                                                                     responses):
        acme = connect(browser, responses, shop="acme")
        shop.connection_params = [{"name": "shop", "label": "Shop", "choices": ["globex"]}]
        shop.save()
        page = browser.get(authorize_url(browser, "shop", credential=str(acme.pk)))
        assert page.status_code == 200 and '<select name="shop"' in page.content.decode()
        answer = browser.post(reverse("alloy_oauth:authorize", args=["shop"]),
                              {"credential": acme.pk, "shop": "globex"})
        assert answer["Location"].startswith("https://globex.myshopify.example/")

    def test_someone_elses_account_cannot_be_named(self, browser, shop, responses,
                                                   django_user_model):
        other = Credential.objects.create(
            connector=shop, user=django_user_model.objects.create_user("bob"),
            access_token="bobs", connection_config={"shop": "bobs"}, account_key="k")
        for value in (str(other.pk), "abc", "-1", "9" * 30):
            response = browser.get(authorize_url(browser, "shop", credential=value))
            assert response.status_code == 400
            assert response.context["reason"] == "invalid_request"
        assert not AuthorizationRequest.objects.exists()

    def test_the_connections_page(self, browser, shop, responses):
        acme = connect(browser, responses, shop="acme")
        globex = connect(browser, responses, GLOBEX_TOKEN, shop="globex")
        Credential.objects.filter(pk=globex.pk).update(status=Credential.Status.REAUTH_REQUIRED)
        response = browser.get(reverse("alloy_oauth:connections"))
        row = response.context["rows"][0]
        assert row["multiple"] and [a["label"] for a in row["accounts"]] == ["acme", "globex"]
        assert [a["state"] for a in row["accounts"]] == ["connected", "reconnect"]
        body = response.content.decode()
        assert f'data-credential="{acme.pk}"' in body and "Connect another account" in body
        assert f'name="credential" value="{globex.pk}"' in body
        assert f"credential={globex.pk}" in body  # its Reconnect button
        assert body.count('data-alloy-oauth-connect="shop"') == 2

    def test_disconnect_names_the_account(self, browser, shop, responses):
        acme = connect(browser, responses, shop="acme")
        globex = connect(browser, responses, GLOBEX_TOKEN, shop="globex")
        url = reverse("alloy_oauth:disconnect", args=["shop"])
        response = browser.post(url, follow=True)
        assert "Choose which Shop account to disconnect." in response.content.decode()
        responses.post("https://globex.myshopify.example/admin/oauth/revoke", body="")
        response = browser.post(url, {"credential": globex.pk}, follow=True)
        assert "Disconnected from Shop (globex)." in response.content.decode()
        statuses = dict(Credential.objects.values_list("pk", "status"))
        assert statuses == {acme.pk: "active", globex.pk: "revoked"}
        # The disconnected account is not listed; connecting it again revives its row.
        rows = browser.get(reverse("alloy_oauth:connections")).context["rows"]
        assert [a["label"] for a in rows[0]["accounts"]] == ["acme"]
        assert connect(browser, responses, GLOBEX_TOKEN, shop="globex").pk == globex.pk

    def test_an_account_of_someone_else_cannot_be_disconnected(self, browser, shop, responses,
                                                             django_user_model):
        other = Credential.objects.create(
            connector=shop, user=django_user_model.objects.create_user("bob"),
            access_token="bobs", account_key="k")
        response = browser.post(reverse("alloy_oauth:disconnect", args=["shop"]),
                                {"credential": other.pk}, follow=True)
        assert "not one of your connections" in response.content.decode()
        other.refresh_from_db()
        assert other.status == Credential.Status.ACTIVE

    def test_switching_several_accounts_off_keeps_them(self, browser, shop, responses):
        acme = connect(browser, responses, shop="acme")
        connect(browser, responses, GLOBEX_TOKEN, shop="globex")
        shop.allow_multiple_accounts = False
        shop.save()
        assert connect(browser, responses, shop="acme").pk == acme.pk
        assert Credential.objects.count() == 2


class TestHeadlessLinks:
    def test_the_link_fixes_its_values(self, client, shop):
        url = headless.connect_url(shop, "customer-42", params={"shop": "acme"})
        page = client.get(url)
        assert page.status_code == 200
        assert "<strong id=\"alloy-oauth-param-shop\">acme</strong>" in page.content.decode()
        path, _, query = url.partition("?")
        data = {key: values[0] for key, values in parse_qs(query).items()}
        response = client.post(path, {**data, "shop": "evil"})  # (tampered)
        assert response.status_code == 303
        assert response["Location"].startswith("https://acme.myshopify.example/")
        assert AuthorizationRequest.objects.get().external_id == "customer-42"

    def test_a_link_without_values_asks(self, client, shop):
        url = headless.connect_url("shop", "customer-42")
        path, _, query = url.partition("?")
        data = {key: values[0] for key, values in parse_qs(query).items()}
        response = client.post(path, {**data, "shop": "globex"})
        assert response["Location"].startswith("https://globex.myshopify.example/")

    def test_values_are_checked_when_the_link_is_made(self, shop):
        for params in ({"shop": "evil.com/x"}, {"nope": "x"}, {"shop": ""}):
            with pytest.raises(ValueError):
                headless.connect_url(shop, "customer-42", params=params)
        with pytest.raises(ValueError):
            headless.connect_url("no-such", "customer-42", params={"shop": "acme"})


def test_the_connect_button_carries_values(rf, shop, user):
    request = rf.get("/")
    request.user = user
    from django.contrib.sessions.backends.db import SessionStore

    request.session = SessionStore()
    html = Template("{% load alloy_oauth %}{% alloy_oauth_connect_button 'shop' "
                    "params=values credential=7 %}").render(Context(
                        {"request": request, "values": {"shop": "acme", "next": "//evil"}}))
    href = html.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    query = parse_qs(urlsplit(href).query)
    assert query["shop"] == ["acme"] and query["credential"] == ["7"]
    assert "next" not in query  # (a connection parameter cannot be called so)


@pytest.mark.database_server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("several, shops, expected", [
    (False, ("acme", "acme"), 1), (False, ("acme", "globex"), 1),
    (True, ("acme", "acme"), 1), (True, ("acme", "globex"), 2)])
def test_simultaneous_callbacks_make_one_credential_per_account(
        client, user, make_connector, monkeypatch, several, shops, expected):
    """Two authorizations of one end user complete at the same moment, both past the look-up
    of existing credentials before either writes: the unique constraints (with account_key)
    keep one credential per owner, or per account when several are allowed."""
    import responses as responses_lib

    make_connector(slug="shop", auth_url=SHOP_AUTH, token_url=SHOP_TOKEN,
                   connection_params=[{"name": "shop", "label": "Shop", "pattern": "[a-z]+"}],
                   allow_multiple_accounts=several, account_label="{shop}")
    client.force_login(user)
    states = []
    for name in shops:
        response = client.get(authorize_url(client, "shop", shop=name))
        states.append(parse_qs(urlsplit(response["Location"]).query)["state"][0])
    session = client.session
    looked = threading.Barrier(2, timeout=10)
    real_account = credential_store._account

    def account_then_wait_for_the_other(*args, **kwargs):
        found = real_account(*args, **kwargs)
        try:
            looked.wait()  # both have looked (the retry after the conflict passes alone)
        except threading.BrokenBarrierError:
            pass
        return found

    monkeypatch.setattr(credential_store, "_account", account_then_wait_for_the_other)
    outcomes: list[object] = []

    def attempt(state: str) -> None:
        try:
            outcomes.append(credential_store.store_credential(authorization.complete(
                QueryDict(urlencode({"state": state, "code": "c"})), session))[1])
        except Exception as exc:  # noqa: BLE001 - reported below
            outcomes.append(exc)
        finally:
            connection.close()

    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for name in ("acme", "globex"):
            mock.post(f"https://{name}.myshopify.example/admin/oauth/access_token",
                      json={"access_token": f"at-{name}"})
        looked = threading.Barrier(2, timeout=10)
        threads = [threading.Thread(target=attempt, args=(state,)) for state in states]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(map(str, outcomes)) == sorted(
        ["True", "True"] if expected == 2 else ["True", "False"]), outcomes
    assert Credential.objects.count() == expected


class TestConstraints:
    def test_one_credential_per_owner_and_account_key(self, shop, user):
        from django.db import IntegrityError, transaction

        def make(**fields):
            return Credential.objects.create(connector=shop, access_token="t", **fields)

        make(user=user)
        make(user=user, account_key="k1")
        make(external_id="cust-1")
        make(external_id="cust-1", account_key="k1")
        for owner in ({"user": user}, {"external_id": "cust-1"}):
            for key in ("", "k1"):
                with pytest.raises(IntegrityError), transaction.atomic():
                    make(account_key=key, **owner)
        assert Credential.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_one_credential_per_owner(django_user_model):
    """0006: existing credentials get account_key "", so one per owner still holds."""
    from django.db import IntegrityError, transaction

    user = django_user_model.objects.create_user("u")
    with at_migration("0005_events_webhooks_metrics") as old:
        connector = old_connector(old)
        credentials = old.get_model("alloy_oauth", "Credential")
        ids = [credentials.objects.create(connector_id=connector.pk, access_token=f"t{n}",
                                          **owner).pk
               for n, owner in enumerate([{"user_id": user.pk}, {"external_id": "cust-1"}])]
        migrate_to_latest()
    for pk, token in zip(ids, ("t0", "t1")):
        credential = Credential.objects.get(pk=pk)
        assert (credential.access_token, credential.account_key) == (token, "")
        assert (credential.connection_config, credential.metadata) == ({}, {})
    for owner in ({"user": user}, {"external_id": "cust-1"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Credential.objects.create(connector_id=connector.pk, access_token="t", **owner)
    assert Connector.objects.get(pk=connector.pk).connection_params == []
