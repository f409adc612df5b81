from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import django
import pytest
import responses as responses_lib
from django.db import connection
from django.test import Client
from django.utils import timezone

from alloy_oauth.models import Connector, Credential

from tests.support.browser import chromium, page  # noqa: F401 - fixtures
from tests.support.celery_app import app as celery_app  # noqa: F401 - the suite's Celery app
from tests.support.credentials import OLD_ACCESS, OLD_REFRESH
from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.example_provider import AUTH_URL, TOKEN_URL
from tests.support.provider_server import ProviderServer

#: Set by .ci/run: a skipped test fails the run (CI has every service).
NO_SKIPS = os.environ.get("ALLOY_OAUTH_NO_SKIPS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor in ("postgresql", "mysql"):
        return
    skip = pytest.mark.skip(reason="needs a database server (set DATABASE_URL=postgres://… "
                                   "or mysql://…)")
    for item in items:
        if "database_server" in item.keywords:
            item.add_marker(skip)


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if NO_SKIPS and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nALLOY_OAUTH_NO_SKIPS=1 and {len(_skipped)} test(s) were skipped:")
        for nodeid in _skipped:
            print("  ", nodeid)


@pytest.fixture
def admins(settings: Any) -> str:
    """Error reports are mailed to one admin: ADMINS as the running Django takes it (plain
    addresses from 6.0, which warns about (name, address) pairs; pairs before)."""
    address = "ops@example.com"
    settings.ADMINS = [address] if django.VERSION >= (6,) else [("Ops", address)]
    return address


@pytest.fixture
def make_connector(db: None) -> Callable[..., Connector]:
    counter = iter(range(1, 10_000))

    def make(**fields: Any) -> Connector:
        number = next(counter)
        values: dict[str, Any] = {
            "name": f"Example {number}",
            "slug": f"example-{number}",
            "auth_url": AUTH_URL,
            "token_url": TOKEN_URL,
            "client_id": "client-id",
            "client_secret": "client-secret-value",
            "scope": "read, write",
            # Live (offered to end users) unless a test says otherwise: validated.
            "validated_at": timezone.now(),
        }
        values.update(fields)
        return Connector.objects.create(**values)

    return make


@pytest.fixture
def connector(make_connector: Callable[..., Connector]) -> Connector:
    return make_connector(slug="example", name="Example")


@pytest.fixture
def responses() -> Iterator[responses_lib.RequestsMock]:
    """HTTP stubs; any request nobody stubbed fails the test."""
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class Broker:
    """The suite's broker queue (memory:// by default, Redis in CI), read raw."""

    def __init__(self) -> None:
        self.queue = celery_app.conf.task_default_queue

    def purge(self) -> None:
        with celery_app.connection_for_write() as conn:
            conn.SimpleQueue(self.queue).clear()

    def drain(self) -> list[dict[str, Any]]:
        """Take every waiting message off the queue: its headers and its raw body."""
        messages = []
        with celery_app.connection_for_read() as conn:
            queue = conn.SimpleQueue(self.queue, no_ack=True)
            while True:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    return messages
                messages.append({"headers": message.headers, "body": message.body})


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker()
    broker.purge()
    yield broker
    broker.purge()


@pytest.fixture
def celery_worker(transactional_db: None, broker: Broker) -> Iterator[Any]:
    """A real Celery worker consuming the suite's queue, in a thread of this process."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(celery_app, pool="solo", perform_ping_check=False,
                      shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture(scope="session")
def oauth_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderServer]:
    """A live django-oauth-toolkit server on 127.0.0.1 (PKCE required, confidential client,
    consent skipped, a client secret that needs RFC 6749 §2.3.1 encoding)."""
    server = ProviderServer(tmp_path_factory.mktemp("provider")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def strict_provider(tmp_path_factory: pytest.TempPathFactory,
                    django_db_blocker: Any) -> Iterator[ProviderServer]:
    """A provider in the strictest mode: refresh tokens rotate, a reused one revokes the
    whole grant, no grace period, and access tokens live 4 seconds. On PostgreSQL runs its
    own database is on the PostgreSQL server too (it is hit by many processes at once)."""
    workdir = tmp_path_factory.mktemp("strict-provider")
    database_url = None
    # Named after the suite's own test database, so that two runs on one server (CI's steps,
    # parallel checkouts) never share it.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # (pytest-xdist: one per worker)
    provider_database = f"{connection.settings_dict['NAME']}_strict_provider{worker}"
    if connection.vendor == "postgresql":
        database_url = create_postgres_database(provider_database)
    server = ProviderServer(workdir, access_token_lifetime=6, rotate_refresh_tokens=True,
                            reuse_protection=True, grace_period=0,
                            database_url=database_url).start()
    try:
        yield server
    finally:
        server.stop()
        if database_url:
            drop_postgres_database(provider_database)


@pytest.fixture(scope="session")
def issuing_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderServer]:
    """A live provider whose authorization responses say who sent them (RFC 9207 ``iss``)."""
    server = ProviderServer(tmp_path_factory.mktemp("issuing-provider"),
                            issuer="https://issuer.example/").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("enduser", password="pw")


@pytest.fixture
def browser(client: Client, user) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def credential(connector, user) -> Credential:
    """``user``'s active credential, whose refresh time has come (expires in 2 minutes)."""
    now = timezone.now()
    return Credential.objects.create(
        connector=connector, user=user,
        access_token=OLD_ACCESS, refresh_token=OLD_REFRESH, scope="read write",
        expires_at=now + timedelta(seconds=120), next_refresh_at=now - timedelta(seconds=1),
    )


@pytest.fixture
def tenant_connector(oauth_provider) -> Connector:
    return Connector.objects.create(
        validated_at=timezone.now(),  # live: offered to end users
        name="Tenant provider", slug="tenants",
        auth_url=oauth_provider.tenant_auth_url, token_url=oauth_provider.tenant_token_url,
        revocation_url=oauth_provider.tenant_revocation_url,
        api_base_url=oauth_provider.tenant_api_base_url, test_request_path="me/",
        client_id=oauth_provider.client_id, client_secret=oauth_provider.client_secret,
        scope="read",
        connection_params=[{"name": "tenant", "label": "Tenant", "pattern": "[a-z][a-z0-9-]*"}],
        metadata_fields={"instance_url": "instance_url", "tenant_id": "tenant.id",
                         "user_id": "authed_user.id"},
        callback_params=["realm"],
        allow_multiple_accounts=True, account_label="{tenant}",
    )
