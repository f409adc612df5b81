"""The demo from a fresh clone: setup, seed, web server and worker (testproject/demo.py, what
``make demo`` runs), an end user connecting through the demo provider in headless Chromium,
and the worker refreshing the credential with nobody asking."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import save_screenshot
from tests.support.provider_server import REPO_DIR, free_port


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    if (REPO_DIR / ".git").exists():
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{REPO_DIR}",
                        str(clone)], check=True, timeout=120)
    else:  # e.g. run from an unpacked sdist
        import shutil

        shutil.copytree(REPO_DIR, clone, ignore=shutil.ignore_patterns(".venv", ".tox", "var"))
    return clone


def demo_env(port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "DATABASE_", "CELERY_", "ALLOY_OAUTH_", "PYTEST_"))}
    # Short-lived tokens and a fast sweep: the refresh shows within seconds.
    env.update(DEMO_PORT=str(port), DEMO_TOKEN_LIFETIME="10", DEMO_LEAD_TIME="5",
               DEMO_SWEEP_INTERVAL="1")
    return env


@pytest.mark.xdist_group("processes")  # see tests/integration/test_concurrency.py
def test_the_demo_from_a_fresh_clone(fresh_clone, chromium, tmp_path):
    port = free_port()
    env = demo_env(port)
    demo = [sys.executable, "testproject/demo.py"]
    # Generated secrets may begin with "-" (it once broke the seeding): this one does.
    (fresh_clone / "var").mkdir()
    (fresh_clone / "var" / "demo.env").write_text(
        "SECRET_KEY=-demo-test-secret-key-0123456789abcdef0123456789abcdef\n"
        "FERNET_KEYS=-demo-test-fernet-key-0123456789abcdef0123456789\n"
        "DEMO_CLIENT_SECRET=-lASYFqKPBbi_dBlYRLnMmT4rJeTo6M1J6PFmROakqU\n")
    subprocess.run([*demo, "setup"], cwd=fresh_clone, env=env, check=True, timeout=180,
                   capture_output=True)
    subprocess.run([*demo, "setup"], cwd=fresh_clone, env=env, check=True, timeout=180,
                   capture_output=True)  # a second run reuses what exists
    log = open(tmp_path / "demo.log", "w")
    server = subprocess.Popen([*demo, "serve"], cwd=fresh_clone, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    site = f"http://127.0.0.1:{port}"
    try:
        # The banner comes last, once the site answers and the worker is ready; the worker's
        # own start-up banner is in its log file, not between the demo's lines. (The test
        # sends no request before it: the site's access log would print it, maybe after.)
        worker_log = fresh_clone / "var" / "worker.log"
        deadline = time.monotonic() + 120
        while "log in as alice / alice-pw" not in (tmp_path / "demo.log").read_text():
            assert server.poll() is None, "the demo exited early"
            assert time.monotonic() < deadline, "the demo printed no banner within 120 s"
            time.sleep(0.2)
        time.sleep(1)  # anything printed after the banner would show by now
        printed = (tmp_path / "demo.log").read_text()
        assert printed.rstrip().endswith(f"The worker's log (refreshes, sweeps): {worker_log}")
        assert "celery@" not in printed and "[tasks]" not in printed
        assert " ready." in worker_log.read_text()
        with urllib.request.urlopen(f"{site}/favicon.ico", timeout=10) as favicon:
            assert favicon.headers["Content-Type"] == "image/svg+xml"
        context = chromium.new_context(viewport={"width": 1100, "height": 760})
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto(f"{site}/accounts/login/?next=/oauth/connections/")
        assert "system-ui" in page.locator("body").evaluate(  # the site's style, not bare HTML
            "body => getComputedStyle(body).fontFamily")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{site}/oauth/connections/")
        assert "Not connected" in page.inner_text("tr[data-connector=demo-provider]")

        with page.expect_popup() as popup_info:
            page.click("a[data-alloy-oauth-connect=demo-provider]")
        popup = popup_info.value
        popup.wait_for_url(f"http://localhost:{port}/provider/login/**")  # its own login
        popup.fill("#id_username", "alice")
        popup.fill("#id_password", "alice-pw")
        popup.click("button[type=submit]")
        popup.wait_for_selector("input[name=allow]")  # the consent page
        save_screenshot(popup, "connect-popup.png", tmp_path)
        assert page.inner_text(".alloy-oauth-notice").startswith("Connecting to Demo Provider")
        popup.click("input[name=allow]")  # the popup reports back and the page redraws
        page.wait_for_function("document.querySelector('.alloy-oauth-notice').innerText"
                               " === 'Connected to Demo Provider.'")
        # The notice comes first, then the table redraws.
        expect(page.locator("tr[data-connector=demo-provider]")).to_contain_text("Connected")

        # Nobody asks for the token now; the worker refreshes it before it expires.
        database = fresh_clone / "var" / "db.sqlite3"
        deadline = time.monotonic() + 45
        refreshed = None
        while time.monotonic() < deadline and not refreshed:
            time.sleep(1)
            with sqlite3.connect(database) as db:
                refreshed = db.execute(
                    "SELECT last_refreshed_at FROM alloy_oauth_credential").fetchone()[0]
        assert refreshed, (tmp_path / "demo.log").read_text()[-3000:]
        page.reload()
        row = page.inner_text("tr[data-connector=demo-provider]")
        assert "Connected" in row and "refreshed" in row
        save_screenshot(page, "connections.png", tmp_path)
        context.close()
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C
        try:
            server.wait(30)
        finally:
            log.close()
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
    output = (tmp_path / "demo.log").read_text()
    assert server.returncode == 0, output[-4000:]
    with pytest.raises(OSError):  # nothing is left listening
        urllib.request.urlopen(f"{site}/accounts/login/", timeout=2)
    assert "log in as alice / alice-pw" in output and "The demo has stopped." in output


def test_the_demo_broker_shows_a_message_only_once_it_is_whole(tmp_path, monkeypatch):
    # kombu's own filesystem transport creates the file, then writes it: a worker listing the
    # folder in between read an empty message and stopped (celery/kombu#1551).
    from kombu import Connection

    from testproject import broker

    folder = tmp_path / "broker"
    folder.mkdir()
    visible_while_writing = []  # the queue's messages while each one is being written
    real_dumps = broker.dumps

    def dumps(payload):
        visible_while_writing.append(len(list(folder.glob("*.msg"))))
        return real_dumps(payload)

    monkeypatch.setattr(broker, "dumps", dumps)
    with Connection("filesystem://", transport="testproject.broker:Transport",
                    transport_options={"data_folder_in": str(folder),
                                       "data_folder_out": str(folder)}) as connection:
        queue = connection.SimpleQueue("demo")
        queue.put({"credential_id": 7})
        queue.put({"credential_id": 8})
        assert visible_while_writing == [0, 1]  # only the ones already written
        assert len(list(folder.glob("*.msg"))) == 2
        received = [queue.get(timeout=1), queue.get(timeout=1)]
        # (FIFO to the millisecond, like kombu's: two messages in one may swap)
        assert sorted(message.payload["credential_id"] for message in received) == [7, 8]
        for message in received:
            message.ack()
        queue.close()
