"""Keeping secret values out of text that leaves the process (pages, logs, ``last_error``)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
#: Values shorter than this are too common to be worth replacing (and are not real secrets).
MIN_SECRET_LENGTH = 4


def scrub(text: str, secret_values: Iterable[str | None] = ()) -> str:
    """``text`` with every occurrence of every secret value replaced by ``[redacted]``, and
    every control or other non-printable character by a space.

    Providers sometimes echo what they were sent (``"invalid code: abc…"``), also as it went
    over the wire, percent-encoded (a Google refresh token has slashes); and they send what
    they like: a NUL cannot be stored in a PostgreSQL text column, a newline would forge a log
    line. Anything built from a provider's answer goes through here before it is shown, logged
    or stored.
    """
    secrets = {form for v in secret_values if v and len(v) >= MIN_SECRET_LENGTH
               for form in (v, quote(v, safe=""), quote_plus(v))}
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text if text.isprintable() else "".join(c if c.isprintable() else " " for c in text)


def last_four(value: str | None) -> str:
    """What an admin page may show of a token: whether it is set and its last 4 characters."""
    if not value:
        return ""
    return "…" + value[-4:] if len(value) > 12 else "…"
