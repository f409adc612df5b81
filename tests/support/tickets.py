"""What a page of the site gives this browser to start a flow without the confirmation page
(see ``alloy_oauth.tickets.issue_ticket``), for tests that drive a test client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse


def ticket(client: Any, purpose: str) -> str:
    from alloy_oauth import tickets

    session = client.session
    value = tickets.issue_ticket(session, purpose)
    session.save()
    return value


def logged_in_user_pk(client: Any) -> Any:
    from django.contrib.auth import get_user

    return get_user(type("Request", (), {"session": client.session})()).pk


def authorize_url(client: Any, slug: str, **query: str) -> str:
    """The connect button's URL for this browser's user: straight to the provider."""
    from alloy_oauth.tickets import start_purpose

    query["ticket"] = ticket(client, start_purpose(slug, logged_in_user_pk(client)))
    return reverse("alloy_oauth:authorize", args=[slug]) + "?" + urlencode(query)
