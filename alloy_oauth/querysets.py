"""Credential lookups shared by host code, the sweep and the refresh engine, and the clock
leases are measured with. Builds on nothing but Django and the settings: the models use it,
the engine uses it, it uses neither."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone

from .conf import app_settings

__all__ = ["CredentialQuerySet"]

#: The status value of a credential that can be used and refreshed (``Credential.Status``).
ACTIVE = "active"


class DatabaseNow(Now):
    """``Now()`` in UTC on every database. Django's ``Now()`` is MySQL's CURRENT_TIMESTAMP,
    the *session* time zone's wall clock (Django sets none: the server's, maybe local with
    DST), while Django stores UTC: a lease could look an hour longer after a DST change."""

    def as_mysql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


def lease_free() -> Q:
    """No refresh lease, or an expired one, by the database's clock (app servers' clocks may
    disagree; the database's is the one every process shares)."""
    return Q(lease_until__isnull=True) | Q(lease_until__lte=DatabaseNow())


def lease_held() -> ExpressionWrapper:
    """Annotation: is the lease live right now, by the database's clock?"""
    return ExpressionWrapper(Q(lease_until__gt=DatabaseNow()), output_field=BooleanField())


def refresh_time_come(now: datetime) -> Q:
    """``next_refresh_at`` has come: the token is due, or a backoff is over."""
    return Q(next_refresh_at__lte=now)


def not_backing_off(now: datetime) -> Q:
    """No backoff after a failure is running (a backoff is a ``next_refresh_at`` in the
    future while ``failure_count`` is positive)."""
    return Q(failure_count=0) | Q(next_refresh_at__isnull=True) | refresh_time_come(now)


class CredentialQuerySet(models.QuerySet[Any]):
    def for_owner(self, user: Any = None, external_id: str | None = None) -> CredentialQuerySet:
        """Credentials of one end user: a Django user, or the host's own ``external_id``.

        All of them: one per connector, or several at a connector that allows several
        accounts (``Connector.allow_multiple_accounts``). Pick one by what tells them apart,
        their connection parameters or metadata (plain JSON, queryable)::

            mine = Credential.objects.for_owner(user=request.user)
            shop = mine.get(connector__slug="shopify", connection_config__shop="acme")
            mailbox = mine.filter(connector__slug="google", metadata__email=address).first()
            newest = mine.filter(connector__slug="shopify", status="active").order_by(
                "-connected_at").first()
        """
        if (user is None) == (not external_id):
            raise ValueError("Pass exactly one of user= or external_id=.")
        if user is not None:
            return self.filter(user=user)
        return self.filter(external_id=external_id)

    def active(self) -> CredentialQuerySet:
        return self.filter(status=ACTIVE)

    def due(self, now: datetime | None = None) -> CredentialQuerySet:
        """Active credentials whose ``next_refresh_at`` has come and that nobody is
        refreshing (no live lease): what the sweep enqueues, soonest first. Served by the
        (status, next_refresh_at) index: its cost follows the due count, not the table."""
        return self.active().filter(
            lease_free(), refresh_time_come(now or timezone.now())
        ).order_by("next_refresh_at")

    def refresh_token_expiring(self, within: timedelta | None = None) -> CredentialQuerySet:
        """Active credentials whose refresh token expires within ``within`` (default:
        ``REFRESH_TOKEN_EXPIRY_WARNING``): their end users should reconnect before then."""
        within = within or timedelta(seconds=app_settings.REFRESH_TOKEN_EXPIRY_WARNING)
        return self.active().filter(refresh_token_expires_at__lte=timezone.now() + within)
