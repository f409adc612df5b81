"""The ``ALLOY_OAUTH`` settings dict.

Each setting is declared once, in :data:`SETTINGS`: its name, its default, how the app reads
it and what makes a value invalid. ``app_settings.<NAME>`` reads it, the system check
``alloy_oauth.E003`` reports an invalid value, ``W002`` an unknown key, and
``docs/configuration.md`` documents each one (a test keeps the three in step).

Every value is read from ``django.conf.settings`` at the moment it is used, so
``override_settings(ALLOY_OAUTH={...})`` works in tests and nothing needs reloading.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from .protocol import insecure_url_problem


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    #: The value as the app uses it, from the value as written.
    read: Callable[[Any], Any]
    #: Why a written value is refused (a phrase after "ALLOY_OAUTH['NAME']"), or None.
    problem: Callable[[Any], str | None]
    #: What it is (docs/configuration.md says more).
    help: str
    #: A valid value, for the check's hint (the default when not given).
    example: str = ""


# --- what a value must be -------------------------------------------------------------------


def _positive(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return f"must be a positive number, not {value!r}"
    return None


def _base_url(value: Any) -> str | None:
    if value in (None, ""):  # "": an unset environment variable
        return None
    if not isinstance(value, str):
        return "must be a string"
    parts = urlsplit(value)
    # The rule every provider URL follows too: https, or http to loopback or with DEBUG.
    return insecure_url_problem(value, allow_http=settings.DEBUG) or (
        "must be a scheme and a host, without a path, query or fragment"
        if parts.path not in ("", "/") or parts.query or parts.fragment else None)


def _networks(value: Any) -> str | None:
    def network(item: Any) -> bool:
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            return False
        return True

    if not isinstance(value, (list, tuple)) or not all(network(item) for item in value):
        return f"must be a list of networks, not {value!r}"
    return None


def _optional_string(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        return f"must be a string or None, not {type(value).__name__}"
    return None


def _seconds(name: str, default: int | float, help: str, read: Callable[[Any], Any] = int
             ) -> Setting:
    return Setting(name, default, read, _positive, help)


# --- the settings ---------------------------------------------------------------------------


SETTINGS: tuple[Setting, ...] = (
    _seconds("REFRESH_LEAD_TIME", 300,
             "Seconds before a token's expiry at which it is refreshed (a connector may "
             "override it)."),
    _seconds("STATE_TTL", 600,
             "Seconds a pending authorization (the state sent to the provider) stays valid."),
    _seconds("HTTP_TIMEOUT", 10,
             "Seconds one request to a provider may take in all (token, refresh, revocation, "
             "the pre-flight's probe, Validate's test request, a webhook, a discovery "
             "document): connecting, "
             "sending, the status line, the headers and the body, however slowly they come.",
             read=float),
    _seconds("LEASE_SECONDS", 60,
             "Seconds a refresh lease lasts unless its holder extends it (it does while it "
             "waits for the provider): a worker that dies holding one delays the next refresh "
             "by at most this long. At least 4 x HTTP_TIMEOUT."),
    _seconds("SWEEP_INTERVAL", 60,
             "Seconds between two sweeps (the beat entry of alloy_oauth.beat.beat_schedule())."),
    _seconds("SWEEP_BATCH_SIZE", 500,
             "Credential ids per message of the sweep (and fetched per round trip): a batch "
             "task refreshes them with REFRESH_CONCURRENCY requests in flight."),
    _seconds("REFRESH_CONCURRENCY", 100,
             "Token requests one batch task keeps in flight at once (threads of its worker "
             "process; each holds an HTTP connection to the provider, none a database "
             "connection)."),
    _seconds("MAX_REFRESH_FAILURES", 8,
             "Consecutive failed refreshes (timeouts, 5xx, 429, garbage) after which a "
             "credential stops being retried and is marked error."),
    _seconds("RETRY_BACKOFF", 30,
             "Backoff after the n-th consecutive failure: RETRY_BACKOFF * 2**(n-1) seconds "
             "(with jitter), at most RETRY_BACKOFF_MAX, never sooner than Retry-After."),
    _seconds("RETRY_BACKOFF_MAX", 3600, "The longest backoff after failed refreshes."),
    _seconds("REFRESH_TOKEN_EXPIRY_WARNING", 7 * 24 * 3600,
             "A credential whose refresh token expires within this many seconds is flagged: "
             "its end user should reconnect."),
    _seconds("MAX_PENDING_AUTHORIZATIONS", 10,
             "Pending authorizations one browser session (and one user) may have at once."),
    _seconds("CONNECT_LINK_MAX_AGE", 600,
             "Seconds a headless connect link (alloy_oauth.headless.connect_url) stays valid."),
    Setting("CALLBACK_BASE_URL", None, lambda value: value.rstrip("/") if value else None,
            _base_url,
            "Scheme and host of the public site, for the callback URL (instead of the "
            "request's host: behind a proxy, or outside a request).",
            example='"https://app.example.com"'),
    _seconds("WEBHOOK_MAX_ATTEMPTS", 10,
             "Attempts of one webhook delivery (the first included) before it is marked "
             "failed."),
    _seconds("WEBHOOK_RETRY_BACKOFF", 30,
             "Backoff after the n-th failed webhook attempt: WEBHOOK_RETRY_BACKOFF * 2**(n-1) "
             "seconds (with jitter), at most 6 hours.", read=float),
    _seconds("WEBHOOK_MAX_PENDING", 1000,
             "Deliveries one endpoint may have pending; events beyond are recorded as "
             "dropped."),
    Setting("WEBHOOK_ALLOWED_NETWORKS", [], lambda value: list(value or []), _networks,
            "Networks (CIDR strings) webhook URLs and the admin's Fill from issuer may point "
            "into although they are not public addresses; others are refused unless DEBUG is "
            "on.",
            example='["10.20.0.0/16", "fd00:1::/64"]'),
    _seconds("WEBHOOK_RETENTION", 30 * 24 * 3600,
             "Seconds finished webhook deliveries are kept (the sweep deletes older ones)."),
    Setting("METRICS_TOKEN", None, lambda value: value or None, _optional_string,
            "A bearer token that lets a scraper read alloy_oauth.metrics.metrics_view (staff "
            "users may read it anyway); None: staff only.", example='"a-long-random-string"'),
)

#: Each setting's default, by name.
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}
_BY_NAME = {setting.name: setting for setting in SETTINGS}


def user_settings() -> dict[str, Any]:
    """The raw ``ALLOY_OAUTH`` dict as the project wrote it (for the system checks)."""
    value = getattr(settings, "ALLOY_OAUTH", None)
    return value if isinstance(value, dict) else {}


class AppSettings:
    """``app_settings.REFRESH_LEAD_TIME`` and so on: each setting of :data:`SETTINGS`, read
    as its declaration says, from the project's ``ALLOY_OAUTH`` or the default."""

    def __getattr__(self, name: str) -> Any:
        try:
            setting = _BY_NAME[name]
        except KeyError:
            raise AttributeError(f"ALLOY_OAUTH has no setting {name!r}.") from None
        return setting.read(user_settings().get(name, setting.default))


app_settings = AppSettings()
