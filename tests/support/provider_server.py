"""A live OAuth 2.0 provider for the tests: the test project's django-oauth-toolkit server,
run as its own process, with its own database, on 127.0.0.1.

Its client secret needs RFC 6749 §2.3.1 form-encoding in HTTP Basic auth, and PKCE is
required, so a client that gets either wrong fails against it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from . import REPO_DIR

MANAGE = REPO_DIR / "testproject" / "manage.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen) -> None:
    """Stop a server process: SIGTERM, and SIGKILL if it is still there 10 s later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ProviderServer:
    workdir: Path
    access_token_lifetime: int = 3600
    rotate_refresh_tokens: bool = True
    reuse_protection: bool = True
    grace_period: int = 0
    database_url: str | None = None
    #: When set, authorization responses carry ``iss`` with this value (RFC 9207).
    issuer: str = ""
    client_id: str = "alloy-oauth-test-client"
    client_secret: str = "s3cr+t/with%2F:colon"
    #: A client of the client credentials grant (RFC 6749 §4.4) at the same provider.
    service_client_id: str = "alloy-oauth-service-client"
    service_client_secret: str = "serv+ice/secret%2F:x"
    #: What the provider's /provider/api/key/ accepts.
    api_key: str = "provider-api-key-value"
    username: str = "provider-user"
    password: str = "provider-password"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return self.base_url + "/provider/o/authorize/"

    @property
    def token_url(self) -> str:
        return self.base_url + "/provider/o/token/"

    @property
    def revocation_url(self) -> str:
        return self.base_url + "/provider/o/revoke_token/"

    @property
    def me_url(self) -> str:
        return self.base_url + "/provider/api/me/"

    @property
    def api_key_url(self) -> str:
        return self.base_url + "/provider/api/key/"

    @property
    def basic_url(self) -> str:
        return self.base_url + "/provider/api/basic/"

    @property
    def login_url(self) -> str:
        return self.base_url + "/provider/login/"

    # A tenant's endpoints (testproject/provider/views.py: TENANTS), as connector templates.

    @property
    def tenant_auth_url(self) -> str:
        return self.base_url + "/provider/t/{tenant}/o/authorize/"

    @property
    def tenant_token_url(self) -> str:
        return self.base_url + "/provider/t/{tenant}/o/token/"

    @property
    def tenant_revocation_url(self) -> str:
        return self.base_url + "/provider/t/{tenant}/o/revoke_token/"

    #: The tenant API's base, at the origin the token response names (``instance_url``).
    tenant_api_base_url = "{metadata.instance_url}/provider/t/{tenant}/api"

    def env(self) -> dict[str, str]:
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_", "CELERY_", "PYTEST_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="testproject.settings",
            DEBUG="0",
            SECRET_KEY="provider-secret-key",
            FERNET_KEYS="provider-fernet-key",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.database_url or f"sqlite:///{self.workdir / 'provider.sqlite3'}",
            ALLOY_OAUTH_VAR_DIR=str(self.workdir),
            SESSION_COOKIE_NAME="provider_sessionid",
            CSRF_COOKIE_NAME="provider_csrftoken",
            PROVIDER_ACCESS_TOKEN_EXPIRE_SECONDS=str(self.access_token_lifetime),
            PROVIDER_ROTATE_REFRESH_TOKEN=str(int(self.rotate_refresh_tokens)),
            PROVIDER_REFRESH_TOKEN_REUSE_PROTECTION=str(int(self.reuse_protection)),
            PROVIDER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS=str(self.grace_period),
            PROVIDER_ISSUER=self.issuer,
            PROVIDER_API_KEY=self.api_key,
        )
        return env

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args], env=self.env(), cwd=REPO_DIR,
            capture_output=True, text=True, timeout=120,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> ProviderServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput", "-v0")
        self.manage(
            "provider_setup",
            f"--client-id={self.client_id}",
            f"--client-secret={self.client_secret}",  # (name=value: a value may begin with -)
            # RFC 8252 §7.3: any port is accepted for a registered loopback IP redirect URI.
            "--redirect-uri=http://127.0.0.1/oauth/callback/",
            f"--service-client-id={self.service_client_id}",
            f"--service-client-secret={self.service_client_secret}",
            f"--username={self.username}",
            f"--password={self.password}",
        )
        with open(self.workdir / "provider.log", "wb") as log:  # the child keeps its own
            self.process = subprocess.Popen(
                [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{self.port}",
                 "--noreload", "--skip-checks"],
                env=self.env(), cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            self.wait_until_up()
        except BaseException:  # a timeout, Ctrl-C: no server left running
            self.stop()
            raise
        return self

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("The provider exited:\n" + self.log_tail())
            try:
                requests.get(self.login_url, timeout=2)
                return
            except requests.RequestException:  # not listening yet, or too busy to answer
                time.sleep(0.1)
        raise RuntimeError("The provider did not start within 60 s:\n" + self.log_tail())

    def stop(self) -> None:
        if self.process:
            terminate(self.process)

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "provider.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- a browser's view of the provider -------------------------------------------------

    def login(self, browser: requests.Session) -> None:
        """Sign the end user in at the provider (its own session cookie)."""
        page = browser.get(self.login_url, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = browser.post(
            self.login_url,
            data={"username": self.username, "password": self.password,
                  "csrfmiddlewaretoken": token, "next": "/"},
            headers={"Referer": self.login_url},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302, answer.text[:500]

    def consent(self, browser: requests.Session, authorization_url: str) -> str:
        """Follow the provider's authorization URL; return where it sends the browser back."""
        answer = browser.get(authorization_url, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, (answer.status_code, answer.text[:500])
        return urljoin(authorization_url, answer.headers["Location"])

    def connect(self, site: Any, slug: str) -> None:
        """Connect the end user logged in to ``site`` (a Django test client) through this
        provider. Needs CALLBACK_BASE_URL on a loopback IP (any port is accepted there)."""
        browser = requests.Session()
        self.login(browser)
        from .tickets import authorize_url

        back = self.consent(browser, site.get(authorize_url(site, slug))["Location"])
        response = site.get(f"/oauth/callback/?{urlsplit(back).query}")
        assert response.status_code == 303, response.content[:500]

    def stats(self) -> dict[str, Any]:
        """What the provider's database says about the refresh tokens it issued."""
        return json.loads(self.manage("provider_stats", "--client-id", self.client_id))

    def token_requests(self, path: str = "/provider/o/token/") -> list[int]:
        """The HTTP status of every request the token endpoint at ``path`` answered, from
        its log."""
        log = (self.workdir / "provider.log").read_text(errors="replace")
        return [int(m) for m in re.findall(rf'"POST {re.escape(path)} HTTP/1.1" (\d+)', log)]

    def call_api(self, access_token: str) -> requests.Response:
        return requests.get(
            self.me_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        )
