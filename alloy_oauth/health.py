"""How the credentials of each connector are doing, read from the database: what
``manage.py alloy_oauth_status`` prints and the metrics' gauges report at scrape time.

Every query is served by an index: credentials by ``(connector, status)``, the due backlog
by ``(status, next_refresh_at)`` (its cost follows the due count, not the table), recent
failures by the events' ``(kind, created_at)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.utils import timezone

from .models import Connector, Credential, CredentialEvent, WebhookDelivery

#: The events counted as failed refreshes.
FAILURE_EVENTS = (CredentialEvent.Kind.REFRESH_FAILED, CredentialEvent.Kind.REAUTH_REQUIRED)
#: How far back failures are counted.
FAILURE_WINDOW = timedelta(hours=1)


@dataclass
class ConnectorHealth:
    slug: str
    name: str
    #: Credentials by status (every status present, zeros included).
    by_status: dict[str, int] = field(default_factory=dict)
    #: Active credentials whose refresh time has come (being refreshed or waiting for it).
    due: int = 0
    #: The earliest ``next_refresh_at`` among them.
    oldest_due_at: datetime | None = None
    #: Which credential that is (only with ``details``).
    oldest_due_credential: int | None = None
    #: ``refresh_failed`` and ``reauth_required`` events of the last hour (only with ``details``).
    failures_last_hour: int = 0

    def overdue_seconds(self, now: datetime) -> float:
        """How long the oldest due credential has been waiting (0 when none is due)."""
        if self.oldest_due_at is None:
            return 0.0
        return max((now - self.oldest_due_at).total_seconds(), 0.0)


def connector_health(now: datetime | None = None, *, details: bool = True) -> list[ConnectorHealth]:
    """One :class:`ConnectorHealth` per connector, by slug. Without ``details`` (the metrics'
    scrape), the oldest due credential's id and the recent failures are not read."""
    now = now or timezone.now()
    health = {pk: ConnectorHealth(slug, name, dict.fromkeys(Credential.Status.values, 0))
              for pk, slug, name in Connector.objects.order_by("slug")
              .values_list("pk", "slug", "name")}
    for connector_id, status, count in (Credential.objects.order_by()
                                        .values_list("connector_id", "status")
                                        .annotate(count=Count("pk"))):
        if connector_id in health:
            health[connector_id].by_status[status] = count
    due = (Credential.objects.order_by().filter(status=Credential.Status.ACTIVE,
                                                next_refresh_at__lte=now)
           .values_list("connector_id").annotate(count=Count("pk"), oldest=Min("next_refresh_at")))
    for connector_id, count, oldest in due:
        if connector_id in health:
            health[connector_id].due, health[connector_id].oldest_due_at = count, oldest
    if details:
        for connector_id, item in health.items():
            if item.oldest_due_at is not None:
                item.oldest_due_credential = (Credential.objects.filter(
                    connector_id=connector_id, status=Credential.Status.ACTIVE,
                    next_refresh_at=item.oldest_due_at).values_list("pk", flat=True).first())
        failures = (CredentialEvent.objects.order_by()
                    .filter(kind__in=FAILURE_EVENTS, created_at__gte=now - FAILURE_WINDOW)
                    .values_list("credential__connector_id").annotate(count=Count("pk")))
        for connector_id, count in failures:
            if connector_id in health:
                health[connector_id].failures_last_hour = count
    return list(health.values())


def pending_deliveries() -> dict[int, int]:
    """Webhook deliveries waiting to be sent, by endpoint id."""
    return dict(WebhookDelivery.objects.order_by()
                .filter(status=WebhookDelivery.Status.PENDING)
                .values_list("endpoint_id").annotate(count=Count("pk")))
