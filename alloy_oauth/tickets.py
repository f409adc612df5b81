"""The browser binding and start tickets: what ties an authorization to the browser that
started it, and proves that a start was asked for on one of this site's pages."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.core import signing

#: Session key of the per-browser secret that pending authorizations are bound to.
BINDING_SESSION_KEY = "alloy_oauth_binding"
#: How long a page's connect button may skip the confirmation (see :func:`issue_ticket`).
START_TICKET_MAX_AGE = 3600


def browser_binding(session: SessionBase, *, create: bool) -> str | None:
    """The hash of this browser session's binding secret (made on first use when ``create``).

    A secret kept *in* the session, rather than the session key, survives key rotation
    (``cycle_key`` on login) and works with every session backend; logging out or in as
    someone else flushes it, which is what we want.
    """
    secret = session.get(BINDING_SESSION_KEY)
    if not secret:
        if not create:
            return None
        secret = secrets.token_urlsafe(32)
        session[BINDING_SESSION_KEY] = secret
    return hashlib.sha256(secret.encode()).hexdigest()


def start_purpose(slug: str, user_pk: Any) -> str:
    """What a start ticket is for: this connector, for this user (a ticket planted in a
    session from before a login is worth nothing to whoever logs in)."""
    return f"authorize:{slug}:{user_pk}"


def issue_ticket(session: SessionBase, purpose: str) -> str:
    """Proof that a page of this site, rendered for this browser session, offers
    ``purpose`` (:func:`start_purpose`).

    Another site can neither read one nor make one, so a start that carries a valid ticket
    was asked for on one of our pages, not by a link from elsewhere (or through the login
    page's ``next``). Signed with the browser binding as salt: it holds no secret.
    """
    binding = browser_binding(session, create=True)
    return signing.dumps(purpose, salt=f"alloy_oauth.ticket:{binding}")


def is_ticket(session: SessionBase, purpose: str, ticket: str, *, max_age: int) -> bool:
    binding = browser_binding(session, create=False)
    if binding is None or not ticket:
        return False
    try:
        return signing.loads(ticket, salt=f"alloy_oauth.ticket:{binding}",
                             max_age=max_age) == purpose
    except signing.BadSignature:
        return False
