"""The ``ALLOY_OAUTH`` settings dict.

Every value is read from ``django.conf.settings`` at the moment it is used, so
``override_settings(ALLOY_OAUTH={...})`` works in tests and nothing needs reloading.
Keys left out of the dict take their value from :data:`DEFAULTS`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds before a token's expiry at which it is refreshed (a connector may override it).
    "REFRESH_LEAD_TIME": 300,
    # Seconds a pending authorization (the state sent to the provider) stays valid.
    "STATE_TTL": 600,
    # Seconds one request to a provider may take in all (token, refresh, revocation, the
    # pre-flight's probe, Validate's test request): connecting, sending, the status line, the
    # headers and the body, however slowly the provider sends them.
    "HTTP_TIMEOUT": 10,
    # Seconds a refresh lease lasts unless its holder extends it (it does while it waits for
    # the provider); a worker that dies holding one delays the next refresh by at most this
    # long. At least 4 x HTTP_TIMEOUT.
    "LEASE_SECONDS": 60,
    # Seconds between two sweeps (the beat entry of alloy_oauth.beat.beat_schedule()).
    "SWEEP_INTERVAL": 60,
    # Credential ids per message of the sweep (and fetched per round trip): a batch task
    # refreshes them with REFRESH_CONCURRENCY requests in flight.
    "SWEEP_BATCH_SIZE": 500,
    # Token requests one batch task keeps in flight at once (threads of its worker process;
    # each holds an HTTP connection to the provider, none a database connection).
    "REFRESH_CONCURRENCY": 100,
    # Consecutive failed refreshes (timeouts, 5xx, 429, garbage) after which a credential
    # stops being retried and is marked "error".
    "MAX_REFRESH_FAILURES": 8,
    # Backoff after the n-th consecutive failure: RETRY_BACKOFF * 2**(n-1) seconds (with
    # jitter), at most RETRY_BACKOFF_MAX, and never sooner than the provider's Retry-After.
    "RETRY_BACKOFF": 30,
    "RETRY_BACKOFF_MAX": 3600,
    # A credential whose refresh token expires within this many seconds is flagged: its end
    # user should reconnect (the Connections page and the admin say so).
    "REFRESH_TOKEN_EXPIRY_WARNING": 7 * 24 * 3600,
    # Pending authorizations one browser session may have at once (abuse limit).
    "MAX_PENDING_AUTHORIZATIONS": 10,
    # Seconds a headless connect link (alloy_oauth.headless.connect_url) stays valid.
    "CONNECT_LINK_MAX_AGE": 600,
    # Absolute base URL ("https://app.example.com") used to build the callback URL instead of
    # the request's host, for sites behind a proxy or for callbacks built outside a request.
    "CALLBACK_BASE_URL": None,
    # Attempts of one webhook delivery (the first included) before it is marked failed.
    "WEBHOOK_MAX_ATTEMPTS": 10,
    # Backoff after the n-th failed attempt: WEBHOOK_RETRY_BACKOFF * 2**(n-1) seconds (with
    # jitter), at most 6 hours; 10 attempts span about 4 hours.
    "WEBHOOK_RETRY_BACKOFF": 30,
    # Deliveries one endpoint may have pending; events beyond are recorded as dropped (a dead
    # endpoint must not fill the broker or the database).
    "WEBHOOK_MAX_PENDING": 1000,
    # Networks (CIDR strings) webhook URLs may point into although they are not public
    # addresses (your own services on a private network). Loopback, private, link-local and
    # other non-public addresses are refused otherwise, unless DEBUG is on.
    "WEBHOOK_ALLOWED_NETWORKS": [],
    # Seconds finished webhook deliveries are kept (the sweep deletes older ones).
    "WEBHOOK_RETENTION": 30 * 24 * 3600,
    # A bearer token that lets a scraper read alloy_oauth.metrics.metrics_view (staff users
    # may read it anyway); None: staff only.
    "METRICS_TOKEN": None,
}


class AppSettings:
    """One property per setting; see ``docs/configuration.md`` for the reference."""

    def _get(self, name: str) -> Any:
        return user_settings().get(name, DEFAULTS[name])

    @property
    def REFRESH_LEAD_TIME(self) -> int:
        return int(self._get("REFRESH_LEAD_TIME"))

    @property
    def STATE_TTL(self) -> int:
        return int(self._get("STATE_TTL"))

    @property
    def HTTP_TIMEOUT(self) -> float:
        return float(self._get("HTTP_TIMEOUT"))

    @property
    def LEASE_SECONDS(self) -> int:
        return int(self._get("LEASE_SECONDS"))

    @property
    def SWEEP_INTERVAL(self) -> int:
        return int(self._get("SWEEP_INTERVAL"))

    @property
    def SWEEP_BATCH_SIZE(self) -> int:
        return int(self._get("SWEEP_BATCH_SIZE"))

    @property
    def REFRESH_CONCURRENCY(self) -> int:
        return int(self._get("REFRESH_CONCURRENCY"))

    @property
    def MAX_REFRESH_FAILURES(self) -> int:
        return int(self._get("MAX_REFRESH_FAILURES"))

    @property
    def RETRY_BACKOFF(self) -> int:
        return int(self._get("RETRY_BACKOFF"))

    @property
    def RETRY_BACKOFF_MAX(self) -> int:
        return int(self._get("RETRY_BACKOFF_MAX"))

    @property
    def REFRESH_TOKEN_EXPIRY_WARNING(self) -> int:
        return int(self._get("REFRESH_TOKEN_EXPIRY_WARNING"))

    @property
    def MAX_PENDING_AUTHORIZATIONS(self) -> int:
        return int(self._get("MAX_PENDING_AUTHORIZATIONS"))

    @property
    def CONNECT_LINK_MAX_AGE(self) -> int:
        return int(self._get("CONNECT_LINK_MAX_AGE"))

    @property
    def CALLBACK_BASE_URL(self) -> str | None:
        value = self._get("CALLBACK_BASE_URL")
        return value.rstrip("/") if value else None

    @property
    def WEBHOOK_MAX_ATTEMPTS(self) -> int:
        return int(self._get("WEBHOOK_MAX_ATTEMPTS"))

    @property
    def WEBHOOK_RETRY_BACKOFF(self) -> float:
        return float(self._get("WEBHOOK_RETRY_BACKOFF"))

    @property
    def WEBHOOK_MAX_PENDING(self) -> int:
        return int(self._get("WEBHOOK_MAX_PENDING"))

    @property
    def WEBHOOK_ALLOWED_NETWORKS(self) -> list[str]:
        return list(self._get("WEBHOOK_ALLOWED_NETWORKS") or [])

    @property
    def WEBHOOK_RETENTION(self) -> int:
        return int(self._get("WEBHOOK_RETENTION"))

    @property
    def METRICS_TOKEN(self) -> str | None:
        return self._get("METRICS_TOKEN") or None


def user_settings() -> dict[str, Any]:
    """The raw ``ALLOY_OAUTH`` dict as the project wrote it (for the system checks)."""
    value = getattr(settings, "ALLOY_OAUTH", None)
    return value if isinstance(value, dict) else {}


app_settings = AppSettings()
