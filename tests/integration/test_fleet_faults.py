"""The sweep's batches under faults, through the whole pipeline: beat, Redis, the documented
worker command (prefork, no pool flags), PostgreSQL, and a token endpoint that rotates
refresh tokens, revokes a grant whose refresh token is presented twice, answers 500s, 429s
with Retry-After and hangs past the deadline, while a worker process is killed mid-batch.

Nothing may be lost: every credential ends with the newest refresh token its grant was
issued, no refresh token is presented twice, and no credential waits longer than its lease
after the kill. The worker's processes are killed while their requests are held at the
provider (which then does not process them, as a provider does not process a request cut
before it was taken in), not in the few milliseconds between the provider's rotation and the
write of its answer: no client can keep a refresh token it was killed before storing, and a
provider with reuse detection then revokes the grant at the next refresh (docs/refresh.md,
"What a crash can cost").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from alloy_oauth.models import Connector, Credential

from tests.support import REPO_DIR
from tests.support.processes import cross_process_broker, process_env
from tests.support.token_endpoint import CLIENT_ID, CLIENT_SECRET, TokenEndpoint, refresh_token

pytestmark = [pytest.mark.database_server, pytest.mark.django_db(transaction=True),
              pytest.mark.xdist_group("processes")]  # see tests/integration/test_concurrency.py

CREDENTIALS = 300
SETTINGS = {"SWEEP_INTERVAL": 1, "SWEEP_BATCH_SIZE": 25, "REFRESH_CONCURRENCY": 10,
            "HTTP_TIMEOUT": 1, "LEASE_SECONDS": 4, "RETRY_BACKOFF": 1, "RETRY_BACKOFF_MAX": 2}


def children(pid: int) -> list[int]:
    """The pool processes of a prefork worker (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def test_faults_and_killed_worker_processes_lose_nothing(broker, tmp_path):
    endpoint = TokenEndpoint(grants=CREDENTIALS, latency_ms=100, fail_500=0.10, fail_429=0.05,
                             retry_after=1, hang=0.02, hang_seconds=3, seed=12).start()
    connector = Connector.objects.create(
        name="Faulty", slug="faulty", auth_url=endpoint.url, token_url=endpoint.url,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    now = timezone.now()
    Credential.objects.bulk_create([Credential(
        connector=connector, external_id=f"end-user-{grant}", access_token=f"at-{grant}-0",
        refresh_token=refresh_token(grant, 0), expires_at=now + timedelta(minutes=2),
        next_refresh_at=now - timedelta(seconds=1)) for grant in range(CREDENTIALS)])
    grant_of = {pk: int(external_id.rsplit("-", 1)[1]) for pk, external_id in
                Credential.objects.values_list("pk", "external_id")}

    env = process_env(**SETTINGS)
    env["CELERY_BROKER_URL"] = cross_process_broker()
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("worker", "beat")}
    # As docs/deploying.md shows them: a worker (prefork, its default concurrency) and a beat.
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.support.celery_app", "worker",
         "--loglevel=INFO"],
        env=env, cwd=REPO_DIR, stdout=logs["worker"], stderr=subprocess.STDOUT)
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.support.celery_app", "beat",
         "--loglevel=INFO", "--schedule", str(tmp_path / "celerybeat-schedule")],
        env=env, cwd=REPO_DIR, stdout=logs["beat"], stderr=subprocess.STDOUT)
    killed = stuck = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            refreshed = Credential.objects.filter(version__gte=1).count()
            if (killed is None and refreshed >= CREDENTIALS // 4
                    and endpoint.stats()["in_flight"] >= 5):
                # Mid-run, with requests in flight at the provider: the worker's pool
                # processes (the endpoint's only clients), in the middle of their batches.
                # The endpoint holds the requests first, and the answers already on their
                # way are stored, so that the kill does not land in the milliseconds
                # between a rotation and its write (see the module's docstring).
                endpoint.stall(True)
                settled = time.monotonic() + 10
                while time.monotonic() < settled and sum(
                        endpoint.stats(generations=True)["generations"]) != sum(
                        Credential.objects.values_list("version", flat=True)):
                    time.sleep(0.05)
                held = dict(Credential.objects.filter(lease_until__gt=timezone.now())
                            .values_list("pk", "lease_token"))
                killed = children(worker.pid)
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
                endpoint.stall(False)
                look_again_at = time.monotonic() + SETTINGS["LEASE_SECONDS"] + 2
            if killed and stuck is None and time.monotonic() >= look_again_at:
                # Every lease held at the kill (the dead process's among them) has ended.
                stuck = [pk for pk, token in Credential.objects.filter(
                    pk__in=held, lease_until__gt=timezone.now()).values_list("pk", "lease_token")
                    if token == held[pk]]
            if refreshed == CREDENTIALS and stuck is not None:
                break
            time.sleep(0.2)
    finally:
        for process in (beat, worker):
            process.send_signal(signal.SIGTERM)
        for process in (beat, worker):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()
        stats = endpoint.stats(generations=True)
        endpoint.stop()

    worker_log = (tmp_path / "worker.log").read_text()
    assert killed, worker_log[-3000:]
    assert "exited with 'signal 9 (SIGKILL)'" in worker_log  # the pool saw its children die
    assert stats["abandoned"] > 0  # requests were in flight when they died
    rows = {row.pk: row for row in Credential.objects.all()}
    # Every credential was refreshed, and holds the newest refresh token of its grant.
    assert all(row.version >= 1 for row in rows.values()), sorted(
        (pk, row.version, row.last_error) for pk, row in rows.items() if not row.version)[:10]
    for pk, row in rows.items():
        generation = stats["generations"][grant_of[pk]]
        assert row.refresh_token == refresh_token(grant_of[pk], generation), (pk, generation)
        assert row.status == "active"
    # No refresh token was presented twice, no grant was revoked.
    assert (stats["reused"], stats["revoked"], stats["refused"]) == (0, [], 0), stats
    # The faults did happen, and were recovered from.
    assert all(count > 0 for count in stats["faults"].values()), stats["faults"]
    assert sum(row.failure_count for row in rows.values()) == 0  # a success clears them
    # Nobody waited on the dead process's leases longer than a lease.
    assert stuck == [], stuck
    print(json.dumps({"endpoint": {k: stats[k] for k in ("requests", "refreshed", "faults",
                                                         "abandoned", "peak_in_flight")},
                      "killed": killed}))
