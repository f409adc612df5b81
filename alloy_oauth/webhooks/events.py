"""The events sent to webhook endpoints, and how they are queued.

The app's own signals are the source: a receiver of each turns what it reports into an
event (a payload of ids and statuses, never a token, secret or code) and records one
:class:`~alloy_oauth.models.WebhookDelivery` per active endpoint that wants it. Each is
handed to a worker (``alloy_oauth.tasks.deliver_webhook``, the delivery's id only) once the
transaction that recorded it commits. Nothing here waits for an endpoint: a refresh that
fails costs one query when no endpoint is configured, and a few more per endpoint (the
pending count, an INSERT, a broker publish that does not retry). An endpoint that has
``WEBHOOK_MAX_PENDING`` deliveries waiting gets no more: new events for it are recorded as
``dropped`` (and counted), so a dead endpoint fills neither the broker nor the database.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from functools import partial
from collections.abc import Callable
from typing import Any

from django.db import router, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import metrics, signals
from ..conf import app_settings
from ..models import Connector, Credential, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

CONNECTED = "credential.connected"
RECONNECTED = "credential.reconnected"
REFRESH_FAILED = "credential.refresh_failed"
REAUTH_REQUIRED = "credential.reauth_required"
RECOVERED = "credential.recovered"
REVOKED = "credential.revoked"
VALIDATION_FAILED = "connector.validation_failed"

#: Every event type, with what it means (the admin's choices).
EVENT_TYPES = {
    CONNECTED: _("An end user connected an account"),
    RECONNECTED: _("An end user reconnected an account"),
    REFRESH_FAILED: _("A refresh failed (will be retried, or not)"),
    REAUTH_REQUIRED: _("The end user must reconnect"),
    RECOVERED: _("A credential that was failing refreshed again"),
    REVOKED: _("A credential was revoked"),
    VALIDATION_FAILED: _("Validate credential failed for a connector"),
}


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def credential_data(credential: Credential) -> dict[str, Any]:
    """What an event says of a credential: ids, owner, which account (its connection
    parameters and metadata, not secret by declaration) and state. Never a token."""
    return {
        "id": credential.pk,
        "connector": credential.connector.slug,
        "user_id": credential.user_id,
        "external_id": credential.external_id or None,
        "account": credential.account_label or None,
        "connection_config": credential.connection_config or {},
        "metadata": credential.metadata or {},
        "status": credential.status,
        "failure_count": credential.failure_count,
        "expires_at": _time(credential.expires_at),
        "next_refresh_at": _time(credential.next_refresh_at),
        "last_refreshed_at": _time(credential.last_refreshed_at),
    }


def connector_data(connector: Connector) -> dict[str, Any]:
    return {"id": connector.pk, "slug": connector.slug, "name": connector.name}


def emit(event: str, connector: Connector, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Record ``event`` for every active endpoint that wants it for ``connector``, and hand
    each pending delivery to a worker once committed. Returns the deliveries recorded."""
    wanted = _endpoints_wanting(event, connector.pk)
    if not wanted:
        return []
    now = timezone.now()
    event_id = uuid.uuid4()
    payload = {"id": str(event_id), "type": event, "created_at": _time(now), "data": data}
    alias = router.db_for_write(WebhookDelivery)
    deliveries = []
    # A savepoint inside the caller's transaction (a callback under ATOMIC_REQUESTS): a
    # failure here must not break it.
    with transaction.atomic(using=alias):
        for endpoint_id in wanted:
            full = _pending_count(alias, endpoint_id) >= app_settings.WEBHOOK_MAX_PENDING
            delivery = WebhookDelivery.objects.using(alias).create(
                event_id=event_id, event=event, endpoint_id=endpoint_id,
                connector_id=connector.pk, payload=payload, created_at=now,
                status=WebhookDelivery.Status.DROPPED if full else WebhookDelivery.Status.PENDING,
                next_attempt_at=None if full else now,
                last_error=_("%(count)d deliveries to this endpoint were already pending.")
                % {"count": app_settings.WEBHOOK_MAX_PENDING} if full else "",
            )
            deliveries.append(delivery)
            if full:
                logger.warning("Webhook endpoint %s has %s deliveries pending: event %s (%s) "
                               "dropped.", endpoint_id, app_settings.WEBHOOK_MAX_PENDING,
                               event_id, event)
                metrics.count_webhook_delivery(event, "dropped")
            else:
                transaction.on_commit(partial(enqueue, delivery.pk), using=alias, robust=True)
    return deliveries


def _endpoints_wanting(event: str, connector_id: int) -> list[int]:
    rows = (WebhookEndpoint.objects.filter(is_active=True)
            .filter(Q(connectors=None) | Q(connectors=connector_id))
            .values_list("pk", "events"))
    return list(dict.fromkeys(pk for pk, events in rows
                              if isinstance(events, list) and event in events))


def _pending_count(alias: str, endpoint_id: int) -> int:
    """Pending deliveries of the endpoint, counted up to the cap only."""
    return (WebhookDelivery.objects.using(alias).order_by()
            .filter(endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING)
            .values("pk")[:app_settings.WEBHOOK_MAX_PENDING].count())


#: Hands a delivery's id to a worker: ``alloy_oauth.tasks.enqueue_webhook_delivery``, wired
#: by ``connect_receivers()`` (the tasks build on this module, which does not import them).
_enqueue: Callable[[int], None] | None = None


def enqueue(delivery_id: int) -> None:
    """Ask a worker to attempt the delivery (see :data:`_enqueue`)."""
    if _enqueue is None:
        raise RuntimeError("alloy_oauth's webhook receivers are not connected yet (the app's "
                           "ready() connects them).")
    _enqueue(delivery_id)


# --- the app's signals, as events ------------------------------------------------------------


def _credential_event(event: str, credential: Credential, **data: Any) -> None:
    emit(event, credential.connector, {"credential": credential_data(credential), **data})


def _on_connected(sender: Any, credential: Credential, created: bool, **kwargs: Any) -> None:
    _credential_event(CONNECTED if created else RECONNECTED, credential)


def _on_refresh_failed(sender: Any, credential: Credential, error: str, message: str,
                       will_retry: bool, **kwargs: Any) -> None:
    _credential_event(REFRESH_FAILED, credential, error=error, message=message,
                      will_retry=will_retry)


def _on_reauth_required(sender: Any, credential: Credential, reason: str, **kwargs: Any) -> None:
    _credential_event(REAUTH_REQUIRED, credential, reason=reason)


def _on_recovered(sender: Any, credential: Credential, failing_for: Any, failures: int,
                  **kwargs: Any) -> None:
    _credential_event(RECOVERED, credential, failures=failures,
                      failing_seconds=int(failing_for.total_seconds()) if failing_for else None)


def _on_revoked(sender: Any, credential: Credential, **kwargs: Any) -> None:
    _credential_event(REVOKED, credential)


def _on_validation_failed(sender: Any, connector: Connector, message: str, **kwargs: Any) -> None:
    emit(VALIDATION_FAILED, connector, {"connector": connector_data(connector),
                                        "message": message})


RECEIVERS = [
    (signals.credential_connected, _on_connected),
    (signals.credential_refresh_failed, _on_refresh_failed),
    (signals.credential_reauth_required, _on_reauth_required),
    (signals.credential_recovered, _on_recovered),
    (signals.credential_revoked, _on_revoked),
    (signals.connector_validation_failed, _on_validation_failed),
]


def connect_receivers(enqueue: Callable[[int], None]) -> None:
    """Called by the app's ``ready()``, with what hands a delivery to a worker."""
    global _enqueue
    _enqueue = enqueue
    for signal, receiver in RECEIVERS:
        signal.connect(receiver, weak=False, dispatch_uid=f"alloy_oauth.webhooks.{receiver.__name__}")
