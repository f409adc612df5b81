"""Other databases on the server the suite runs on (PostgreSQL or MySQL): for the processes
of the concurrency tests and the live provider's own."""

from __future__ import annotations

from django.db import connection


def server_database_url(database: str) -> str:
    """A URL to another database on the server the suite runs on (PostgreSQL or MySQL)."""
    params = connection.settings_dict
    mysql = connection.vendor == "mysql"
    user = params.get("USER") or ("root" if mysql else "postgres")
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or (3306 if mysql else 5432)
    scheme = "mysql" if mysql else "postgres"
    return f"{scheme}://{user}{password}@{host}:{port}/{database}"


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    params = connection.settings_dict
    return psycopg.connect(
        host=params.get("HOST") or "127.0.0.1", port=params.get("PORT") or 5432,
        user=params.get("USER") or "postgres", password=params.get("PASSWORD") or None,
        dbname="postgres", autocommit=True,
    )


def create_postgres_database(name: str) -> str:
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_database_url(name)


def drop_postgres_database(name: str) -> None:
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
