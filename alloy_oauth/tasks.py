"""Celery tasks. Messages carry credential ids only: no secret ever goes through the broker.

The sweep, ``alloy_oauth.tasks.refresh_due_credentials``, runs from Celery beat every
``SWEEP_INTERVAL`` seconds (see :mod:`alloy_oauth.beat`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import refresh
from .conf import app_settings
from .models import AuthorizationRequest, Credential

logger = logging.getLogger(__name__)


@shared_task(name="alloy_oauth.tasks.refresh_due_credentials", ignore_result=True)
def refresh_due_credentials() -> dict[str, int]:
    """Enqueue one ``refresh_credential`` per due credential, and delete expired
    authorization requests.

    Each message expires after one sweep interval: if the workers are behind, the next
    sweep enqueues whatever is still due instead of letting duplicates pile up.
    """
    expires = app_settings.SWEEP_INTERVAL
    enqueued = 0
    with refresh_credential.app.producer_or_acquire() as producer:
        for batch in refresh.due_credential_ids():
            for credential_id in batch:
                refresh_credential.apply_async(
                    args=(credential_id,), expires=expires, producer=producer
                )
            enqueued += len(batch)
    # Expired requests stay a little longer: they remember which connect links were used.
    keep_until = timezone.now() - timedelta(seconds=app_settings.CONNECT_LINK_MAX_AGE)
    purged, _ = AuthorizationRequest.objects.filter(expires_at__lt=keep_until).delete()
    if enqueued or purged:
        logger.info("Sweep: %s credential(s) enqueued for refresh, %s expired authorization "
                    "request(s) deleted.", enqueued, purged)
    return {"enqueued": enqueued, "purged": purged}


@shared_task(bind=True, name="alloy_oauth.tasks.refresh_credential", ignore_result=True,
             max_retries=None)
def refresh_credential(self, credential_id: int) -> str:  # type: ignore[no-untyped-def]
    """Refresh one credential if it is still due; transient failures are retried after the
    engine's backoff (the sweep would pick them up too)."""
    try:
        outcome = refresh.refresh_credential(credential_id)
    except Credential.DoesNotExist:
        logger.info("Credential %s no longer exists; nothing to refresh.", credential_id)
        return "gone"
    if outcome.result is refresh.Result.RETRY:
        countdown = (outcome.retry_in or 0) + 1  # land after next_refresh_at
        raise self.retry(countdown=countdown, expires=countdown + app_settings.SWEEP_INTERVAL)
    return str(outcome.result)
