"""Settings of the test suite: the app installed in a minimal project.

DATABASE_URL picks the database (default: in-memory SQLite); a postgres:// URL names the
database pytest-django derives its test database from.
"""

from pathlib import Path

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = "tests-secret-key-not-used-for-tokens"
FERNET_KEYS = ["tests-fernet-key-0123456789abcdef0123456789abcdef"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "alloy_oauth",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.support.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
DATABASES = {"default": env.db("DATABASE_URL", default="sqlite://:memory:")}
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
# A logo for the tests of Connector.logo_url (tests/support/static/tests/logo.svg).
STATICFILES_DIRS = [Path(__file__).resolve().parent / "static"]
LOGIN_URL = "/accounts/login/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Celery: the in-memory broker by default (a worker thread in the test process); .ci/run sets
# CELERY_BROKER_URL=redis://… so the same tests run through Redis.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="memory://")
# One queue per pytest-xdist worker: each drains and purges its own.
CELERY_TASK_DEFAULT_QUEUE = env("ALLOY_OAUTH_TEST_QUEUE", default="alloy_oauth_tests") + (
    f"_{env('PYTEST_XDIST_WORKER', default='')}" if env("PYTEST_XDIST_WORKER", default="")
    else "")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Subprocesses of the concurrency tests receive their settings through the environment.
ALLOY_OAUTH = env.json("ALLOY_OAUTH_JSON", default={})
