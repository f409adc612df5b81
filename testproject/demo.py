#!/usr/bin/env python
"""The demo (``make demo``): the test project, seeded, with a web server and a Celery worker.

    python testproject/demo.py          # setup, then serve (Ctrl-C stops everything)
    python testproject/demo.py setup    # migrate and seed only
    python testproject/demo.py serve    # run the web server and the worker only

One web server plays both parts: the site at http://127.0.0.1:PORT (operators' admin, end
users' Connections page) and the OAuth provider at http://localhost:PORT/provider/ — another
host name, so the provider has its own cookies, login and consent page. Embedded defaults:
SQLite and kombu's filesystem broker under var/ (git-ignored); DATABASE_URL and
CELERY_BROKER_URL switch to PostgreSQL and Redis. Secrets are generated once into
var/demo.env and reused.

Environment: DEMO_PORT (8000), DEMO_TOKEN_LIFETIME (120 s: the provider's access tokens),
DEMO_LEAD_TIME (60 s before expiry the worker refreshes), DEMO_SWEEP_INTERVAL (10 s).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANAGE = REPO / "testproject" / "manage.py"


def var_dir() -> Path:
    return Path(os.environ.get("ALLOY_OAUTH_VAR_DIR", REPO / "var"))


def secrets_file() -> dict[str, str]:
    """var/demo.env: made once, so a second run finds its tokens still readable."""
    path = var_dir() / "demo.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                values[key] = value
    defaults = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FERNET_KEYS": secrets.token_urlsafe(32),
        "DEMO_CLIENT_SECRET": secrets.token_urlsafe(32),
    }
    if not defaults.keys() <= values.keys():
        values = {**defaults, **values}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
    return values


def environment(port: int) -> dict[str, str]:
    saved = secrets_file()
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="testproject.settings",
        ALLOY_OAUTH_VAR_DIR=str(var_dir()),
        DEBUG="1",
        SECRET_KEY=saved["SECRET_KEY"],
        FERNET_KEYS=saved["FERNET_KEYS"],
        ALLOWED_HOSTS="127.0.0.1,localhost",
        ALLOY_OAUTH_CALLBACK_BASE_URL=f"http://127.0.0.1:{port}",
        ALLOY_OAUTH_SWEEP_INTERVAL=os.environ.get("DEMO_SWEEP_INTERVAL", "10"),
        PROVIDER_ACCESS_TOKEN_EXPIRE_SECONDS=os.environ.get("DEMO_TOKEN_LIFETIME", "120"),
        PYTHONUNBUFFERED="1",
    )
    return env


def setup(port: int) -> None:
    env = environment(port)
    for folder in ("broker", "broker-processed"):
        (var_dir() / folder).mkdir(parents=True, exist_ok=True)

    def manage(*args: str) -> None:
        subprocess.run([sys.executable, str(MANAGE), *args], env=env, cwd=REPO, check=True)

    manage("migrate", "--noinput", "-v0")
    # name=value: a generated secret may begin with "-", which argparse would take for an option
    manage("demo_seed", f"--provider-url=http://localhost:{port}",
           f"--client-secret={secrets_file()['DEMO_CLIENT_SECRET']}",
           f"--lead-time={os.environ.get('DEMO_LEAD_TIME', '60')}")


def serve(port: int) -> int:
    env = environment(port)
    stopping: list[int] = []

    def ask_to_stop(signum: int, frame: object) -> None:
        stopping.append(signum)

    # Ctrl-C reaches the children too (one process group); count it as asked, not as a crash.
    signal.signal(signal.SIGINT, ask_to_stop)
    signal.signal(signal.SIGTERM, ask_to_stop)
    worker_log_path = var_dir() / "worker.log"
    worker_log = open(worker_log_path, "w")  # its start-up banner, its refreshes
    processes = [
        subprocess.Popen([sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}",
                          "--noreload"], env=env, cwd=REPO),
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "testproject", "worker",
                          "--beat", "--pool=solo", "--loglevel=INFO",
                          "--schedule", str(var_dir() / "celerybeat-schedule")],
                         env=env, cwd=REPO, stdout=worker_log, stderr=subprocess.STDOUT),
    ]

    try:
        wait_until(lambda: site_listens(port), processes, stopping,
                   crashed="The demo could not start (see above).",
                   too_slow=f"The demo did not answer on 127.0.0.1:{port} within 60 s.")
        # The worker says it is ready with its log's "ready." line.
        wait_until(lambda: " ready." in worker_log_path.read_text(errors="replace"),
                   processes, stopping,
                   crashed=f"The demo could not start (see above and {worker_log_path}).",
                   too_slow=f"The demo's worker did not start within 60 s "
                            f"(see {worker_log_path}).")
        if not stopping:
            banner(port, worker_log_path)
        while not stopping and all(process.poll() is None for process in processes):
            time.sleep(0.3)
        time.sleep(0.3)  # a child that died of the same Ctrl-C: let our own signal land
        crashed = not stopping
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        worker_log.close()
        print("\nThe demo has stopped.", flush=True)
    if crashed:
        print("A process of the demo exited on its own (see above).", file=sys.stderr)
    return 1 if crashed else 0


def wait_until(ready: Callable[[], bool], processes: list[subprocess.Popen],
               stopping: list[int], *, crashed: str, too_slow: str) -> None:
    """Until ``ready()``, for at most 60 s; a process of the demo that exits meanwhile, or
    the time running out, ends the demo with ``crashed`` or ``too_slow``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stopping:
        if any(process.poll() is not None for process in processes):
            raise SystemExit(crashed)
        if ready():
            return
        time.sleep(0.3)
    if not stopping:
        raise SystemExit(too_slow)


def site_listens(port: int) -> bool:
    """Whether runserver accepts connections: it listens only once the site is loaded.

    A connection that sends no request leaves no line in the site's access log; an HTTP request
    would, and runserver may write that line after our banner.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def banner(port: int, worker_log: Path) -> None:
    site = f"http://127.0.0.1:{port}"
    print(f"""
  alloy_oauth demo is running (Ctrl-C stops it)

  End user      {site}/oauth/connections/      log in as alice / alice-pw
  Operator      {site}/admin/                   log in as operator / operator-pw
  Provider      http://localhost:{port}/provider/login/   (alice / alice-pw there too)

  Connect "Demo Provider" on the Connections page. Its access tokens live
  {os.environ.get("DEMO_TOKEN_LIFETIME", "120")} s; the worker refreshes them in the background (watch
  "refreshed ... ago" on the Connections page, or the events in the admin).
  Use 127.0.0.1 (not localhost) for the site: localhost is the provider.
  The worker's log (refreshes, sweeps): {worker_log}
""", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["run", "setup", "serve"], default="run")
    args = parser.parse_args()
    port = int(os.environ.get("DEMO_PORT", "8000"))
    if args.command in ("run", "setup"):
        setup(port)
    if args.command in ("run", "serve"):
        sys.exit(serve(port))


if __name__ == "__main__":
    main()
