"""Fleet refresh, end to end: sweep → Redis → the documented Celery worker → a token endpoint.

    python bench/fleet.py                      # 4,500 credentials, endpoint at 200 ms
    python bench/fleet.py --credentials 20000 --timeout 300 --worker-log /tmp/worker.log
    make bench FLEET_ARGS='--credentials 1000'

What runs, all on 127.0.0.1:

- a throw-away PostgreSQL database (made next to BENCH_POSTGRES_URL, default the local
  server, and dropped afterwards; never an existing one), with the test project's tables;
- Redis as the broker (CELERY_BROKER_URL, default redis://127.0.0.1:6379/13), its queue
  purged before and after;
- the test project's worker, exactly as docs/deploying.md shows it:
  ``celery -A testproject worker --loglevel=INFO`` (prefork, its default concurrency: one
  child per core), with DATABASE_URL, CELERY_BROKER_URL, FERNET_KEYS, SECRET_KEY (and
  ALLOY_OAUTH_SWEEP_INTERVAL, and ALLOY_OAUTH_REFRESH_CONCURRENCY with ``--concurrency``)
  in its environment;
- the token endpoint of tests/support/token_endpoint.py in its own process (asyncio, keep-alive,
  ``--latency-ms``), which rotates refresh tokens and counts any presented twice.

``--credentials`` credentials, one grant each at the endpoint, are made due. Then the sweep
task, ``alloy_oauth.tasks.refresh_due_credentials``, is published through the broker by name
with beat's own options (``alloy_oauth.beat.beat_schedule()``), and again every
``--sweep-interval`` seconds until all are refreshed, as beat would. Why not beat itself: it
fires its first sweep one interval after it starts, at a moment this process would have to
read from its log, while publishing the same message at a known instant starts the clock
exactly. The clock runs from the first sweep to the last ``last_refreshed_at`` once every
credential has been refreshed (the database is polled), or until ``--timeout``;
refreshes/s end to end is the number refreshed over that time. Meanwhile, every 0.1 s,
``pg_stat_activity`` gives the database's connections (the bench's own left out) and each
worker process's sockets in /proc its connections to PostgreSQL: the peaks are reported.

Then, with the worker stopped (queue purged, warm shutdown): the endpoint must have seen no
reused refresh token (nor any it refused), and every credential must hold, decrypted through
the ORM, the newest refresh token its grant was issued; otherwise the run exits 1. The
*bare-HTTP limit* is measured next on the same endpoint, for as long as the run took (at
least 3 s, at most 30 s, long enough for a steady rate; or ``--bare-seconds``):
``--bare-processes`` processes × ``--bare-threads`` threads, each posting refresh requests
with its own ``requests.Session()`` and rotating its own grant, no database.

Last, the sweep's cost on Redis: for each count in ``--sweep-due``, that many due
credentials are bulk-inserted and the sweep task's code is called directly (in a child
process, so that a sweep slower than ``--sweep-timeout`` can be stopped; the messages it
enqueued by then give its rate) and timed: selecting the due ids and enqueueing them. The
queue is purged after each.

It prints one table, the machine's load, and whether each target of issue 12 is met (>= 300
refreshes/s at 200 ms, >= 0.5 of the bare-HTTP limit, 0 reused refresh tokens, <= 10
PostgreSQL connections per worker process, 100,000 due credentials enqueued in <= 2 s). A
missed speed target is reported, never an exit code; ``--require-complete`` (CI's smoke
run) also fails the run when not every credential was refreshed before ``--timeout``. Every
process it starts (endpoint, worker, loops) is stopped on the way out, on Ctrl-C or SIGTERM
too; the endpoint and the worker also stop if this process is killed.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from throwaway_db import REPO_DIR, throwaway_database

sys.path.insert(0, str(REPO_DIR))
from tests.support.token_endpoint import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    TokenEndpoint,
    access_token,
    refresh_token,
)

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
#: The bench's own database connections carry this name, so the count leaves them out.
BENCH_APPLICATION = "alloy_oauth_fleet_bench"
TARGETS = {"rate": 300, "ratio": 0.5, "connections_per_process": 10, "sweep_due": 100_000,
           "sweep_seconds": 2.0, "latency_ms": 200}


class Stop(BaseException):
    """SIGTERM: unwind like Ctrl-C, so every process started here is stopped."""


def main() -> None:
    args = parse_arguments()
    for url, what in ((POSTGRES_URL, "PostgreSQL (BENCH_POSTGRES_URL)"),
                      (BROKER_URL, "Redis (CELERY_BROKER_URL)")):
        if not reachable(url):
            sys.exit(f"bench/fleet.py needs {what} at {url}")
    if not BROKER_URL.startswith(("redis://", "rediss://")):
        sys.exit(f"bench/fleet.py measures with Redis as the broker, not {BROKER_URL}")

    def stop(signum: int, frame: Any) -> None:
        raise Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    load_before = os.getloadavg()
    try:
        report, problems = run(args)
    except (KeyboardInterrupt, Stop):
        sys.exit("Interrupted: the processes this bench started are stopped, its database "
                 "dropped.")
    report["load"] = (load_before, os.getloadavg())
    print_report(args, report)
    if problems:
        print("\nFAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--credentials", type=int, default=4500,
                        help="due credentials refreshed end to end (default: ~15 s at 300/s)")
    parser.add_argument("--latency-ms", type=float, default=200,
                        help="the token endpoint's answer time")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds the end-to-end run may last")
    parser.add_argument("--sweep-interval", type=int, default=60,
                        help="ALLOY_OAUTH_SWEEP_INTERVAL (beat's period, messages' expiry)")
    parser.add_argument("--concurrency", type=int,
                        help="ALLOY_OAUTH_REFRESH_CONCURRENCY: requests a batch keeps in flight "
                             "(default: the setting's default)")
    parser.add_argument("--bare-processes", type=int, default=2)
    parser.add_argument("--bare-threads", type=int, default=100, help="threads per process")
    parser.add_argument("--bare-seconds", type=float,
                        help="how long the bare loop runs (default: as long as the run took, "
                             "within 3-30 s)")
    parser.add_argument("--sweep-due", default="10000,100000",
                        help="due credentials enqueued by one timed sweep; empty to skip")
    parser.add_argument("--sweep-timeout", type=float, default=60,
                        help="seconds after which a timed sweep is stopped")
    parser.add_argument("--worker-log", type=Path, help="keep the worker's log in this file")
    parser.add_argument("--require-complete", action="store_true",
                        help="fail unless every credential was refreshed before --timeout")
    return parser.parse_args()


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    bare_grants = args.bare_processes * args.bare_threads
    environment = {
        "CELERY_BROKER_URL": BROKER_URL,
        "FERNET_KEYS": secrets.token_urlsafe(32),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DEBUG": "0",  # as deployed (with DEBUG, Django also keeps every query in memory)
        "ALLOY_OAUTH_SWEEP_INTERVAL": str(args.sweep_interval),
    }
    if args.concurrency:
        environment["ALLOY_OAUTH_REFRESH_CONCURRENCY"] = str(args.concurrency)
    os.environ.update(environment)
    database_url = POSTGRES_URL.rstrip("/") + f"/alloy_oauth_fleet_{os.getpid()}"
    with tempfile.TemporaryDirectory() as workdir, ExitStack() as stack:
        connection = stack.enter_context(
            throwaway_database(database_url, settings="testproject.settings"))
        stack.callback(disconnect_everyone, connection)  # before the database is dropped
        connection.close()  # reconnect under the bench's name
        connection.settings_dict["OPTIONS"]["application_name"] = BENCH_APPLICATION
        from testproject.celery import app

        stack.enter_context(purged(app))
        endpoint = stack.enter_context(
            TokenEndpoint(grants=args.credentials + bare_grants, latency_ms=args.latency_ms))
        connector = seed(endpoint, args.credentials)
        worker_env = {**os.environ, **environment,
                      "DATABASE_URL": same_server(database_url, connection.settings_dict["NAME"])}
        worker = stack.enter_context(
            celery_worker(worker_env, args.worker_log or Path(workdir) / "worker.log"))
        report = measure_fleet(app, connection, worker, connector, args)
        stop_worker(worker, app)  # nothing may move while the result is read
        report.update(verify(endpoint, connector))
        report["bare"] = measure_bare(endpoint.url, range(args.credentials,
                                                          args.credentials + bare_grants),
                                      args.bare_processes,
                                      args.bare_seconds or min(max(3.0, report["elapsed"]), 30.0))
        connector.credentials.all().delete()
        sweep_env = {**worker_env, "ALLOY_OAUTH_LOG_LEVEL": "WARNING"}  # no line per sweep
        report["sweeps"] = [measure_sweep(app, connector, due, sweep_env, args.sweep_timeout)
                            for due in (int(v) for v in args.sweep_due.split(",") if v)]
        report["postgres"] = connection.pg_version
    problems = report.pop("problems")
    if args.require_complete and report["refreshed"] < args.credentials:
        problems.append(f"only {report['refreshed']} of {args.credentials} credentials were "
                        f"refreshed within {args.timeout:.0f} s")
    return report, problems


# --- setting up ---------------------------------------------------------------------------


def seed(endpoint: TokenEndpoint, count: int) -> Any:
    """One connector at the endpoint; ``count`` credentials, all due, credential ``fleet-g``
    holding grant ``g``'s first refresh token."""
    from django.utils import timezone

    from alloy_oauth.models import Connector, Credential

    connector = Connector.objects.create(
        name="Fleet", slug="fleet", auth_url=endpoint.url, token_url=endpoint.url,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    now = timezone.now()
    Credential.objects.bulk_create(
        (Credential(connector=connector, external_id=f"fleet-{grant}",
                    access_token=access_token(grant, 0), refresh_token=refresh_token(grant, 0),
                    expires_at=now + timedelta(minutes=1),
                    next_refresh_at=now - timedelta(seconds=1))
         for grant in range(count)),
        batch_size=1000)
    due = Credential.objects.due().count()
    assert due == count, f"{due} of {count} seeded credentials are due"
    return connector


@contextmanager
def celery_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """``celery -A testproject worker --loglevel=INFO``, in a session of its own (stopped by
    this process, in order) that dies with this process if it is killed."""
    celery = Path(sys.executable).with_name("celery")
    command = [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [*command, "-A", "testproject", "worker", "--loglevel=INFO"],
            cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent)
    worker.log_path = log_path  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log_path.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("The worker did not start:\n" + log_tail(log_path))
            time.sleep(0.2)
        yield worker
    finally:
        stop_worker(worker)


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the bench dies (Linux's PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def stop_worker(worker: subprocess.Popen, app: Any = None) -> None:
    """Empty the queue, then a warm shutdown (refreshes in flight finish); what is left of
    the worker's process group after 30 s is killed. A second call does nothing: the group
    id could belong to someone else by then."""
    if getattr(worker, "stopped", False):
        return
    if app is not None:
        purge(app)
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(worker.pid, signal.SIGKILL)  # its session's group: only its own processes
    except ProcessLookupError:
        pass
    worker.wait()
    worker.stopped = True  # type: ignore[attr-defined]
    if app is not None:
        purge(app)  # the messages it had prefetched come back on shutdown


@contextmanager
def purged(app: Any) -> Iterator[None]:
    purge(app)
    try:
        yield
    finally:
        purge(app)


def purge(app: Any) -> int:
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(app.conf.task_default_queue) or 0


def queue_length(app: Any) -> int:
    with app.connection_for_write() as conn:
        return conn.default_channel.client.llen(app.conf.task_default_queue)


def disconnect_everyone(connection: Any) -> None:
    """A worker's connections can outlive it by a moment; DROP DATABASE needs none left."""
    connection.close()  # perhaps broken by an interruption
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


# --- the end-to-end run -------------------------------------------------------------------


def measure_fleet(app: Any, connection: Any, worker: subprocess.Popen, connector: Any,
                  args: argparse.Namespace) -> dict[str, Any]:
    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from alloy_oauth.beat import SWEEP_ENTRY, beat_schedule

    entry = beat_schedule(args.sweep_interval)[SWEEP_ENTRY]
    fleet = connector.credentials.all()
    sampler = ConnectionSampler(connection.settings_dict, worker.pid,
                                int(connection.settings_dict.get("PORT") or 5432))
    sampler.start()
    try:
        started_at, started = timezone.now(), time.monotonic()
        app.send_task(entry["task"], **entry["options"])  # what beat publishes
        sweeps, next_sweep = 1, started + args.sweep_interval
        while True:
            time.sleep(0.2)
            refreshed = fleet.filter(last_refreshed_at__gte=started_at).count()
            if refreshed >= args.credentials or time.monotonic() > started + args.timeout:
                break
            if worker.poll() is not None:
                raise RuntimeError("The worker exited:\n" + log_tail(worker.log_path))
            if time.monotonic() >= next_sweep:
                app.send_task(entry["task"], **entry["options"])
                sweeps, next_sweep = sweeps + 1, next_sweep + args.sweep_interval
    finally:
        sampler.stop()
    done = fleet.filter(last_refreshed_at__gte=started_at).aggregate(
        count=Count("pk"), first=Min("last_refreshed_at"), last=Max("last_refreshed_at"))
    refreshed = done["count"]
    elapsed = ((done["last"] - started_at).total_seconds() if refreshed
               else time.monotonic() - started)
    return {"refreshed": refreshed, "elapsed": elapsed, "rate": refreshed / elapsed,
            "first_after": (done["first"] - started_at).total_seconds() if refreshed else None,
            "sweeps_published": sweeps, "connections": sampler.peak_total,
            "per_process": sampler.peak_per_process, "processes": sampler.processes}


class ConnectionSampler(threading.Thread):
    """Every 0.1 s: the database's client connections (``pg_stat_activity``, the bench's own
    left out), and each worker process's established TCP connections to PostgreSQL's port
    (its sockets in ``/proc``)."""

    def __init__(self, settings: dict[str, Any], worker_pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.worker_pid, self.port = settings, worker_pid, port
        self.stopping = threading.Event()
        self.peak_total = self.peak_per_process = self.processes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(
                host=self.settings.get("HOST") or "127.0.0.1", port=self.port,
                user=self.settings.get("USER") or "postgres",
                password=self.settings.get("PASSWORD") or None, dbname="postgres",
                application_name=BENCH_APPLICATION, autocommit=True,
            ) as conn:
                while not self.stopping.wait(0.1):
                    (total,) = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                        "backend_type = 'client backend' AND application_name <> %s",
                        [self.settings["NAME"], BENCH_APPLICATION]).fetchone()
                    self.peak_total = max(self.peak_total, total)
                    per_process = connections_per_process(self.worker_pid, self.port)
                    self.processes = max(self.processes, len(per_process))
                    self.peak_per_process = max([self.peak_per_process, *per_process.values()])
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)
        if self.error:
            raise RuntimeError("Sampling the connections failed") from self.error


def connections_per_process(root: int, port: int) -> dict[int, int]:
    """``{pid: established TCP connections to port}`` for ``root`` and its descendants."""
    to_port = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()  # sl local remote state ... inode
                    if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                        to_port.add(fields[9])
        except OSError:
            continue
    counts = {}
    for pid in process_tree(root):
        try:
            targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # it has just exited
            continue
        counts[pid] = sum(target[8:-1] in to_port for target in targets
                          if target.startswith("socket:["))
    return counts


def process_tree(root: int) -> list[int]:
    pids = [root]
    for pid in pids:  # grows as it goes
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    pids.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return pids


def verify(endpoint: TokenEndpoint, connector: Any) -> dict[str, Any]:
    """What the endpoint saw, and whether each credential holds its grant's newest refresh
    token."""
    stats = endpoint.stats(generations=True)
    generations = stats["generations"]
    stale, statuses = 0, Counter()
    for external_id, token, status in connector.credentials.values_list(
            "external_id", "refresh_token", "status"):
        grant = int(external_id.removeprefix("fleet-"))
        stale += token != refresh_token(grant, generations[grant])
        statuses[status] += 1
    problems = []
    if stats["reused"]:
        problems.append(f"{stats['reused']} reused refresh token(s) at the endpoint")
    if stale:
        problems.append(f"{stale} credential(s) do not hold their grant's newest refresh token")
    for name in ("refused", "unauthorized"):
        if stats[name]:
            problems.append(f"{stats[name]} token request(s) {name} by the endpoint")
    return {"endpoint": stats, "stale": stale, "statuses": dict(statuses), "problems": problems}


# --- the bare-HTTP limit ------------------------------------------------------------------


def measure_bare(url: str, grants: range, processes: int, seconds: float) -> dict[str, Any]:
    """``processes`` × threads (one per grant) of plain ``requests.Session().post`` for
    ``seconds``, each thread rotating its own grant. Spawned: this process has database
    connections and threads that a fork would copy."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    per_process = len(grants) // processes
    children = [context.Process(target=bare_loop, daemon=True, args=(
        url, list(grants[i * per_process:(i + 1) * per_process]), seconds, results))
        for i in range(processes)]
    for child in children:
        child.start()
    try:
        answers = [results.get(timeout=seconds + 120) for _ in children]
    finally:
        for child in children:
            child.terminate()
            child.join()
    return {"rate": sum(done / elapsed for done, _, elapsed in answers),
            "errors": sum(errors for _, errors, _ in answers), "seconds": seconds,
            "processes": processes, "threads": per_process}


def bare_loop(url: str, grants: list[int], seconds: float, results: Any) -> None:
    import requests

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    ready = threading.Barrier(len(grants) + 1)
    done, errors = [0] * len(grants), [0] * len(grants)

    def loop(index: int, grant: int) -> None:
        session = requests.Session()
        token = refresh_token(grant, 0)
        ready.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                answer = session.post(
                    url, data={"grant_type": "refresh_token", "refresh_token": token},
                    auth=(CLIENT_ID, CLIENT_SECRET), headers={"Accept": "application/json"},
                    timeout=30)
            except requests.RequestException:
                errors[index] += 1
                continue
            if answer.status_code == 200:
                token = answer.json()["refresh_token"]
                done[index] += 1
            else:
                errors[index] += 1

    threads = [threading.Thread(target=loop, args=(i, grant)) for i, grant in enumerate(grants)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.monotonic()
    for thread in threads:
        thread.join()
    results.put((sum(done), sum(errors), time.monotonic() - start))


# --- the sweep's cost ---------------------------------------------------------------------


def measure_sweep(app: Any, connector: Any, due: int, env: dict[str, str],
                  timeout: float) -> dict[str, Any]:
    """``due`` due credentials, bulk-inserted as copies of one template row; the sweep's
    task called and timed (select the due ids and enqueue them on the broker) in a process
    of its own, so that a sweep slower than ``timeout`` can be stopped (then the messages it
    had enqueued by then give its rate); the queue emptied."""
    from django.db import connection

    from alloy_oauth.models import Credential

    connector.credentials.all().delete()
    template = Credential.objects.create(connector=connector, external_id="template",
                                         access_token="x", refresh_token="x")  # never due
    quote = connection.ops.quote_name
    columns = [field.column for field in Credential._meta.concrete_fields
               if not field.primary_key and not field.generated]
    varying = {"external_id": "'sweep-' || n",
               "next_refresh_at": "now() - interval '1 second'"}
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Credential._meta.db_table)} "
            f"({', '.join(quote(column) for column in columns)}) "
            f"SELECT {', '.join(varying.get(column, 't.' + quote(column)) for column in columns)} "
            f"FROM {quote(Credential._meta.db_table)} t, generate_series(1, %s) n "
            f"WHERE t.id = %s", [due, template.pk])
        cursor.execute(f"ANALYZE {quote(Credential._meta.db_table)}")
    assert Credential.objects.due().count() == due
    purge(app)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=sweep_once, args=(env, results), daemon=True)
    child.start()
    try:
        results.get(timeout=120)  # Django is set up there
        seconds = results.get(timeout=timeout)
    except queue.Empty:
        seconds = None
    finally:
        child.terminate()
        child.join()
    messages = queue_length(app)
    purge(app)
    return {"due": due, "seconds": seconds, "messages": messages, "timeout": timeout}


def sweep_once(env: dict[str, str], results: Any) -> None:
    """In a child process: the sweep task's code, called directly, timed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    os.environ.update(env)
    import django

    django.setup()
    import alloy_oauth.tasks  # noqa: F401 - registers the task with the app
    from alloy_oauth.beat import SWEEP_TASK
    from testproject.celery import app

    sweep = app.tasks[SWEEP_TASK]
    results.put("ready")
    start = time.perf_counter()
    sweep()
    results.put(time.perf_counter() - start)


# --- the report ---------------------------------------------------------------------------


def print_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    bare, stats = report["bare"], report["endpoint"]
    ratio = report["rate"] / bare["rate"] if bare["rate"] else 0.0
    complete = report["refreshed"] >= args.credentials
    (before, after) = report["load"]
    print(f"Fleet refresh, end to end: {args.credentials} due credentials, token endpoint "
          f"answering after {args.latency_ms:.0f} ms (asyncio, 127.0.0.1)")
    print(f"celery -A testproject worker --loglevel=INFO ({report['processes']} processes), "
          f"broker {BROKER_URL}, PostgreSQL {report['postgres'] // 10000}; "
          f"{os.cpu_count()} cores, load average {before[0]:.2f} before, {after[0]:.2f} after")
    rows = [
        ("refreshes/s end to end", f"{report['rate']:.1f}",
         f"{report['refreshed']} of {args.credentials} in {report['elapsed']:.1f} s"
         + ("" if complete else f" (stopped at --timeout {args.timeout:.0f} s)")
         + (f"; first after {report['first_after']:.2f} s" if report["first_after"] is not None
            else "") + f"; {report['sweeps_published']} sweep(s) published"),
        ("bare-HTTP limit/s", f"{bare['rate']:.1f}",
         f"{bare['processes']} processes x {bare['threads']} threads, {bare['seconds']:.1f} s"
         + (f", {bare['errors']} errors" if bare["errors"] else "")),
        ("ratio", f"{ratio:.3f}", ""),
        ("peak PostgreSQL connections", str(report["connections"]),
         f"at most {report['per_process']} in one worker process"),
        ("reused refresh tokens", str(stats["reused"]),
         f"{stats['requests']} token requests, {stats['refreshed']} rotations, "
         f"{stats['peak_in_flight']} in flight at most"),
        ("credentials not holding the newest refresh token", str(report["stale"]),
         ", ".join(f"{count} {status}" for status, count in sorted(report["statuses"].items()))),
        *(sweep_row(sweep) for sweep in report["sweeps"]),
    ]
    width = max(len(row[0]) for row in rows)
    print()
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:>9}  {detail}")
    at_latency = args.latency_ms == TARGETS["latency_ms"]
    print("\nTargets (issue 12)")
    targets = [
        (f">= {TARGETS['rate']} refreshes/s end to end at {TARGETS['latency_ms']} ms",
         report["rate"] >= TARGETS["rate"] if at_latency else None, f"{report['rate']:.1f}/s"),
        (f">= {TARGETS['ratio']} x the bare-HTTP limit", ratio >= TARGETS["ratio"], f"{ratio:.3f}"),
        ("0 reused refresh tokens", stats["reused"] == 0, str(stats["reused"])),
        (f"<= {TARGETS['connections_per_process']} PostgreSQL connections per worker process",
         report["per_process"] <= TARGETS["connections_per_process"], str(report["per_process"])),
        (f"sweep enqueues {TARGETS['sweep_due']:,} due credentials in <= "
         f"{TARGETS['sweep_seconds']:.0f} s", *sweep_target(report["sweeps"])),
    ]
    for name, met, value in targets:
        verdict = "not measured" if met is None else ("met" if met else "NOT MET")
        print(f"  {name:<62} {verdict:<12} {value}")


def sweep_row(sweep: dict[str, Any]) -> tuple[str, str, str]:
    name = f"sweep: enqueue {sweep['due']:,} due credentials (s)"
    if sweep["seconds"] is not None:
        return name, f"{sweep['seconds']:.2f}", f"{sweep['messages']:,} messages on Redis"
    rate = sweep["messages"] / sweep["timeout"]
    return (name, f"> {sweep['timeout']:.0f}",
            f"stopped at --sweep-timeout with {sweep['messages']:,} messages on Redis: "
            f"{rate:.0f}/s, about {sweep['due'] / rate:.0f} s for all" if rate else
            "stopped at --sweep-timeout with no message on Redis")


def sweep_target(sweeps: list[dict[str, Any]]) -> tuple[bool | None, str]:
    for sweep in sweeps:
        if sweep["due"] == TARGETS["sweep_due"]:
            if sweep["seconds"] is None:
                return False, f"> {sweep['timeout']:.0f} s"
            return sweep["seconds"] <= TARGETS["sweep_seconds"], f"{sweep['seconds']:.2f} s"
    return None, ""


def log_tail(path: Path) -> str:
    return path.read_bytes()[-4000:].decode(errors="replace")


def same_server(url: str, database: str) -> str:
    """``url`` with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def reachable(url: str) -> bool:
    import socket

    parts = urlsplit(url)
    default = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "rediss": 6379}
    try:
        socket.create_connection((parts.hostname or "127.0.0.1",
                                  parts.port or default.get(parts.scheme, 0)), timeout=2).close()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    main()
