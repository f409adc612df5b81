from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses as responses_lib
from django.db import connection

from alloy_oauth.models import Connector

from .celery_app import app as celery_app  # noqa: F401 - the current Celery app of the suite
from .provider_server import ProviderServer

#: Set by .ci/run: a skipped test fails the run (CI has every service).
NO_SKIPS = os.environ.get("ALLOY_OAUTH_NO_SKIPS") == "1"

TOKEN_URL = "https://provider.example/oauth/token"
AUTH_URL = "https://provider.example/oauth/authorize"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://…)")
    for item in items:
        if "postgresql" in item.keywords:
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


@pytest.fixture(scope="session")
def oauth_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderServer]:
    """A live django-oauth-toolkit server on 127.0.0.1 (PKCE required, confidential client,
    consent skipped, a client secret that needs RFC 6749 §2.3.1 encoding)."""
    server = ProviderServer(tmp_path_factory.mktemp("provider")).start()
    try:
        yield server
    finally:
        server.stop()
