"""Django on the test settings, with a throw-away test database, for the benchmarks."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent


@contextmanager
def throwaway_database(database_url: str,
                       settings: str = "tests.support.settings") -> Iterator[Any]:
    """Set Django up on ``settings`` (which reads DATABASE_URL) and a test database next to
    ``database_url``'s (made now, dropped on the way out); yields the connection."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    sys.path.insert(0, str(REPO_DIR))
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield connection
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
