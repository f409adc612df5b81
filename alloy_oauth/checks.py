"""System checks (``manage.py check``). Every message has an id, listed in ``docs/checks.md``.

- ``alloy_oauth.E001`` / ``W001``: ``FERNET_KEYS`` is not set (error with DEBUG off).
- ``alloy_oauth.E005``: ``FERNET_KEYS`` is set but unusable (not a list, empty, a blank key).
- ``alloy_oauth.W006``: a key of ``FERNET_KEYS`` is too short to resist guessing.
- ``alloy_oauth.E002``: ``ALLOY_OAUTH`` is not a dict.
- ``alloy_oauth.E003``: an ``ALLOY_OAUTH`` value is invalid.
- ``alloy_oauth.W002``: ``ALLOY_OAUTH`` has a key this version does not know.
- ``alloy_oauth.E004``: sessions are not enabled (the callback is bound to the browser session).
- ``alloy_oauth.W003``: ``SESSION_COOKIE_SAMESITE = "Strict"`` drops the session on the callback.
- ``alloy_oauth.W004``: a connector URL is not https outside DEBUG/loopback (database check).
- ``alloy_oauth.W005``: no ``CALLBACK_BASE_URL`` while ``ALLOWED_HOSTS`` accepts any host.
- ``alloy_oauth.W007``: an active connector is not validated (never, or not since its last
  OAuth change), so end users are not offered it (database check).
- ``alloy_oauth.W008``: an API key, Basic or Bearer connector has no test request, so
  entered secrets are stored unchecked (database check).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connections

from . import auth_types, connection_params
from .conf import DEFAULTS, SETTINGS, user_settings
from .protocol import insecure_url_problem

FERNET_KEYS_MISSING = (
    "FERNET_KEYS is not set, so tokens and client secrets are encrypted with a key derived "
    "from SECRET_KEY: rotating SECRET_KEY would make every stored token unreadable."
)
FERNET_KEYS_HINT = (
    "Set FERNET_KEYS = [<a long random key>] in your settings (keep it out of version control); "
    "the first key encrypts, all of them decrypt. Make one with: python -c \"import secrets; "
    "print(secrets.token_urlsafe(32))\". See docs/security.md."
)
#: Keys are stretched with HKDF, not a slow hash: a short one can be guessed offline.
MIN_KEY_LENGTH = 32


def register() -> None:
    checks.register(check_fernet_keys, checks.Tags.security)
    checks.register(check_settings)
    checks.register(check_sessions)
    checks.register(check_connector_urls, checks.Tags.database)
    checks.register(check_connectors_validated, checks.Tags.database)
    checks.register(check_entered_secrets_checked, checks.Tags.database)


def check_fernet_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    keys = getattr(settings, "FERNET_KEYS", None)
    if keys is None:  # only then does fernet_fields fall back to SECRET_KEY
        if settings.DEBUG:
            return [checks.Warning(FERNET_KEYS_MISSING, hint=FERNET_KEYS_HINT,
                                   id="alloy_oauth.W001")]
        return [checks.Error(FERNET_KEYS_MISSING, hint=FERNET_KEYS_HINT, id="alloy_oauth.E001")]
    if not isinstance(keys, (list, tuple)):
        return [checks.Error(
            f"FERNET_KEYS must be a list of keys, not a {type(keys).__name__}: a string would "
            "be read as one key per character.", hint=FERNET_KEYS_HINT, id="alloy_oauth.E005")]
    if not keys:
        return [checks.Error(
            "FERNET_KEYS is an empty list: no token or client secret can be encrypted or "
            "decrypted.", hint=FERNET_KEYS_HINT, id="alloy_oauth.E005")]
    messages: list[checks.CheckMessage] = []
    hkdf = getattr(settings, "FERNET_USE_HKDF", True)
    for index, key in enumerate(keys):
        if not isinstance(key, (str, bytes)) or not key.strip():
            messages.append(checks.Error(
                f"FERNET_KEYS[{index}] is {'empty' if isinstance(key, (str, bytes)) else repr(key)}"
                " (an unset environment variable?): it would be used as a key.",
                hint=FERNET_KEYS_HINT, id="alloy_oauth.E005"))
        elif not hkdf and not _is_fernet_key(key):
            messages.append(checks.Error(
                f"FERNET_KEYS[{index}] is not a Fernet key, which FERNET_USE_HKDF = False "
                "requires (32 url-safe base64-encoded bytes).",
                hint="Make one with: python -c \"from cryptography.fernet import Fernet; "
                     "print(Fernet.generate_key().decode())\".", id="alloy_oauth.E005"))
        elif hkdf and len(key) < MIN_KEY_LENGTH:
            messages.append(checks.Warning(
                f"FERNET_KEYS[{index}] is only {len(key)} characters long: a short key can be "
                "guessed offline by anyone who obtains the encrypted values.",
                hint=f"Use at least {MIN_KEY_LENGTH} random characters; rotate with manage.py "
                     "alloy_oauth_rotate_keys (docs/security.md).", id="alloy_oauth.W006"))
    return messages


def _is_fernet_key(key: str | bytes) -> bool:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    raw = getattr(settings, "ALLOY_OAUTH", None)
    if raw is not None and not isinstance(raw, dict):
        return [checks.Error(
            "ALLOY_OAUTH must be a dict.", hint="See docs/configuration.md.", id="alloy_oauth.E002",
        )]
    values = user_settings()
    messages: list[checks.CheckMessage] = [
        checks.Warning(
            f"ALLOY_OAUTH has an unknown key {key!r}; it is ignored.",
            hint="Known keys: " + ", ".join(sorted(DEFAULTS)) + ".",
            id="alloy_oauth.W002",
        )
        for key in sorted(set(values) - set(DEFAULTS))
    ]
    invalid = set()
    for setting in SETTINGS:
        problem = setting.name in values and setting.problem(values[setting.name])
        if problem:
            invalid.add(setting.name)
            messages.append(checks.Error(
                f"ALLOY_OAUTH[{setting.name!r}] {problem}.",
                hint=f"{setting.help} For example {setting.example or setting.default!r}.",
                id="alloy_oauth.E003",
            ))
    lease, timeout = (values.get(k, DEFAULTS[k]) for k in ("LEASE_SECONDS", "HTTP_TIMEOUT"))
    if not invalid & {"LEASE_SECONDS", "HTTP_TIMEOUT"} and lease < 4 * timeout:
        messages.append(checks.Error(
            f"ALLOY_OAUTH['LEASE_SECONDS'] ({lease}) must be at least 4 x HTTP_TIMEOUT "
            f"({timeout}): a refresh lease must outlive a whole token request (HTTP_TIMEOUT "
            "is its total deadline) even when an extension comes late, or another worker could "
            "send the same refresh token, and providers that rotate refresh tokens revoke the "
            "whole grant when one is used twice.",
            hint=f"Raise LEASE_SECONDS to {4 * timeout:g} or more, or lower HTTP_TIMEOUT.",
            id="alloy_oauth.E003",
        ))
    unset = values.get("CALLBACK_BASE_URL") in (None, "")  # "": an unset environment variable
    if unset and "*" in (getattr(settings, "ALLOWED_HOSTS", None) or []):
        messages.append(checks.Warning(
            "ALLOWED_HOSTS accepts any host and ALLOY_OAUTH['CALLBACK_BASE_URL'] is not set: "
            "the callback URL sent to providers is built from the request's Host header.",
            hint='Set CALLBACK_BASE_URL to the public address, e.g. "https://app.example.com".',
            id="alloy_oauth.W005",
        ))
    return messages


def check_sessions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    middleware = getattr(settings, "MIDDLEWARE", None) or []
    if not apps.is_installed("django.contrib.sessions") or not any(
        "SessionMiddleware" in str(name) for name in middleware
    ):
        messages.append(checks.Error(
            "alloy_oauth needs django.contrib.sessions and SessionMiddleware: every "
            "authorization is bound to the browser session that started it.",
            id="alloy_oauth.E004",
        ))
    if str(getattr(settings, "SESSION_COOKIE_SAMESITE", "Lax")).lower() == "strict":
        messages.append(checks.Warning(
            "SESSION_COOKIE_SAMESITE is 'Strict': browsers do not send the session cookie on the "
            "provider's redirect back to the callback, so every connection fails.",
            hint="Use 'Lax' (Django's default).",
            id="alloy_oauth.W003",
        ))
    return messages


def _connectors(databases: Any, *fields: str) -> Iterator[Any]:
    """Each connector of each database the check command was given (with ``fields`` only),
    skipping a database whose tables are not there yet."""
    from .models import Connector

    for alias in databases or ():
        try:
            if Connector._meta.db_table not in connections[alias].introspection.table_names():
                continue
            found = list(Connector.objects.using(alias).only(*fields))
        except DatabaseError:
            continue
        yield from found


def check_connector_urls(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Runs only when the check command is given databases (``check --database default``,
    ``migrate``): the connectors live in the database."""
    from .models import Connector

    messages: list[checks.CheckMessage] = []
    for connector in _connectors(databases, "slug", *Connector.URL_FIELDS):
        for field in Connector.URL_FIELDS:
            url = connection_params.sample_url(getattr(connector, field))
            problem = url and insecure_url_problem(url, allow_http=settings.DEBUG)
            if problem:
                messages.append(checks.Warning(
                    f"Connector {connector.slug!r}: {field} {problem}.",
                    hint="Tokens and secrets would travel in clear text. Use the https URL "
                         "the provider documents.",
                    obj=connector,
                    id="alloy_oauth.W004",
                ))
    return messages


def check_connectors_validated(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Active connectors not validated (since their last OAuth change): end users are not offered them
    (docs/admin.md, "Which connectors end users see"). A database check, like W004."""
    return [checks.Warning(
        f"Connector {connector.slug!r} is active but not validated (never, or not since its "
        "last OAuth change), so end users are not offered it.",
        hint="Open it in the admin and press “Validate credential”, then Save. Changing an "
             "OAuth field (URLs, client ID or secret, scope, …) needs a new validation too.",
        obj=connector,
        id="alloy_oauth.W007",
    ) for connector in _connectors(databases, "slug", "is_active", "validated_at")
        if connector.is_active and connector.validated_at is None]


def check_entered_secrets_checked(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """API key, Basic and Bearer connectors without a test request: a secret is checked with
    that request before it is stored (docs/auth-types.md); without one, a typo is stored as
    given and only the host's first API call finds it. A database check, like W004."""
    return [checks.Warning(
        f"Connector {connector.slug!r} ({connector.get_auth_type_display()}) has no test "
        "request: the secrets operators and end users enter are stored without being checked.",
        hint="Set its API base URL and test request path (a GET the API answers with 2xx for "
             "a valid secret and 401/403 for a wrong one, e.g. /me), and the statuses that "
             "mean valid if they are not below 400.",
        obj=connector,
        id="alloy_oauth.W008",
    ) for connector in _connectors(databases, "slug", "auth_type", "api_base_url",
                                   "test_request_path")
        if connector.auth_type in auth_types.ENTERED_TYPES
        and not (connector.api_base_url and connector.test_request_path)]
