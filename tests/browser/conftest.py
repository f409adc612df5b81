"""Fixtures of the browser tests: the people and the connector they use."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from alloy_oauth.models import Connector

from tests.support.browser import sign_in


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "op@example.com", "operator-pw")


@pytest.fixture
def end_user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pw")


@pytest.fixture
def dot_connector(oauth_provider) -> Connector:
    """The live provider, with its RFC 7009 revocation endpoint."""
    return Connector.objects.create(
        validated_at=timezone.now(),  # live: offered to end users
        name="Demo provider", slug="demo", auth_url=oauth_provider.auth_url,
        token_url=oauth_provider.token_url, client_id=oauth_provider.client_id,
        client_secret=oauth_provider.client_secret, scope="read",
        revocation_url=oauth_provider.revocation_url,
    )


@pytest.fixture
def connections(page, live_server, end_user, dot_connector):
    """The end user's Connections page, signed in."""
    sign_in(page, live_server, end_user)
    page.goto(f"{live_server.url}/oauth/connections/")
    page.wait_for_function("window.AlloyOAuth !== undefined")
    return page


@pytest.fixture
def site(page, live_server, end_user, settings) -> Client:
    """The end user, signed in to our site both in ``page`` and in a test client that shares
    its session (for connecting through the provider without driving the browser)."""
    settings.ALLOY_OAUTH = {"CALLBACK_BASE_URL": live_server.url}
    return sign_in(page, live_server, end_user)
