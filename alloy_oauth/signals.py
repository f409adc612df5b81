"""Public signals (documented in ``docs/signals.md``).

Each is sent with ``sender=Credential`` and ``credential=<the instance>``, after the change
is committed; none carries a token value.

- ``credential_connected(credential, created)``: an end user completed the authorization
  flow; ``created`` is False when an existing credential was reconnected.
- ``credential_refreshed(credential)``: new tokens were stored.
- ``credential_refresh_failed(credential, error, message, will_retry)``: a refresh failed;
  ``error`` is the kind (``transient``, ``malformed``, ``client``, ``rejected``,
  ``configuration``), ``will_retry`` tells whether it will be tried again by itself.
- ``credential_reauth_required(credential, reason)``: the grant is gone; the end user must
  connect again.
"""

from django.dispatch import Signal

credential_connected = Signal()
credential_refreshed = Signal()
credential_refresh_failed = Signal()
credential_reauth_required = Signal()
