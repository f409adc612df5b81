"""Refresh throughput and sweep cost, measured against a baseline in the same run.

    python bench/refresh_throughput.py              # SQLite, and PostgreSQL when reachable
    python bench/refresh_throughput.py --refreshes 2000 --sweep-rows 1000000

1. Refreshes per second through the whole engine (lease, decrypt, HTTP, encrypt, write)
   versus a bare ``requests.Session().post`` loop to the same local token endpoint, a stub
   that answers after a set latency; the ratio, and the SQL statements of one refresh.
   Beside them, the *floor*: the same post with the database work no refresh engine can
   skip (take a lease, durably; read the row; write the new tokens, encrypted, durably) in
   hand-written SQL, with no ORM: the best ratio any engine could reach on this machine
   and database. Then the same comparison against a real provider, django-oauth-toolkit on
   127.0.0.1 with rotating refresh tokens (``--provider-refreshes``, 0 to skip).
2. (PostgreSQL) The sweep: time to select the due credentials and to enqueue them, for
   several table sizes and due counts: its cost should follow the due count, not the table.

Each database runs in a child process with its own throw-away database (never an existing
one). PostgreSQL is found through BENCH_POSTGRES_URL (default: the local server).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from throwaway_db import throwaway_database

REPO_DIR = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/")


class TokenEndpoint(BaseHTTPRequestHandler):
    """Answers every POST like a provider that rotates refresh tokens, after ``latency``
    seconds of "provider time"."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK
    latency = 0.0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.latency:
            time.sleep(self.latency)
        body = json.dumps({
            "access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
            "expires_in": 3600, "refresh_token": secrets.token_urlsafe(32),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def token_endpoint(latency_ms: float = 0) -> Iterator[str]:
    """The endpoint in a process of its own, as a provider is: in the measuring process its
    thread would compete for the GIL with what is measured. (Spawned: this process has
    database connections and threads that a fork would copy.)"""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=serve_tokens, args=(latency_ms, child), daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{parent.recv()}/token"
    finally:
        server.terminate()
        server.join()


def serve_tokens(latency_ms: float, port_to) -> None:
    handler = type("Endpoint", (TokenEndpoint,), {"latency": latency_ms / 1000})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port_to.send(server.server_address[1])
    server.serve_forever()


# --- child process: one database -----------------------------------------------------------


def child(database_url: str, refreshes: int, rounds: int, latencies: list[float],
          provider_refreshes: int, sweep_rows: list[int], sweep_due: list[int]) -> dict:
    with throwaway_database(database_url) as connection:
        report = {"database": connection.vendor, "refresh": [
            measure_refresh(refreshes, rounds, latency) for latency in latencies
        ]}
        if provider_refreshes:
            report["provider"] = measure_against_provider(provider_refreshes, rounds)
        if connection.vendor == "postgresql" and sweep_rows:
            report["sweep"] = measure_sweep(sweep_rows, sweep_due)
        return report


def measure_refresh(refreshes: int, rounds: int, latency_ms: float) -> dict:
    with token_endpoint(latency_ms) as url:
        return measure_refresh_at(url, refreshes, rounds, latency_ms)


def measure_refresh_at(url: str, refreshes: int, rounds: int, latency_ms: float) -> dict:
    import requests

    from alloy_oauth.models import Connector, Credential

    Credential.objects.all().delete()
    Connector.objects.all().delete()
    connector = Connector.objects.create(
        name="Bench", slug="bench", auth_url=url, token_url=url, client_id="bench-client",
        client_secret="bench-secret")
    credentials, floor_credentials = (
        [Credential.objects.create(connector=connector, external_id=f"{owner}-{i}",
                                   access_token="a" * 40, refresh_token="r" * 40)
         for i in range(refreshes)]
        for owner in ("user", "floor")  # the floor writes its own rows
    )
    body = {"grant_type": "refresh_token", "refresh_token": "r" * 40}
    session = requests.Session()

    def post() -> dict:
        return session.post(url, data=body, auth=("bench-client", "bench-secret"),
                            headers={"Accept": "application/json"}, timeout=10).json()

    floor_step = floor_refresh(post)
    loops = {"bare": lambda i: post(),
             "engine": lambda i: refreshed(credentials[i].pk),
             "floor": lambda i: floor_step(floor_credentials[i].pk)}
    rates_per_second(loops, refreshes, rounds=1)  # warm up connections and caches
    rates = rates_per_second(loops, refreshes, rounds)
    return {
        "phases_ms": measure_phases(credentials),
        "latency_ms": latency_ms,
        **against_bare(rates),
        "floor_ratio": median_ratio(rates["floor"], rates["bare"]),
        "statements": statements_of_one_refresh(credentials[0].pk),
    }


def rates_per_second(loops: dict[str, Callable[[int], object]], count: int,
                     rounds: int) -> dict[str, list[float]]:
    """Each loop's calls per second, ``count`` calls (numbered from 0) a round; the loops
    take turns round by round, so machine noise hits them alike."""
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, step in loops.items():
            start = time.perf_counter()
            for number in range(count):
                step(number)
            rates[name].append(count / (time.perf_counter() - start))
    return rates


def median_ratio(rates: list[float], baseline: list[float]) -> float:
    """The median of the per-round ratios: each round's pair shared the machine's mood."""
    return statistics.median(rate / base for rate, base in zip(rates, baseline))


def against_bare(rates: dict[str, list[float]]) -> dict[str, float]:
    return {"bare_per_s": statistics.median(rates["bare"]),
            "engine_per_s": statistics.median(rates["engine"]),
            "ratio": median_ratio(rates["engine"], rates["bare"])}


def refreshed(credential_id: int) -> None:
    """One refresh through the engine, forced, which must succeed."""
    from alloy_oauth import refresh
    from alloy_oauth.refresh.single import refresh_one

    outcome = refresh_one(credential_id, force=True)
    assert outcome.result is refresh.Result.REFRESHED, outcome


def statements_of_one_refresh(credential_id: int) -> list[str]:
    """The SQL statements of one refresh, by their first word (SQLite's BEGIN and COMMIT
    included: they are not round trips, but they are not hidden either)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        refreshed(credential_id)
    return [query["sql"].split(" ", 1)[0] for query in queries.captured_queries]


def measure_against_provider(refreshes: int, rounds: int) -> dict:
    """The same comparison against a real token endpoint: django-oauth-toolkit (the test
    project's provider, as the tests run it) on 127.0.0.1, rotating refresh tokens with reuse
    detection. Two users connect through it; the engine refreshes one's credential, the bare
    loop the other's grant, sending each time the refresh token the last answer gave. Most
    of the provider's time is checking the client secret (hashed as Django hashes passwords),
    so this shows what the engine's cost is next to a real provider's, and that every
    refresh was a clean rotation (checked in the provider's database), rather than the
    engine's own overhead, which the stub shows."""
    from urllib.parse import quote

    import requests
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings

    from alloy_oauth.models import Connector, Credential

    from tests.support.provider_server import ProviderServer

    with tempfile.TemporaryDirectory() as workdir:
        provider = ProviderServer(Path(workdir))
        try:
            provider.start()
            Connector.objects.create(
                name="Provider", slug="provider", auth_url=provider.auth_url,
                token_url=provider.token_url, client_id=provider.client_id,
                client_secret=provider.client_secret, scope="read",
                validated_at=datetime.now(dt_timezone.utc))  # live: end users may connect
            engines, bares = (
                get_user_model().objects.create_user(f"{name}-{secrets.token_hex(4)}")
                for name in ("engine", "bare"))
            with override_settings(ALLOY_OAUTH={"CALLBACK_BASE_URL": "http://127.0.0.1"}):
                for user in (engines, bares):
                    site = Client()
                    site.force_login(user)
                    provider.connect(site, "provider")
            engine_id = Credential.objects.get(user=engines).pk
            body = {"grant_type": "refresh_token",
                    "refresh_token": Credential.objects.get(user=bares).refresh_token}
            session = requests.Session()
            # RFC 6749 §2.3.1: the client id and secret are form-encoded inside Basic auth.
            auth = (quote(provider.client_id, safe=""), quote(provider.client_secret, safe=""))

            def bare(number: int) -> None:
                answer = session.post(provider.token_url, data=body, auth=auth,
                                      headers={"Accept": "application/json"}, timeout=30)
                body["refresh_token"] = answer.json()["refresh_token"]

            rates = rates_per_second({"bare": bare, "engine": lambda i: refreshed(engine_id)},
                                     refreshes, rounds)
            statements = statements_of_one_refresh(engine_id)
            families = list(provider.stats()["families"].values())
            # Every refresh was a rotation (one refresh token more; the engine's family also
            # has the counted one), and none was refused as a reuse (one valid token each).
            rotations = rounds * refreshes
            assert sorted(f["issued"] for f in families) == [1 + rotations, 2 + rotations], families
            assert all(f["valid"] == 1 for f in families), families
        finally:
            provider.stop()
    return {**against_bare(rates), "statements": statements}


def floor_refresh(post):
    """One refresh's unavoidable work, in hand-written SQL with autocommit: a conditional
    UPDATE takes the lease (committed before the request, so other processes see it), a
    SELECT reads the credential and its connector (on PostgreSQL and SQLite the UPDATE
    returns them), ``post()`` is the token request, and a fenced UPDATE stores the tokens and frees the
    lease (committed, so a rotated refresh token is not lost). The refresh token and client
    secret are decrypted and the new tokens encrypted, as they must be. No ORM, no event row."""
    from django.db import connection
    from django.utils import timezone

    from alloy_oauth.models import Connector, Credential

    credential = connection.ops.quote_name(Credential._meta.db_table)
    connector = connection.ops.quote_name(Connector._meta.db_table)
    free = "status = 'active' AND (lease_until IS NULL OR lease_until <= %s)"
    if connection.vendor == "postgresql":  # lease and read in one round trip
        take = (f"UPDATE {credential} SET lease_until = %s, lease_token = %s FROM {connector} "
                f"WHERE {credential}.id = %s AND {connector}.id = {credential}.connector_id "
                f"AND {free} RETURNING *")
        read = None
    elif connection.vendor == "sqlite":  # the same; its RETURNING cannot name a FROM table
        take = (f"UPDATE {credential} SET lease_until = %s, lease_token = %s "
                f"WHERE id = %s AND {free} RETURNING *, (SELECT client_secret FROM "
                f"{connector} WHERE {connector}.id = connector_id) AS client_secret")
        read = None
    else:
        take = (f"UPDATE {credential} SET lease_until = %s, lease_token = %s "
                f"WHERE id = %s AND {free}")
        read = (f"SELECT * FROM {credential} JOIN {connector} "
                f"ON {connector}.id = {credential}.connector_id WHERE {credential}.id = %s")
    write = (f"UPDATE {credential} SET access_token = %s, refresh_token = %s, "
             f"expires_at = %s, lease_until = NULL, lease_token = '', version = version + 1 "
             f"WHERE id = %s AND lease_token = %s")
    adapt = connection.ops.adapt_datetimefield_value
    encrypt = Credential._meta.get_field("access_token").get_db_prep_save
    decrypt = Credential._meta.get_field("access_token").from_db_value

    def refresh(pk: int) -> None:
        now = timezone.now()
        lease = secrets.token_hex(16)
        with connection.cursor() as cursor:
            cursor.execute(take, [adapt(now + timedelta(seconds=30)), lease, pk,
                                  adapt(now)])
            if read:
                assert cursor.rowcount == 1
                cursor.execute(read, [pk])
            row = cursor.fetchone()
            assert row is not None
            columns = [column[0] for column in cursor.description]
            for name in ("refresh_token", "client_secret"):  # what the request needs
                decrypt(row[columns.index(name)], None, connection)
            token = post()
            cursor.execute(write, [encrypt(token["access_token"], connection),
                                   encrypt(token["refresh_token"], connection),
                                   adapt(now + timedelta(seconds=token["expires_in"])),
                                   pk, lease])
            assert cursor.rowcount == 1
    return refresh


def measure_phases(credentials: list) -> dict[str, float]:
    """Where one refresh's time goes: milliseconds per refresh in each step of the engine."""
    from alloy_oauth import protocol
    from alloy_oauth.refresh import leases, records
    from alloy_oauth.refresh.single import refresh_one

    steps = {"take the lease, read credential + connector": (leases, "acquire_one"),
             "token request": (protocol, "refresh_access_token"),
             "write tokens + event": (records, "write_with_events")}
    spent = dict.fromkeys(steps, 0.0)

    def timed(step: str, func):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[step] += time.perf_counter() - start
        return wrapper

    originals = {step: getattr(owner, name) for step, (owner, name) in steps.items()}
    for step, (owner, name) in steps.items():
        setattr(owner, name, timed(step, originals[step]))
    try:
        start = time.perf_counter()
        for credential in credentials:
            refresh_one(credential.pk, force=True)
        total = time.perf_counter() - start
    finally:
        for step, (owner, name) in steps.items():
            setattr(owner, name, originals[step])
    spent["rest"] = total - sum(spent.values())
    return {step: seconds / len(credentials) * 1000 for step, seconds in spent.items()}


def measure_sweep(table_sizes: list[int], due_counts: list[int]) -> list[dict]:
    from django.db import connection
    from django.utils import timezone

    from alloy_oauth import tasks
    from alloy_oauth.models import Connector, Credential
    from alloy_oauth.refresh.sweep import due_credential_ids
    from alloy_oauth.tasks import refresh_credential

    connector = Connector.objects.get(slug="bench")
    # Every column comes from an unsaved model instance, so a new field cannot break the
    # bulk insert; only the owner and the due time vary per row and are generated server-side.
    template = Credential(connector=connector, access_token="x", refresh_token="x",
                          token_response={"access_token": "x"}, status="active",
                          connected_at=timezone.now())
    varying = {"external_id": "'user-' || n",
               "next_refresh_at": "now() + interval '1 hour' + n * interval '1 millisecond'"}
    fields = [f for f in Credential._meta.concrete_fields
              if not f.primary_key and not f.generated]  # the database makes those
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    selects = ", ".join(varying.get(f.name, "%s") for f in fields)
    constants = [f.get_db_prep_save(f.pre_save(template, True), connection)
                 for f in fields if f.name not in varying]
    results = []
    for size in table_sizes:
        Credential.objects.all().delete()
        with connection.cursor() as cursor:
            # Rows far from due, then due rows are marked below.
            cursor.execute(
                f"INSERT INTO alloy_oauth_credential ({columns}) "
                f"SELECT {selects} FROM generate_series(1, %s) AS n",
                [*constants, size],
            )
            cursor.execute("ANALYZE alloy_oauth_credential")
        for due in due_counts:
            with connection.cursor() as cursor:
                cursor.execute("UPDATE alloy_oauth_credential SET next_refresh_at = "
                               "now() + interval '1 hour' WHERE next_refresh_at < now()")
                cursor.execute(
                    "UPDATE alloy_oauth_credential SET next_refresh_at = now() - interval '1 s' "
                    "WHERE id IN (SELECT id FROM alloy_oauth_credential ORDER BY random() "
                    "LIMIT %s)", [due])
            start = time.perf_counter()
            selected = sum(len(batch) for batch in due_credential_ids())
            select_s = time.perf_counter() - start
            assert selected == due, (selected, due)
            plan = Credential.objects.due().explain()
            start = time.perf_counter()
            enqueued = tasks.refresh_due_credentials()["enqueued"]
            sweep_s = time.perf_counter() - start
            with refresh_credential.app.connection_for_write() as conn:
                conn.SimpleQueue(refresh_credential.app.conf.task_default_queue).clear()
            results.append({"rows": size, "due": due, "select_s": select_s,
                            "sweep_s": sweep_s, "enqueued": enqueued,
                            "uses_index": "alloy_oauth_cred_due" in plan})
    return results


# --- parent: run each database, print the report -------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refreshes", type=int, default=300, help="refreshes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", default="0,20",
                        help="the token endpoint's answer time(s), comma-separated")
    parser.add_argument("--provider-refreshes", type=int, default=20,
                        help="refreshes per round against django-oauth-toolkit; 0 to skip")
    parser.add_argument("--sweep-rows", default="100000,1000000",
                        help="table sizes for the sweep (PostgreSQL); empty to skip")
    parser.add_argument("--sweep-due", default="1000,10000")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = [int(v) for v in args.sweep_rows.split(",") if v]
    due = [int(v) for v in args.sweep_due.split(",") if v]
    latencies = [float(v) for v in args.latency_ms.split(",")]
    if args.child:
        print(json.dumps(child(args.child, args.refreshes, args.rounds, latencies,
                               args.provider_refreshes, rows, due)))
        return

    reports, failed = [], False
    databases = args.databases.split(",")
    if "postgres" in databases and not postgres_reachable():
        print(f"postgres: not reachable at {POSTGRES_URL}; measuring without it")
        databases.remove("postgres")
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3",
                "postgres": POSTGRES_URL.rstrip("/") + "/alloy_oauth_bench"}
        for name in databases:
            result = subprocess.run(
                [sys.executable, __file__, "--child", urls[name], "--refreshes",
                 str(args.refreshes), "--rounds", str(args.rounds), "--latency-ms",
                 args.latency_ms, "--provider-refreshes", str(args.provider_refreshes),
                 "--sweep-rows",
                 args.sweep_rows, "--sweep-due", args.sweep_due],
                capture_output=True, text=True, cwd=REPO_DIR,
                env={**os.environ, "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL",
                                                                       "memory://")},
            )
            if result.returncode:
                print(f"{name}: FAILED\n{result.stderr[-3000:]}")
                failed = True
                continue
            reports.append(json.loads(result.stdout.strip().splitlines()[-1]))

    print(f"Refresh throughput ({args.refreshes} refreshes x {args.rounds} rounds, median; "
          "local token endpoint on 127.0.0.1 answering after the given latency)")
    print(f"{'database':<12}{'latency':>8}{'bare loop/s':>13}{'engine/s':>10}{'ratio':>7}"
          f"{'floor':>7}  statements per refresh")
    print("(floor: the same post with a durable lease, a read and a durable write in plain SQL,"
          " nothing else - the best ratio any engine could reach here)")
    for report in reports:
        for line in report["refresh"]:
            print(f"{report['database']:<12}{line['latency_ms']:>6.0f}ms{line['bare_per_s']:>13.0f}"
                  f"{line['engine_per_s']:>10.0f}{line['ratio']:>7.2f}{line['floor_ratio']:>7.2f}"
                  f"  {described(line['statements'])}")
    if any("provider" in report for report in reports):
        print(f"\nAgainst a real token endpoint: django-oauth-toolkit on 127.0.0.1, refresh "
              f"tokens rotating, reuse detection on ({args.provider_refreshes} refreshes x "
              f"{args.rounds} rounds, median)")
        print(f"{'database':<12}{'bare refresh':>13}{'bare loop/s':>13}{'engine/s':>10}"
              f"{'ratio':>7}  statements per refresh")
        for report in reports:
            if line := report.get("provider"):
                print(f"{report['database']:<12}{1000 / line['bare_per_s']:>11.0f}ms"
                      f"{line['bare_per_s']:>13.1f}{line['engine_per_s']:>10.1f}"
                      f"{line['ratio']:>7.2f}  {described(line['statements'])}")
    print("\nOne refresh by step (ms; at the first latency, timers included)")
    for report in reports:
        phases = report["refresh"][0]["phases_ms"]
        print(f"{report['database']:<12}" + ", ".join(f"{step} {ms:.2f}" for step, ms in phases.items()))
    for report in reports:
        if report.get("sweep"):
            print("\nSweep on PostgreSQL: select the due ids, then select and enqueue them "
                  f"(broker: {os.environ.get('CELERY_BROKER_URL', 'memory://')})")
            print(f"{'rows':>10}{'due':>8}{'select s':>10}{'sweep s':>10}{'index':>7}")
            for line in report["sweep"]:
                print(f"{line['rows']:>10}{line['due']:>8}{line['select_s']:>10.3f}"
                      f"{line['sweep_s']:>10.3f}{'yes' if line['uses_index'] else 'NO':>7}")
    if failed:
        sys.exit(1)


def described(statements: list[str]) -> str:
    """``3 (UPDATE, UPDATE, INSERT; and BEGIN, COMMIT)``: transaction control is shown, not
    counted (on SQLite it is no round trip; PostgreSQL's driver sends none here)."""
    control = [sql for sql in statements if sql in ("BEGIN", "COMMIT")]
    counted = [sql for sql in statements if sql not in control]
    return (f"{len(counted)} ({', '.join(counted)}"
            + (f"; and {', '.join(control)})" if control else ")"))


def postgres_reachable() -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(POSTGRES_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 5432), timeout=2).close()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    main()
