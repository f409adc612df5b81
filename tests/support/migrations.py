"""The database at an earlier migration of the app, for the tests of its data migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@contextmanager
def at_migration(migration: str) -> Iterator[Any]:
    """The database at ``migration`` (its historical models), then back at the latest."""
    before = [("alloy_oauth", migration)]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        yield executor.loader.project_state(before).apps
    finally:
        migrate_to_latest()


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def old_connector(apps: Any) -> Any:
    """A connector made with the historical models ``apps`` (every migration has these
    fields)."""
    return apps.get_model("alloy_oauth", "Connector").objects.create(
        name="Old", slug="old", auth_url="https://p.example/a",
        token_url="https://p.example/t", client_id="id", client_secret="secret")
