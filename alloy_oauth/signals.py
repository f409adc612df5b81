"""Public signals. Each is sent with ``sender=Credential`` and ``credential=<the instance>``;
none carries a token value. Receivers run after the change is committed.

- ``credential_connected(credential, created)``: an end user completed the authorization flow;
  ``created`` is False when an existing credential was reconnected.
"""

from django.dispatch import Signal

credential_connected = Signal()
