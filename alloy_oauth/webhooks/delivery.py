"""One attempt of one webhook delivery, and the URL policy of endpoints.

An attempt first *claims* the delivery with one conditional UPDATE (pending, and its next
attempt has come, by the database's clock), which moves ``next_attempt_at`` a lease period
ahead and counts the attempt: of two messages for one delivery (a retry and the sweep's
rescue, say), one sends. A worker that dies mid-attempt leaves the claim to run out, and the
sweep enqueues the delivery again. The outcome is written only while the claim is still the
one taken (an operator's re-send starts a new count).

2xx is delivered; anything else (a redirect is not followed), a timeout or a refused
connection is tried again after a backoff, until ``WEBHOOK_MAX_ATTEMPTS``. An endpoint that
is disabled, whose URL the policy refuses, or whose secret cannot be decrypted fails the
delivery at once: nothing unsigned, nothing to a private address.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import router, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import __version__, metrics, protocol
from ..conf import app_settings
from ..fields import is_undecryptable
from ..models import WebhookDelivery, WebhookEndpoint
from ..querysets import DatabaseNow
from . import events, signing

logger = logging.getLogger(__name__)

#: The longest wait between two attempts.
MAX_BACKOFF = 6 * 3600
USER_AGENT = f"alloy-oauth/{__version__} (webhooks)"


# --- the URL policy --------------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why deliveries may not go to ``url``, or ``None`` when they may.

    The provider URLs' rule first (https; plain http only to a loopback host or with DEBUG
    on), then, unless DEBUG is on, every address the host resolves to must pass
    :func:`address_problem`. Checked when the endpoint is saved and before each attempt, for a
    clear message; what protects is the same rule applied again when connecting, to the
    addresses actually connected to (``address_policy`` of
    :func:`~alloy_oauth.protocol.send_request`).
    """
    problem = protocol.insecure_url_problem(url, allow_http=settings.DEBUG)
    if problem or settings.DEBUG:
        return problem
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port,
                                                               type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError, ValueError):
        return "has a host name that does not resolve"
    for text in sorted(addresses):
        problem = address_problem(text)
        if problem:
            return problem
    return None


def address_problem(text: str) -> str | None:
    """Why no connection may go to the IP address ``text``, or ``None`` when it may: it must be
    a public address (:attr:`ipaddress.IPv4Address.is_global`: no loopback, private,
    link-local — the cloud metadata service at 169.254.169.254 among them —, shared, reserved
    or multicast address) or lie in ``WEBHOOK_ALLOWED_NETWORKS``, so that an operator cannot
    make the workers POST into your own network. Anything goes with DEBUG on (a developer's
    machine)."""
    if settings.DEBUG:
        return None
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    public = address.is_global and not address.is_multicast  # 224/4 counts as global
    allowed = [ipaddress.ip_network(network, strict=False)
               for network in app_settings.WEBHOOK_ALLOWED_NETWORKS]
    if public or any(address in network for network in allowed):
        return None
    return (f"points to {address}, which is not a public address (list its network "
            f"in WEBHOOK_ALLOWED_NETWORKS to allow it)")


# --- one attempt ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempted:
    #: ``succeeded``, ``retry``, ``failed``, or ``not_due`` (claimed by someone else, not
    #: pending any more, or gone).
    result: str
    #: With ``retry``: seconds until the next attempt.
    retry_in: float | None = None


def attempt(delivery_id: int) -> Attempted:
    """Claim the delivery, send it, record the outcome. Never raises for the endpoint's
    failure: that is recorded and retried."""
    deliveries = WebhookDelivery.objects.using(router.db_for_write(WebhookDelivery))
    claimed = deliveries.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=DatabaseNow(),
    ).update(next_attempt_at=DatabaseNow() + timedelta(seconds=app_settings.LEASE_SECONDS),
             attempts=F("attempts") + 1)
    if not claimed:
        return Attempted("not_due")
    delivery = deliveries.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    refusal = _refusal(endpoint)
    if refusal:
        return _record(delivery, WebhookDelivery.Status.FAILED, None, refusal)
    code, error = _send(endpoint, delivery)
    if code is not None and 200 <= code < 300:
        return _record(delivery, WebhookDelivery.Status.SUCCEEDED, code, "")
    error = error or f"The endpoint answered HTTP {code}."
    if delivery.attempts >= app_settings.WEBHOOK_MAX_ATTEMPTS:
        return _record(delivery, WebhookDelivery.Status.FAILED, code,
                       f"{error} Gave up after {delivery.attempts} attempts.")
    delay = backoff(delivery.attempts)
    return _record(delivery, WebhookDelivery.Status.PENDING, code,
                   f"{error} Trying again in {int(delay)} s (attempt {delivery.attempts}).",
                   retry_in=delay)


def _refusal(endpoint: WebhookEndpoint) -> str:
    if not endpoint.is_active:
        return "The endpoint is disabled."
    if is_undecryptable(endpoint.secret) or not endpoint.secret:
        return "The endpoint's signing secret cannot be decrypted with FERNET_KEYS."
    problem = url_problem(endpoint.url)
    return f"The endpoint's URL {problem}." if problem else ""


@sensitive_variables()
def _send(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[int | None, str]:
    body = payload_body(delivery.payload)
    secrets = [endpoint.secret]
    if (endpoint.previous_secret and endpoint.previous_secret_expires_at
            and endpoint.previous_secret_expires_at > timezone.now()):
        secrets.append(endpoint.previous_secret)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.SIGNATURE_HEADER: signing.signature_header(secrets, int(time.time()), body),
        signing.EVENT_ID_HEADER: str(delivery.event_id),
        signing.EVENT_TYPE_HEADER: delivery.event,
    }
    return _post(endpoint.url, body, headers)


def payload_body(payload: dict[str, Any]) -> bytes:
    """The bytes sent and signed: compact JSON, ASCII only."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """POST ``body`` through the transport of provider calls (one total deadline,
    ``HTTP_TIMEOUT``, for connecting, sending and the answer's status and headers; no
    redirects; the answer's body is not read; connected only to addresses
    :func:`address_problem` allows) and return the status, or ``None`` and what
    went wrong when no answer came."""
    try:
        answer = protocol.send_request("POST", url, timeout=app_settings.HTTP_TIMEOUT,
                                       allow_http=settings.DEBUG, what="webhook", data=body,
                                       headers=headers, read_body=False,
                                       address_policy=address_problem)
    except protocol.OAuthError as error:
        return None, error.message
    return answer.status, ""


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, with
    jitter (half of it random), at most :data:`MAX_BACKOFF`."""
    ceiling = min(MAX_BACKOFF, app_settings.WEBHOOK_RETRY_BACKOFF * 2 ** (attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _record(delivery: WebhookDelivery, status: str, code: int | None, error: str,
            retry_in: float | None = None) -> Attempted:
    now = timezone.now()
    written = WebhookDelivery.objects.using(router.db_for_write(WebhookDelivery)).filter(
        pk=delivery.pk, status=WebhookDelivery.Status.PENDING, attempts=delivery.attempts,
    ).update(
        status=status, response_code=code, last_error=error[:1000],
        next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else None,
        delivered_at=now if status == WebhookDelivery.Status.SUCCEEDED else None,
    )
    result = {WebhookDelivery.Status.SUCCEEDED: "succeeded",
              WebhookDelivery.Status.PENDING: "retry"}.get(status, "failed")
    metrics.count_webhook_delivery(delivery.event, result)
    log = logger.info if result == "succeeded" else logger.warning
    log("Webhook delivery %s (%s, event %s) to endpoint %s: %s%s", delivery.pk, delivery.event,
        delivery.event_id, delivery.endpoint_id, result,
        (f"; {error}" if error else "") + ("" if written else " (re-sent meanwhile)"))
    return Attempted(result, retry_in)


# --- re-sending, rescuing, forgetting ---------------------------------------------------------


def resend(ids: list[int]) -> int:
    """Send these deliveries again (whatever their status), as new: attempts from zero, now.
    The event id stays, so a receiver that has it already can ignore it."""
    alias = router.db_for_write(WebhookDelivery)
    with transaction.atomic(using=alias):
        count = WebhookDelivery.objects.using(alias).filter(pk__in=ids).update(
            status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(),
            last_error="", delivered_at=None)
        for pk in ids:
            transaction.on_commit(lambda pk=pk: events.enqueue(pk), using=alias, robust=True)
    return count


def overdue(now: Any = None) -> list[int]:
    """Pending deliveries whose next attempt came more than a sweep interval ago: their
    message was lost (a broker that refused it, a worker that died)."""
    now = now or timezone.now()
    return list(WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lte=now - timedelta(seconds=app_settings.SWEEP_INTERVAL),
    ).order_by("next_attempt_at").values_list("pk", flat=True))


def purge(now: Any = None) -> int:
    """Delete finished deliveries older than ``WEBHOOK_RETENTION``."""
    now = now or timezone.now()
    deleted, _ = WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.PENDING).filter(
        created_at__lt=now - timedelta(seconds=app_settings.WEBHOOK_RETENTION)).delete()
    return deleted
