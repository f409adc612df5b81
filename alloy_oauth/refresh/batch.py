"""Refreshing many credentials at once: what the sweep's batches run.

A provider takes a few hundred milliseconds to answer; one request at a time, a worker
process spends its life waiting. A batch keeps up to ``REFRESH_CONCURRENCY`` token requests
in flight on a thread pool of its process (plain threads: it runs in Celery's default
prefork pool as it is), while this thread does all the database work in few statements:

- leases are taken a *wave* at a time, for as many credentials as there are free slots,
  with one statement that also reads them (:func:`.leases.acquire`, under one token for the
  whole batch, which the keeper extends with one statement);
- the pool's threads only talk to providers (:func:`.single.request`: no database access),
  so a batch holds two database connections however many requests are in flight (this
  thread's and the lease keeper's);
- outcomes are written as they arrive, all that have arrived together
  (:func:`.records.settle`: one statement per kind of outcome on PostgreSQL), so a rotated
  refresh token waits for no one before it is stored.

Every guarantee of one refresh holds for each credential of a batch: one request in flight
per credential (the lease), writes fenced by the lease token and ``version``, an answer in
doubt leaves its lease to run out (it is moved to a token nobody extends), new tokens are
stored before their lease is released, failures are classified and backed off, events and
signals as for one refresh.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from django.utils import timezone

from .. import protocol
from ..conf import app_settings
from ..models import Credential
from . import eligibility, leases, records
from .leases import Lease
from .single import request, without_request

logger = logging.getLogger(__name__)


def refresh_batch(credential_ids: Sequence[int], *, budget: float | None = None) -> Counter[str]:
    """Refresh those of ``credential_ids`` that are due (as the sweep's rule says), many at
    once. No new request starts after ``budget`` seconds (default ``SWEEP_INTERVAL``): what
    is left is left for the next sweep. Returns how many ended how (``Result`` values, and
    ``skipped`` for those not due, leased by someone else or left over)."""
    return leases.outside_caller_transaction(_refresh_batch, list(dict.fromkeys(credential_ids)),
                                             app_settings.SWEEP_INTERVAL if budget is None
                                             else budget)


class _Leased:
    """The credentials this batch holds a lease on, as the keeper asks for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[int] = set()

    def add(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._ids.update(ids)

    def discard(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._ids.difference_update(ids)

    def __call__(self) -> list[int]:
        with self._lock:
            return list(self._ids)


def _refresh_batch(ids: list[int], budget: float) -> Counter[str]:
    concurrency = app_settings.REFRESH_CONCURRENCY
    # Leases are taken when at least this many slots are free: fewer statements, nearly
    # full pipes.
    wave = max(1, concurrency // 4)
    stop_starting_at = time.monotonic() + budget
    token = leases.new_token()
    waiting = deque(ids)
    held = _Leased()
    answers: queue.Queue[records.Record] = queue.Queue()
    in_flight = 0
    counts: Counter[str] = Counter()
    interrupted: Exception | None = None
    pool = _pool()
    with leases.kept_alive(token, held):
        while waiting or in_flight:
            free = concurrency - in_flight
            if waiting and free >= min(wave, len(waiting)) and time.monotonic() < stop_starting_at:
                batch = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                leased = leases.acquire(batch, eligibility.all_of(
                    eligibility.refresh_conditions(now=timezone.now())), token)
                counts["skipped"] += len(batch) - len(leased)
                held.add([credential.pk for credential in leased])
                ready = []
                for credential in leased:
                    lease = Lease(credential.pk, token)
                    record = without_request(credential, lease)
                    if record is not None:
                        ready.append(record)
                    else:
                        in_flight += 1
                        pool.submit(_send, credential, lease, answers)
                _settle(ready, held, counts)
                continue
            if not in_flight:  # out of time: the rest waits for the next sweep
                counts["skipped"] += len(waiting)
                break
            try:
                arrived = [_next_answer(answers)]
            except Exception as exc:  # e.g. Celery's SoftTimeLimitExceeded, raised here
                # No more requests; those in flight still have their answers written.
                interrupted = interrupted or exc
                counts["skipped"] += len(waiting)
                waiting.clear()
                continue
            while True:
                try:
                    arrived.append(answers.get_nowait())
                except queue.Empty:
                    break
            in_flight -= len(arrived)
            _settle(arrived, held, counts)
    if interrupted is not None:
        raise interrupted
    return counts


def _send(credential: Credential, lease: Lease, answers: queue.Queue[records.Record]) -> None:
    """In a pool thread: the request, and its outcome handed to the batch's thread. An
    outcome always comes back, or the batch would wait for ever."""
    try:
        answers.put(request(credential, lease))
    except BaseException as exc:  # request() records every Exception: this thread is going down
        answers.put(records.failure(credential, lease, protocol.OAuthError(
            protocol.ErrorKind.MALFORMED, f"The refresh was interrupted ({type(exc).__name__}).",
            in_doubt=True), timezone.now()))
        raise


def _next_answer(answers: queue.Queue[records.Record]) -> records.Record:
    """Wait for the next outcome. Every request ends by ``HTTP_TIMEOUT`` (the transport's
    deadline), so a long silence means something is wrong; it is logged, not abandoned:
    an answer that arrived later would carry tokens that must be stored."""
    while True:
        try:
            return answers.get(timeout=2 * app_settings.HTTP_TIMEOUT + 10)
        except queue.Empty:
            logger.error("A refresh batch has waited %s s for an answer from its requests.",
                         2 * app_settings.HTTP_TIMEOUT + 10)


def _settle(ready: list[records.Record], held: _Leased, counts: Counter[str]) -> None:
    if not ready:
        return
    try:
        outcomes = records.settle(ready)
    except Exception:
        if len(ready) == 1:
            # The database refuses this one: its lease runs out once the batch ends.
            logger.exception("Could not record the refresh of credential %s.",
                             ready[0].credential.pk)
            counts["unrecorded"] += 1
            return
        # One bad row must not hold back the others' tokens: one by one.
        for record in ready:
            _settle([record], held, counts)
        return
    finally:
        held.discard([record.credential.pk for record in ready])
    counts.update(str(outcome.result) for outcome in outcomes)


_pool_lock = threading.Lock()
_pool_state: dict[str, object] = {}


def _pool() -> ThreadPoolExecutor:
    """The process's pool of request threads (made again in a forked child, or when
    ``REFRESH_CONCURRENCY`` changes). Its threads keep their HTTP connections between
    batches: a provider's TLS handshake is paid once per thread, not once per refresh."""
    size = app_settings.REFRESH_CONCURRENCY
    with _pool_lock:
        pool = _pool_state.get("pool")
        if pool is None or _pool_state.get("key") != (os.getpid(), size):
            if pool is not None and _pool_state.get("key", (None,))[0] == os.getpid():
                pool.shutdown(wait=False)  # type: ignore[attr-defined]
            pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="alloy_oauth-refresh")
            _pool_state.update(pool=pool, key=(os.getpid(), size))
        return pool  # type: ignore[return-value]

