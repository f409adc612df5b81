"""Public signals (documented in ``docs/signals.md``).

Each credential signal is sent with ``sender=Credential`` and ``credential=<the instance>``,
after the change is committed; none carries a token value.

- ``credential_connected(credential, created)``: an end user completed the authorization
  flow; ``created`` is False when an existing credential was reconnected.
- ``credential_refreshed(credential)``: new tokens were stored.
- ``credential_refresh_failed(credential, error, message, will_retry)``: a refresh failed;
  ``error`` is the kind (``transient``, ``malformed``, ``client``, ``rejected``,
  ``configuration``), ``will_retry`` tells whether it will be tried again by itself.
- ``credential_recovered(credential, failing_for, failures)``: a credential that had failed
  was refreshed again (after ``credential_refreshed``); ``failing_for`` is how long it had
  been failing (a ``timedelta``, ``None`` when unknown), ``failures`` how many times in a row.
- ``credential_reauth_required(credential, reason)``: the grant is gone; the end user must
  connect again.
- ``credential_revoked(credential)``: the credential was revoked and its tokens deleted.

One connector signal, sent with ``sender=Connector``:

- ``connector_validation_failed(connector, message)``: Validate credential (the pre-flight or
  the operator's round trip) failed for the connector's saved configuration (not for edits
  still unsaved on the page); ``message`` says why, without a secret.
"""

import logging
from typing import Any

from django.dispatch import Signal

__all__ = [
    "credential_connected", "credential_refreshed", "credential_refresh_failed",
    "credential_reauth_required", "credential_revoked", "credential_recovered",
    "connector_validation_failed",
]

logger = logging.getLogger(__name__)

credential_connected = Signal()
credential_refreshed = Signal()
credential_refresh_failed = Signal()
credential_recovered = Signal()
credential_reauth_required = Signal()
credential_revoked = Signal()
connector_validation_failed = Signal()


def send(signal: Signal, credential: Any, **kwargs: Any) -> None:
    """Send ``signal`` for ``credential``. A receiver that raises is logged, not propagated:
    the change it reports has happened, and the caller (a refresh, a callback) must not fail
    because of a receiver."""
    from .models import Credential

    _send_robust(signal, Credential, credential=credential, **kwargs)


def send_validation_failed(connector: Any, message: str) -> None:
    """``connector_validation_failed``, when there is a failure to report (``message``)."""
    from .models import Connector

    if message:
        _send_robust(connector_validation_failed, Connector, connector=connector,
                     message=message)


def _send_robust(signal: Signal, sender: Any, **kwargs: Any) -> None:
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error("A receiver of an alloy_oauth signal failed: %r raised %s.",
                         receiver, type(result).__name__, exc_info=result)
