"""manage.py alloy_oauth_status: the health summary, its JSON, and its thresholds' exit
status (for cron and monitoring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from alloy_oauth.models import Credential, CredentialEvent

from tests.support import REPO_DIR


def make(connector, name, **fields) -> Credential:
    return Credential.objects.create(connector=connector, external_id=name,
                                     access_token="a-secret", **fields)


@pytest.fixture
def fleet(connector, make_connector):
    """``example``: 2 due (the oldest 5 minutes overdue), 1 not due, 1 reauth, 1 error, 3
    failures in the last hour (and one older); ``quiet``: one healthy credential."""
    now = timezone.now()
    oldest = make(connector, "oldest", next_refresh_at=now - timedelta(minutes=5))
    make(connector, "due", next_refresh_at=now - timedelta(seconds=10))
    make(connector, "later", next_refresh_at=now + timedelta(minutes=5))
    reauth = make(connector, "reauth", status="reauth_required")
    error = make(connector, "error", status="error", next_refresh_at=now - timedelta(hours=1))
    for credential, kind, ago in ((oldest, "refresh_failed", 1), (error, "refresh_failed", 20),
                                  (reauth, "reauth_required", 59), (oldest, "refresh_failed", 61),
                                  (oldest, "refreshed", 2)):
        CredentialEvent.objects.create(credential=credential, kind=kind,
                                       created_at=now - timedelta(minutes=ago))
    quiet = make_connector(slug="quiet", name="Quiet")
    make(quiet, "fine", next_refresh_at=now + timedelta(hours=1))
    return oldest


def status(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("alloy_oauth_status", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_table(fleet):
    out, err = status()
    lines = out.splitlines()
    assert lines[0].split() == ["connector", "active", "reauth_required", "error", "revoked",
                                "due", "oldest", "overdue", "failures", "(1", "h)"]
    example = lines[1].split()
    assert example[:6] == ["example", "3", "1", "1", "0", "2"]
    assert example[6] in ("300", "301") and example[7:] == ["s", "(credential",
                                                            f"{fleet.pk})", "3"]
    assert lines[2].split() == ["quiet", "1", "0", "0", "0", "0", "—", "0"]
    assert err == ""


def test_json(fleet):
    out, _ = status("--json", "--connector", "example")
    report = json.loads(out)
    [example] = report["connectors"]
    assert example["credentials"] == {"active": 3, "reauth_required": 1, "error": 1, "revoked": 0}
    assert (example["due"], example["oldest_overdue_credential"],
            example["failures_last_hour"]) == (2, fleet.pk, 3)
    assert 299 <= example["oldest_overdue_seconds"] <= 301
    assert report["problems"] == []


@pytest.mark.parametrize("option, value, line", [
    ("--max-backlog", "1", "example: 2 due credentials (more than 1)"),
    ("--max-overdue", "60", "seconds the oldest due credential has waited (more than 60)"),
    ("--max-failures", "2", "example: 3 failed refreshes in the last hour (more than 2)"),
    ("--max-reauth", "0", "example: 1 credentials that need reconnecting (more than 0)"),
    ("--max-error", "0", "example: 1 credentials in error (more than 0)"),
])
def test_a_threshold_crossed_fails(fleet, option, value, line):
    err = StringIO()
    with pytest.raises(CommandError, match="1 threshold") as crossed:
        call_command("alloy_oauth_status", option, value, stdout=StringIO(), stderr=err)
    assert crossed.value.returncode == 1
    assert line in err.getvalue() and "quiet" not in err.getvalue()


def test_thresholds_not_crossed(fleet):
    out, err = status("--max-backlog", "2", "--max-overdue", "3600", "--max-failures", "3",
                      "--max-reauth", "1", "--max-error", "1")
    assert err == "" and "example" in out


def test_json_lists_the_problems(fleet):
    out = StringIO()
    with pytest.raises(CommandError, match="2 threshold"):
        call_command("alloy_oauth_status", "--json", "--max-backlog", "0", "--max-error", "0",
                     stdout=out, stderr=StringIO())
    assert json.loads(out.getvalue())["problems"] == [
        "example: 2 due credentials (more than 0)", "example: 1 credentials in error (more than 0)"]


def test_unknown_connector(db):
    with pytest.raises(CommandError, match="No connector with slug nope"):
        status("--connector", "nope")


def test_exit_status_from_the_command_line(tmp_path):
    """What cron sees: 0 when healthy, 1 when a threshold is crossed, with the line on
    standard error."""
    database = tmp_path / "db.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.support.settings",
           "DATABASE_URL": f"sqlite:///{database}"}

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "django", *args], cwd=REPO_DIR, env=env,
                              capture_output=True, text=True, timeout=120)

    assert manage("migrate", "-v", "0").returncode == 0
    assert manage("alloy_oauth_status", "--max-backlog", "0").returncode == 0
    setup = manage("shell", "-c", (
        "from datetime import timedelta; from django.utils import timezone; "
        "from alloy_oauth.models import Connector, Credential; "
        "c = Connector.objects.create(name='X', slug='x', auth_url='https://p.example/a', "
        "token_url='https://p.example/t', client_id='i'); "
        "Credential.objects.create(connector=c, external_id='e', access_token='t', "
        "next_refresh_at=timezone.now() - timedelta(minutes=1))"))
    assert setup.returncode == 0, setup.stderr
    crossed = manage("alloy_oauth_status", "--max-backlog", "0")
    assert crossed.returncode == 1
    assert "x: 1 due credentials (more than 0)" in crossed.stderr
