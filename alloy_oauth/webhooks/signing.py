"""Signing deliveries, Stripe's way: HMAC-SHA256 with the endpoint's secret over
``"{timestamp}.{body}"``, sent as ``Alloy-OAuth-Signature: t=<timestamp>,v1=<hex>``.

While an endpoint's secret is being replaced, a delivery carries one ``v1=`` per secret (the
new one first): the receiver accepts a delivery when any of them matches its secret, so it
can switch at its own pace. The timestamp is the attempt's (every retry is signed anew),
and a receiver refuses deliveries older than its replay window (:data:`TOLERANCE`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

from django.views.decorators.debug import sensitive_variables

__all__ = ["verify", "signature"]

SIGNATURE_HEADER = "Alloy-OAuth-Signature"
#: The event's id: the same for every attempt and every endpoint; deduplicate on it.
EVENT_ID_HEADER = "Alloy-OAuth-Event-Id"
EVENT_TYPE_HEADER = "Alloy-OAuth-Event"
#: Seconds a receiver should accept a signature for (the replay window).
TOLERANCE = 300


@sensitive_variables()
def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@sensitive_variables()
def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>[,v1=<hex>]``: one signature per secret."""
    return ",".join([f"t={timestamp}",
                     *(f"v1={signature(secret, timestamp, body)}" for secret in secrets)])


@sensitive_variables()
def verify(secret: str, header: str, body: bytes, *, tolerance: int = TOLERANCE,
           now: float | None = None) -> bool:
    """Whether ``body`` (the raw request body) was signed with ``secret`` less than
    ``tolerance`` seconds ago, as ``header`` (the ``Alloy-OAuth-Signature`` value) says. The
    same as the snippet in ``docs/events.md``, for receivers that can import alloy_oauth."""
    parts = [part.partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in parts if key.strip() == "t"]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit():
        return False
    timestamp = int(timestamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, value.strip())
               for key, _, value in parts if key.strip() == "v1")
