"""Issue 15 item 5: the credential page's own buttons (Refresh now; Revoke and Mark for
reconnection after a confirmation page), each event once, one date format, no internal
fields."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from alloy_oauth.models import Credential, CredentialEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def credential(connector, django_user_model):
    user = django_user_model.objects.create_user("enduser")
    credential = Credential.objects.create(
        connector=connector, user=user, access_token="access-token-XYZ123",
        refresh_token="refresh-token-ABC789", scope="read write",
        expires_at=timezone.now() + timezone.timedelta(hours=1))
    CredentialEvent.objects.create(credential=credential, kind="connected",
                                   detail="Connected the first time.")
    return credential


def page_url(credential) -> str:
    return reverse("admin:alloy_oauth_credential_change", args=[credential.pk])


def action_url(credential, name: str) -> str:
    return reverse("admin:alloy_oauth_credential_action", args=[credential.pk, name])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


class TestButtons:
    def test_the_page_has_them(self, admin_client, credential):
        page = admin_client.get(page_url(credential)).content.decode()
        assert f'<form method="post" action="{action_url(credential, "refresh")}">' in page
        assert f'href="{action_url(credential, "revoke")}"' in page
        assert f'href="{action_url(credential, "reconnect")}"' in page

    def test_not_for_viewers(self, client, credential, django_user_model):
        viewer = django_user_model.objects.create_user("viewer", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_credential"))
        client.force_login(viewer)
        page = client.get(page_url(credential)).content.decode()
        assert "alloy-oauth-actions" not in page
        for name in ("refresh", "revoke", "reconnect"):
            assert client.post(action_url(credential, name), {"confirmed": "yes"}
                               ).status_code == 403
        assert Credential.objects.get().status == "active"

    def test_refresh_now(self, admin_client, credential, responses):
        responses.post(credential.connector.token_url, json={"access_token": "fresh-token"})
        response = admin_client.post(action_url(credential, "refresh"), follow=True)
        assert response.redirect_chain == [(page_url(credential), 302)]
        assert messages_of(response) == ["1 credential(s) refreshed."]
        assert Credential.objects.get().access_token == "fresh-token"

    def test_a_get_does_nothing(self, admin_client, credential, responses):
        response = admin_client.get(action_url(credential, "refresh"))
        assert response.status_code == 302 and not responses.calls

    @pytest.mark.parametrize(("name", "question", "status"), [
        ("revoke", "Revoke this credential?", "revoked"),
        ("reconnect", "Mark this credential for reconnection?", "reauth_required"),
    ])
    def test_asks_first(self, admin_client, credential, name, question, status):
        confirm = admin_client.get(action_url(credential, name))
        page = confirm.content.decode()
        assert confirm.status_code == 200 and question in page
        assert 'name="csrfmiddlewaretoken"' in page and 'name="confirmed" value="yes"' in page
        assert f'href="{page_url(credential)}"' in page  # No, go back
        # A POST without the confirmation (another page's form, a double click) asks again.
        assert question in admin_client.post(action_url(credential, name)).content.decode()
        assert Credential.objects.get().status == "active"
        response = admin_client.post(action_url(credential, name), {"confirmed": "yes"},
                                     follow=True)
        assert response.redirect_chain == [(page_url(credential), 302)]
        assert Credential.objects.get().status == status
        assert len(messages_of(response)) == 1

    def test_needs_csrf(self, credential, django_user_model):
        from django.test import Client

        browser = Client(enforce_csrf_checks=True)
        browser.force_login(django_user_model.objects.create_superuser("op"))
        assert browser.post(action_url(credential, "revoke"),
                            {"confirmed": "yes"}).status_code == 403
        assert Credential.objects.get().status == "active"

    def test_unknown_action(self, admin_client, credential):
        assert admin_client.post(action_url(credential, "explode")).status_code == 404


class TestThePage:
    def test_each_event_once(self, admin_client, credential):
        page = admin_client.get(page_url(credential)).content.decode()
        assert page.count("Connected the first time.") == 1
        assert page.count(">Connected<") == 1

    def test_one_date_format(self, admin_client, credential, settings):
        credential.connected_at = credential.last_refreshed_at = timezone.now()
        credential.save()
        page = admin_client.get(page_url(credential)).content.decode()
        content = page[page.index('id="content"'):]
        assert re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", content)
        # No other way of writing a date: "Dec. 2, 2026", "2 December", "a.m."
        assert not re.search(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? "
                             r"\d{1,2}\b|a\.m\.|p\.m\.", content)

    def test_no_internal_fields(self, admin_client, credential):
        page = admin_client.get(page_url(credential)).content.decode()
        for label in ("Version:", "version", "lease", "Lease"):
            assert label not in page.split('id="content"')[1], label
