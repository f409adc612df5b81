"""Celery tasks. Messages carry credential and delivery ids only: no secret ever goes through
the broker.

The sweep, ``alloy_oauth.tasks.refresh_due_credentials``, runs from Celery beat every
``SWEEP_INTERVAL`` seconds (see :mod:`alloy_oauth.beat`) and enqueues the due credentials in
batches, ``alloy_oauth.tasks.refresh_credential_batch``; ``refresh_credential`` refreshes one.
``deliver_webhook`` makes one attempt of one webhook delivery.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone

from .conf import app_settings
from .models import AuthorizationRequest, Credential
from .outcomes import Result
from .refresh.batch import refresh_batch
from .refresh.single import refresh_one
from .refresh.sweep import due_credential_ids
from .webhooks import delivery as webhook_delivery

logger = logging.getLogger(__name__)


@shared_task(name="alloy_oauth.tasks.refresh_due_credentials", ignore_result=True)
def refresh_due_credentials() -> dict[str, int]:
    """Enqueue the due credentials, ``SWEEP_BATCH_SIZE`` ids per message, and delete expired
    authorization requests; enqueue the webhook deliveries whose message was lost, and delete
    finished ones past ``WEBHOOK_RETENTION``.

    Each message expires after one sweep interval: if the workers are behind, the next
    sweep enqueues whatever is still due instead of letting duplicates pile up.
    """
    expires = app_settings.SWEEP_INTERVAL
    enqueued = 0
    with refresh_credential_batch.app.producer_or_acquire() as producer:
        for batch in due_credential_ids():
            refresh_credential_batch.apply_async(args=(batch,), expires=expires,
                                                 producer=producer)
            enqueued += len(batch)
        rescued = webhook_delivery.overdue()
        for delivery_id in rescued:
            deliver_webhook.apply_async(args=(delivery_id,), expires=expires, producer=producer)
    # Expired requests stay a little longer: they remember which connect links were used.
    keep_until = timezone.now() - timedelta(seconds=app_settings.CONNECT_LINK_MAX_AGE)
    purged, _ = AuthorizationRequest.objects.filter(expires_at__lt=keep_until).delete()
    forgotten = webhook_delivery.purge()
    if enqueued or purged or rescued or forgotten:
        logger.info("Sweep: %s credential(s) enqueued for refresh, %s expired authorization "
                    "request(s) deleted, %s webhook delivery(ies) enqueued again, %s old "
                    "one(s) deleted.", enqueued, purged, len(rescued), forgotten)
    return {"enqueued": enqueued, "purged": purged, "webhooks_enqueued": len(rescued),
            "webhooks_purged": forgotten}


@shared_task(bind=True, name="alloy_oauth.tasks.refresh_credential_batch", ignore_result=True)
def refresh_credential_batch(self: Any, credential_ids: list[int]) -> dict[str, int]:
    """Refresh those of ``credential_ids`` that are still due, ``REFRESH_CONCURRENCY`` at a
    time. Failures are backed off by the engine (``next_refresh_at``), and the sweep picks
    them up again when their time comes: no Celery retry."""
    counts = refresh_batch(credential_ids, budget=_budget(self))
    logger.info("Refresh batch of %s: %s.", len(credential_ids),
                ", ".join(f"{count} {result}" for result, count in sorted(counts.items())))
    return dict(counts)


def _budget(task: Any) -> float:
    """How long the batch may go on starting requests: a sweep interval (then the next
    sweep has the rest), and short enough that every request started has its answer written
    before a Celery time limit strikes (a request lasts at most HTTP_TIMEOUT)."""
    limits = [limit for limit in (*(task.request.timelimit or ()), task.soft_time_limit,
                                  task.time_limit, task.app.conf.task_soft_time_limit,
                                  task.app.conf.task_time_limit) if limit]
    budget = float(app_settings.SWEEP_INTERVAL)
    if limits:
        budget = min(budget, min(limits) - app_settings.HTTP_TIMEOUT - 5)
        if budget <= 0:
            logger.error("The Celery time limit (%s s) leaves a refresh batch no time: it "
                         "must exceed HTTP_TIMEOUT + 5 s (see docs/deploying.md).", min(limits))
    return max(budget, 0.0)


@shared_task(bind=True, name="alloy_oauth.tasks.refresh_credential", ignore_result=True,
             max_retries=None)
def refresh_credential(self, credential_id: int) -> str:  # type: ignore[no-untyped-def]
    """Refresh one credential if it is still due; transient failures are retried after the
    engine's backoff (the sweep would pick them up too)."""
    try:
        outcome = refresh_one(credential_id)
    except Credential.DoesNotExist:
        logger.info("Credential %s no longer exists; nothing to refresh.", credential_id)
        return "gone"
    if outcome.result is Result.RETRY:
        countdown = (outcome.retry_in or 0) + 1  # land after next_refresh_at
        raise self.retry(countdown=countdown, expires=countdown + app_settings.SWEEP_INTERVAL)
    return str(outcome.result)


def enqueue_webhook_delivery(delivery_id: int) -> None:
    """Ask a worker to attempt a recorded delivery (the webhooks' events call this once the
    delivery is committed). A broker that refuses is not waited for: the sweep enqueues the
    pending deliveries whose message never came."""
    try:
        deliver_webhook.apply_async((delivery_id,), retry=False)
    except Exception as exc:  # the broker is down: the sweep will enqueue it
        logger.warning("Could not enqueue webhook delivery %s (%s); the sweep will.",
                       delivery_id, type(exc).__name__)


@shared_task(bind=True, name="alloy_oauth.tasks.deliver_webhook", ignore_result=True,
             max_retries=None)
def deliver_webhook(self, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    """One attempt of one webhook delivery (:func:`alloy_oauth.webhooks.delivery.attempt`);
    a failed one is retried after the backoff it recorded, until WEBHOOK_MAX_ATTEMPTS. The
    database is the truth: a duplicate message finds the delivery claimed or done and does
    nothing, and the sweep enqueues a delivery whose message was lost."""
    attempted = webhook_delivery.attempt(delivery_id)
    if attempted.retry_in is not None:
        countdown = int(attempted.retry_in) + 1  # land after next_attempt_at
        raise self.retry(countdown=countdown, expires=countdown + app_settings.SWEEP_INTERVAL)
    return attempted.result
