"""5,000 generated callback requests (Hypothesis): random, missing, repeated, oversized and
non-UTF-8 state/code/error/iss values, other browser sessions, replays. Never a 5xx, never a
token request unless the state is a live one of that very browser, never a stored credential
(the stubbed token endpoint refuses every code, so even a valid state stores nothing)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, quote, quote_from_bytes, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alloy_oauth import protocol
from alloy_oauth.models import AuthorizationRequest, Credential

from tests.support.example_provider import TOKEN_URL
from tests.support.tickets import authorize_url

POOL = 400  # live states started by the end user's browser


def pool_of_states(client: Client, count: int) -> list[str]:
    return [parse_qs(urlsplit(client.get(authorize_url(client, "example"))["Location"]).query)
            ["state"][0] for _ in range(count)]


def raw(value: str | bytes) -> str:
    return quote_from_bytes(value) if isinstance(value, bytes) else quote(value, safe="")


junk = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),                              # non-UTF-8 once decoded
    st.text(alphabet="ab%&=;+", max_size=20),
    st.just("x" * 5000),                                 # oversized
    st.just("\x00"), st.just(""),
)


@st.composite
def callback_requests(draw):
    """(which browser, [(name, raw value)…], the index of a live state used, or None)"""
    state_kind = draw(st.sampled_from(
        ["live", "live", "replayed", "expired", "other-session", "junk", "missing"]))
    used = draw(st.integers(0, POOL - 1)) if state_kind in ("live", "replayed") else None
    params: list[tuple[str, str]] = []
    if state_kind in ("live", "replayed"):
        params.append(("state", f"@live{used}"))
    elif state_kind in ("expired", "other-session"):
        params.append(("state", f"@{state_kind}"))
    elif state_kind == "junk":
        params.append(("state", raw(draw(junk))))
    for name in ("code", "error", "error_description", "iss"):
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]) if name == "code"
                            else st.sampled_from([0, 0, 0, 1, 2]))):
            params.append((name, raw(draw(st.one_of(junk, st.just("a-code"))))))
    if draw(st.booleans()) and params:
        params.append(draw(st.sampled_from(params)))     # a repeated parameter
    params = draw(st.permutations(params))
    browser = draw(st.sampled_from(["owner", "owner", "owner", "stranger", "anonymous"]))
    return browser, params, used


@pytest.mark.django_db
def test_5000_generated_callbacks(connector, django_user_model, responses, settings):
    settings.ALLOY_OAUTH = {"MAX_PENDING_AUTHORIZATIONS": POOL + 10}
    responses.post(TOKEN_URL, json={"error": "invalid_grant"}, status=400)
    owner = django_user_model.objects.create_user("owner")
    browsers = {"owner": Client(), "stranger": Client(), "anonymous": Client()}
    browsers["owner"].force_login(owner)
    browsers["stranger"].force_login(owner)  # same user, another browser session
    for client in browsers.values():
        client.raise_request_exception = False
    live = pool_of_states(browsers["owner"], POOL)
    expired = pool_of_states(browsers["owner"], 1)[0]
    AuthorizationRequest.objects.filter(
        state_hash=protocol.hash_state(expired)
    ).update(expires_at=timezone.now() - timedelta(seconds=1))
    other_session = pool_of_states(browsers["stranger"], 1)[0]
    consumed: set[tuple[str, int]] = set()
    counts = {"requests": 0, "exchanges": 0, "statuses": {}}

    @hypothesis_settings(max_examples=5000, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(callback_requests())
    def one_request(request):
        browser, params, used = request
        substitutions = {f"@live{i}": state for i, state in enumerate(live)}
        substitutions.update({"@expired": expired, "@other-session": other_session})
        query = "&".join(f"{name}={substitutions.get(value, value)}" for name, value in params)
        calls_before = len(responses.calls)
        response = browsers[browser].get("/oauth/callback/", QUERY_STRING=query)
        counts["requests"] += 1
        counts["statuses"][response.status_code] = counts["statuses"].get(
            response.status_code, 0) + 1
        assert response.status_code < 500, query[:300]
        exchanged = len(responses.calls) - calls_before
        states = [value for name, value in params if name == "state"]
        # The stranger's one state is live for the stranger only.
        own = (("owner", used) if browser == "owner" and used is not None else
               ("stranger", -1) if browser == "stranger" and states == ["@other-session"]
               else None)
        if exchanged:
            counts["exchanges"] += 1
            assert own is not None and own not in consumed, query[:300]
            assert len(states) == 1 and len([n for n, _ in params if n == "code"]) == 1
        if own is not None:
            state = live[used] if own[0] == "owner" else other_session
            row = AuthorizationRequest.objects.get(state_hash=protocol.hash_state(state))
            if row.consumed_at is not None:
                consumed.add(own)
        assert not Credential.objects.exists()

    one_request()
    assert counts["requests"] == 5000
    assert counts["exchanges"] > 0  # the generator does reach the token endpoint
    assert set(counts["statuses"]) <= {400}, counts["statuses"]
