"""Prometheus metrics, when ``prometheus_client`` is installed (the ``metrics`` extra:
``pip install alloy-oauth[metrics]``); without it every function here does nothing and
:func:`metrics_view` answers 404. See ``docs/events.md`` for the metrics, how to scrape them
(Celery's prefork workers need the multiprocess mode) and example alert rules.

Counted where things happen (in the process that did them):

- ``alloy_oauth_refreshes_total{connector, result}``: every outcome the refresh engine
  writes (``refreshed``, ``retry``, ``failed``, ``reauth_required``, ``not_refreshable``,
  ``superseded``);
- ``alloy_oauth_refresh_request_seconds{connector}``: how long the token requests took;
- ``alloy_oauth_webhook_deliveries_total{event, result}``: webhook attempts (``succeeded``,
  ``retry``, ``failed``) and events not queued (``dropped``).

Read from the database at scrape time (:class:`DatabaseCollector`, indexed queries):
``alloy_oauth_credentials{connector, status}``, ``alloy_oauth_refresh_backlog{connector}``,
``alloy_oauth_refresh_oldest_overdue_seconds{connector}``,
``alloy_oauth_webhook_deliveries_pending{endpoint}``.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseNotFound
from django.utils import timezone

from .conf import app_settings

__all__ = ["metrics_view"]

logger = logging.getLogger(__name__)

try:
    import prometheus_client
except ImportError:  # the extra is not installed: nothing is measured
    prometheus_client = None

#: Whether metrics are collected in this process.
ENABLED = prometheus_client is not None
F = TypeVar("F", bound=Callable[..., Any])

if prometheus_client is not None:
    REFRESHES = prometheus_client.Counter(
        "alloy_oauth_refreshes", "Refresh outcomes written by the engine.",
        ["connector", "result"])
    REFRESH_REQUEST_SECONDS = prometheus_client.Histogram(
        "alloy_oauth_refresh_request_seconds", "Time taken by token refresh requests.",
        ["connector"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
    WEBHOOK_DELIVERIES = prometheus_client.Counter(
        "alloy_oauth_webhook_deliveries", "Webhook delivery attempts and dropped events.",
        ["event", "result"])


def count_refreshes(outcomes: Iterable[tuple[str, str]]) -> None:
    """Count refresh outcomes, each a ``(connector slug, result)`` (not even iterated when
    metrics are off)."""
    if prometheus_client is None:
        return
    for connector, result in outcomes:
        REFRESHES.labels(connector, str(result)).inc()


def timed_request(func: F) -> F:
    """Decorates the engine's ``request(credential, lease)``: observes how long it took, per
    connector. Returns ``func`` itself when metrics are off."""
    if prometheus_client is None:
        return func

    @functools.wraps(func)
    def timed(credential: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(credential, *args, **kwargs)
        finally:
            REFRESH_REQUEST_SECONDS.labels(credential.connector.slug).observe(
                time.perf_counter() - started)

    return timed  # type: ignore[return-value]


def count_webhook_delivery(event: str, result: str) -> None:
    if prometheus_client is not None:
        WEBHOOK_DELIVERIES.labels(event, result).inc()


class DatabaseCollector:
    """Gauges computed from the database when scraped (:mod:`alloy_oauth.health`). Register
    it with your own registry if you serve metrics yourself:
    ``prometheus_client.REGISTRY.register(DatabaseCollector())``."""

    def describe(self) -> list[Any]:
        return []  # no database query when it is registered

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from . import health

        now = timezone.now()
        try:
            rows = health.connector_health(now, details=False)
            pending_by_endpoint = health.pending_deliveries()
        except DatabaseError:  # the counters are still worth a scrape
            logger.exception("Could not read the alloy_oauth gauges from the database.")
            return
        credentials = GaugeMetricFamily("alloy_oauth_credentials",
                                        "Credentials by connector and status.",
                                        labels=["connector", "status"])
        backlog = GaugeMetricFamily("alloy_oauth_refresh_backlog",
                                    "Active credentials whose refresh time has come.",
                                    labels=["connector"])
        overdue = GaugeMetricFamily("alloy_oauth_refresh_oldest_overdue_seconds",
                                    "How long the oldest due credential has waited.",
                                    labels=["connector"])
        for item in rows:
            for status, count in item.by_status.items():
                credentials.add_metric([item.slug, status], count)
            backlog.add_metric([item.slug], item.due)
            overdue.add_metric([item.slug], item.overdue_seconds(now))
        pending = GaugeMetricFamily("alloy_oauth_webhook_deliveries_pending",
                                    "Webhook deliveries waiting to be sent, by endpoint id.",
                                    labels=["endpoint"])
        for endpoint, count in pending_by_endpoint.items():
            pending.add_metric([str(endpoint)], count)
        yield from (credentials, backlog, overdue, pending)


class _Forward:
    """This process's own metrics (the default registry), in the registry of a scrape."""

    def collect(self) -> Iterator[Any]:
        return prometheus_client.REGISTRY.collect()  # type: ignore[union-attr]


def registry() -> Any:
    """What one scrape reports: this process's metrics, or with ``PROMETHEUS_MULTIPROC_DIR``
    set, those of every process that shares that directory (web and Celery workers), plus
    the database's gauges."""
    from prometheus_client import CollectorRegistry, multiprocess

    scrape = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape.register(_Forward())
    scrape.register(DatabaseCollector())
    return scrape


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format, for the host to mount (it is not in
    ``alloy_oauth.urls``): ``path("metrics/", alloy_oauth.metrics.metrics_view)``.

    Answers staff users, and a scraper that sends ``Authorization: Bearer <METRICS_TOKEN>``
    when that setting is set; anyone else gets 403. 404 without ``prometheus_client``."""
    if prometheus_client is None:
        return HttpResponseNotFound("prometheus_client is not installed.",
                                    content_type="text/plain")
    if not _may_scrape(request):
        return HttpResponseForbidden("Staff or the METRICS_TOKEN bearer token only.",
                                     content_type="text/plain")
    response = HttpResponse(prometheus_client.generate_latest(registry()),
                            content_type=prometheus_client.CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


def _may_scrape(request: HttpRequest) -> bool:
    token = app_settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)
