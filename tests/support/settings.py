"""Settings of the test suite: the app installed in a minimal project.

DATABASE_URL picks the database (default: in-memory SQLite); a postgres:// URL names the
database pytest-django derives its test database from.
"""

from pathlib import Path

from testproject.base_settings import *  # noqa: F403 - the shared project
from testproject.base_settings import DJANGO_APPS, env

DEBUG = False
SECRET_KEY = "tests-secret-key-not-used-for-tokens"
FERNET_KEYS = ["tests-fernet-key-0123456789abcdef0123456789abcdef"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

INSTALLED_APPS = [*DJANGO_APPS, "django_celery_beat", "alloy_oauth"]
ROOT_URLCONF = "tests.support.urls"
DATABASES = {"default": env.db("DATABASE_URL", default="sqlite://:memory:")}
# A logo for the tests of Connector.logo_url (tests/support/static/tests/logo.svg).
STATICFILES_DIRS = [Path(__file__).resolve().parent / "static"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Celery: the in-memory broker by default (a worker thread in the test process); .ci/run sets
# CELERY_BROKER_URL=redis://… so the same tests run through Redis.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="memory://")
# One queue per pytest-xdist worker: each drains and purges its own.
CELERY_TASK_DEFAULT_QUEUE = env("ALLOY_OAUTH_TEST_QUEUE", default="alloy_oauth_tests") + (
    f"_{env('PYTEST_XDIST_WORKER', default='')}" if env("PYTEST_XDIST_WORKER", default="")
    else "")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Subprocesses of the concurrency tests receive their settings through the environment.
ALLOY_OAUTH = env.json("ALLOY_OAUTH_JSON", default={})
