"""The failure pages in a real browser (headless Chromium) against a live server and the live
django-oauth-toolkit provider: a way back, and "Try again" that works (issue 11)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alloy_oauth.models import AuthorizationRequest, Credential

from tests.support.browser import sign_in_at_provider

pytestmark = pytest.mark.django_db(transaction=True)


def continue_to_the_provider(page) -> None:
    page.click("button:has-text('Continue to Demo provider')")


def test_an_expired_attempt_can_be_tried_again(page, live_server, oauth_provider,
                                               dot_connector, site):
    page.goto(f"{live_server.url}/oauth/demo/authorize/?next=/oauth/connections/")
    continue_to_the_provider(page)
    page.wait_for_url(f"{oauth_provider.login_url}**")
    AuthorizationRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    sign_in_at_provider(page, oauth_provider)
    page.wait_for_url(f"{live_server.url}/oauth/callback/**")
    assert "expired_state" in page.inner_text(".alloy-oauth-reason")
    back = page.locator("a.alloy-oauth-back")
    assert (back.inner_text(), back.get_attribute("href")) == ("Go back", "/oauth/connections/")

    page.click("text=Try again")
    continue_to_the_provider(page)  # (already signed in there: straight back)
    page.wait_for_url(f"{live_server.url}/oauth/connections/")
    assert "Connected" in page.inner_text("tr[data-connector=demo]")
    assert Credential.objects.get().status == Credential.Status.ACTIVE


def test_a_forged_answer_leads_back_only(page, live_server, dot_connector, site):
    page.goto(f"{live_server.url}/oauth/callback/?state=forged&code=x")
    assert "unknown_state" in page.inner_text(".alloy-oauth-reason")
    assert page.locator("text=Try again").count() == 0
    page.click("text=Back to your connections")
    page.wait_for_url(f"{live_server.url}/oauth/connections/")
