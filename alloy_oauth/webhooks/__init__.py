"""Events out of the process: signed webhooks (``docs/events.md``).

- :mod:`.events`: the event types, their payloads (ids and statuses, never a secret), and
  turning the app's signals into deliveries, one per endpoint that wants the event;
- :mod:`.signing`: the signature header (HMAC-SHA256 over ``"{timestamp}.{body}"``) and
  :func:`verify` for receivers written in Python;
- :mod:`.delivery`: one attempt of one delivery (the Celery task
  ``alloy_oauth.tasks.deliver_webhook`` runs it), the URL policy, re-sending.

Delivery is at least once: a receiver deduplicates on the event id (the
``Alloy-OAuth-Event-Id`` header, and ``id`` in the signed body).
"""

from .events import EVENT_TYPES
from .signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TOLERANCE, verify

__all__ = ["EVENT_ID_HEADER", "EVENT_TYPES", "EVENT_TYPE_HEADER", "SIGNATURE_HEADER",
           "TOLERANCE", "verify"]
