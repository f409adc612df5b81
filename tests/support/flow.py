"""What an end user's browser does in the connect flow, for tests that drive a test client."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.test import Client
from django.urls import reverse

from .tickets import authorize_url


def authorize(browser: Client, slug: str = "example", **query: str):
    """What the page's connect button does (its URL carries this browser's start ticket)."""
    return browser.get(authorize_url(browser, slug, **query))


def start(browser: Client, slug: str = "example", **query: str) -> dict[str, str]:
    """Begin an authorization; return the parameters sent to the provider."""
    response = authorize(browser, slug, **query)
    assert response.status_code == 302, response.content[:300]
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}


def callback(browser: Client, **params: str):
    return browser.get(reverse("alloy_oauth:callback"), params)


def open_link(client: Client, url: str, **extra: str):
    """What the end user does with a connect link: open it, then confirm."""
    page = client.get(url)
    assert page.status_code == 200, page.content[:300]
    assert "Continue to" in page.content.decode()
    path, _, query = url.partition("?")
    data = {key: values[0] for key, values in parse_qs(query).items()}
    return client.post(path, {**data, **extra})
