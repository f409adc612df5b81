"""manage.py alloy_oauth_refresh."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from alloy_oauth.models import Credential

from tests.support.example_provider import TOKEN_URL

pytestmark = pytest.mark.django_db


def make(connector, name, due=True, **fields) -> Credential:
    now = timezone.now()
    values = dict(access_token="a", refresh_token=f"rt-{name}",
                  expires_at=now + timedelta(minutes=2),
                  next_refresh_at=now + (timedelta(seconds=-1) if due else timedelta(hours=1)))
    values.update(fields)
    return Credential.objects.create(connector=connector, external_id=name, **values)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("alloy_oauth_refresh", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def by_refresh_token(request):
    """A provider whose answer depends on which credential asks."""
    refresh_token = dict(p.split("=") for p in request.body.split("&"))["refresh_token"]
    if refresh_token == "rt-dead":
        return 400, {}, '{"error": "invalid_grant"}'
    if refresh_token == "rt-down":
        return 503, {}, ""
    return 200, {}, '{"access_token": "new", "expires_in": 3600}'


@pytest.fixture
def provider(responses):
    responses.add_callback(responses.POST, TOKEN_URL, callback=by_refresh_token)
    return responses


def test_due_by_default_with_summary(connector, provider):
    make(connector, "ok")
    make(connector, "later", due=False)
    make(connector, "dead")
    make(connector, "down")
    with pytest.raises(CommandError, match="1 credential"):
        run()
    statuses = dict(Credential.objects.values_list("external_id", "status"))
    assert statuses == {"ok": "active", "later": "active", "dead": "reauth_required",
                        "down": "active"}
    assert len(provider.calls) == 3


def test_summary_line(connector, provider):
    make(connector, "ok")
    make(connector, "dead")
    out, err = run()
    assert out.strip() == "refreshed: 1, skipped: 0, reauth required: 1, failed: 0"
    assert "The provider answered invalid_grant." in err


def test_connector_and_force(connector, make_connector, provider):
    make(connector, "ok", due=False)
    make(make_connector(), "elsewhere")
    out, _ = run("--connector", "example")
    assert out.strip() == "refreshed: 0, skipped: 1, reauth required: 0, failed: 0"
    out, _ = run("--connector", "example", "--force")
    assert out.strip() == "refreshed: 1, skipped: 0, reauth required: 0, failed: 0"
    assert Credential.objects.get(external_id="elsewhere").access_token == "a"


def test_credential_ids(connector, provider):
    one, two = make(connector, "one", due=False), make(connector, "two", due=False)
    make(connector, "three")
    out, _ = run("--credential", str(one.pk), "--credential", str(two.pk), "--force")
    assert out.strip().startswith("refreshed: 2,")
    assert Credential.objects.get(external_id="three").access_token == "a"


def test_dry_run_sends_nothing(connector, provider):
    make(connector, "ok")
    make(connector, "later", due=False)
    out, _ = run("--dry-run")
    assert "Example — ok" in out and "later" not in out
    assert "1 credential(s) selected (dry run; nothing was sent)." in out
    assert len(provider.calls) == 0


@pytest.mark.parametrize("args, message", [
    (["--connector", "nope"], "No connector with slug 'nope'"),
    (["--credential", "999"], "No credential with id 999"),
])
def test_unknown_selection(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_options_are_exclusive(db):
    with pytest.raises(CommandError):
        run("--due", "--connector", "x")
