"""For the tests that start host processes (web servers, Celery workers) of their own."""

from __future__ import annotations

import json
import os
import socket

import pytest
from django.db import connection

from . import REPO_DIR
from .databases import server_database_url


def cross_process_broker() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    if url and not url.startswith("memory"):
        return url
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("needs a broker other processes can reach (CELERY_BROKER_URL=redis://…)")
    return "redis://127.0.0.1:6379/15"


def process_env(**alloy_oauth: object) -> dict[str, str]:
    """The environment of a host process (web or worker) on the suite's test database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.support.settings",
        DATABASE_URL=server_database_url(connection.settings_dict["NAME"]),
        ALLOY_OAUTH_JSON=json.dumps(alloy_oauth),
        PYTHONPATH=str(REPO_DIR),
    )
    return env
