"""Settings of the test project, read from the environment with django-environ.

Variables (all optional; a ``.env`` file at the repository root is read too):
DEBUG, SECRET_KEY, FERNET_KEYS (comma-separated), DATABASE_URL, ALLOWED_HOSTS,
CELERY_BROKER_URL, ALLOY_OAUTH_CALLBACK_BASE_URL, SESSION_COOKIE_NAME, CSRF_COOKIE_NAME,
and the PROVIDER_* variables of the built-in OAuth provider (see ``provider/``).
"""

from pathlib import Path

import environ

from testproject.base_settings import *  # noqa: F403 - the shared project
from testproject.base_settings import DJANGO_APPS, MIDDLEWARE, TEMPLATES, env

REPO_DIR = Path(__file__).resolve().parent.parent
if (REPO_DIR / ".env").is_file():
    env.read_env(REPO_DIR / ".env")
VAR_DIR = Path(env("ALLOY_OAUTH_VAR_DIR", default=str(REPO_DIR / "var")))

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-for-the-testproject-only" if DEBUG else environ.Env.NOTSET)
FERNET_KEYS = env.list("FERNET_KEYS", default=[]) or None
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [*DJANGO_APPS, "oauth2_provider", "testproject.provider", "alloy_oauth"]
# A site on the web: the security headers too.
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", *MIDDLEWARE,
              "django.middleware.clickjacking.XFrameOptionsMiddleware"]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"
TEMPLATES = [{**TEMPLATES[0], "DIRS": [REPO_DIR / "testproject" / "templates"]}]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs the site, the provider, a worker and beat on one SQLite file. In the
    # default (deferred) mode a transaction that reads and then writes while another holds the
    # write lock fails at once with "database is locked"; IMMEDIATE ones wait for the lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(transaction_mode="IMMEDIATE",
                                                          timeout=20)
STATICFILES_DIRS = [REPO_DIR / "testproject" / "static"]
LOGIN_REDIRECT_URL = "/"
# Two instances of this project on one host (the app and the provider, as in the tests)
# must not overwrite each other's cookies: cookies ignore the port.
SESSION_COOKIE_NAME = env("SESSION_COOKIE_NAME", default="sessionid")
CSRF_COOKIE_NAME = env("CSRF_COOKIE_NAME", default="csrftoken")

ALLOY_OAUTH = {
    "CALLBACK_BASE_URL": env("ALLOY_OAUTH_CALLBACK_BASE_URL", default=None),
    "SWEEP_INTERVAL": env.int("ALLOY_OAUTH_SWEEP_INTERVAL", default=60),
    # The connector form links the repository's recipes, which urls.py serves.
    "PROVIDER_RECIPES_URL": "/docs/providers.md",
    # (bench/fleet.py --concurrency)
    **({"REFRESH_CONCURRENCY": env.int("ALLOY_OAUTH_REFRESH_CONCURRENCY")}
       if env("ALLOY_OAUTH_REFRESH_CONCURRENCY", default="") else {}),
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    # kombu's filesystem transport with atomic writes (see testproject/broker.py).
    CELERY_BROKER_TRANSPORT = "testproject.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "processed_folder": str(VAR_DIR / "broker-processed"),
    }

# The built-in OAuth 2.0 provider (django-oauth-toolkit) that plays the third party.
OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("PROVIDER_ACCESS_TOKEN_EXPIRE_SECONDS", default=3600),
    "ROTATE_REFRESH_TOKEN": env.bool("PROVIDER_ROTATE_REFRESH_TOKEN", default=True),
    "REFRESH_TOKEN_REUSE_PROTECTION": env.bool("PROVIDER_REFRESH_TOKEN_REUSE_PROTECTION", default=True),
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": env.int("PROVIDER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS", default=0),
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    "SCOPES": {"read": "Read your profile", "write": "Change your profile"},
    "DEFAULT_SCOPES": ["read"],
}
#: The API key the provider's /provider/api/key/ accepts (tests of API key connectors).
PROVIDER_API_KEY = env("PROVIDER_API_KEY", default="provider-api-key")

if env("PROVIDER_ISSUER", default=""):
    # RFC 9207: the authorization response names its issuer (iss).
    OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"] = env("PROVIDER_ISSUER")
    OAUTH2_PROVIDER["COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS"] = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"alloy_oauth": {"handlers": ["console"], "level": env("ALLOY_OAUTH_LOG_LEVEL", default="INFO")}},
}
