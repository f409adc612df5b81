"""Who may be refreshed (or revoked) right now: the one rule.

A rule is a list of :class:`Condition`\\ s. Their ``test``\\ s, joined, are the WHERE of the
statement that takes the lease, so nothing but the database decides (and a race is decided
by one UPDATE); when the lease is not taken, :func:`explain` reads the same tests back as
booleans and names the first one that failed, so the reason a caller is given is the rule
itself, never a second copy of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import and_
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q

from ..models import Credential
from ..outcomes import Outcome, Result
from ..querysets import lease_held, not_backing_off, refresh_time_come
from . import leases


@dataclass(frozen=True)
class Condition:
    #: True for a credential that passes.
    test: Q
    #: What the caller is told when it does not.
    result: Result
    #: The sentence, from the credential's ``status``, ``version`` and ``next_refresh_at``.
    reason: Callable[[dict[str, Any]], str]


def refresh_conditions(
    *, now: datetime, force: bool = False, min_valid: int | None = None,
    if_version: int | None = None,
) -> list[Condition]:
    """Who may be refreshed now, in the order a refusal is explained:

    - by default (the sweep, batches): active, and ``next_refresh_at`` has come;
    - ``min_valid=N`` (a token asked for on demand): active, not backing off after a
      failure, and the access token expires within N seconds;
    - ``if_version=v`` (a request refused with 401): active, not backing off, and nobody has
      refreshed since version ``v`` was read;
    - ``force=True`` (admin, command): active or in ``error``, whatever the schedule
      (``if_version`` still applies).
    """
    statuses = [Credential.Status.ACTIVE] + ([Credential.Status.ERROR] if force else [])
    conditions = [Condition(Q(status__in=statuses), Result.NOT_REFRESHABLE,
                            lambda row: f"Status is {row['status']}.")]
    if if_version is not None:
        conditions.append(Condition(Q(version=if_version), Result.NOT_DUE,
                                    lambda row: "Already refreshed by someone else."))
    if force:
        return conditions
    conditions.append(Condition(
        not_backing_off(now), Result.NOT_DUE,
        lambda row: f"Backing off until {row['next_refresh_at']:%Y-%m-%d %H:%M} UTC."))
    if min_valid is not None:
        conditions.append(Condition(Q(expires_at__lte=now + timedelta(seconds=min_valid)),
                                    Result.NOT_DUE, lambda row: "Not due."))
    elif if_version is None:
        conditions.append(Condition(refresh_time_come(now), Result.NOT_DUE,
                                    lambda row: "Not due."))
    return conditions


def revocation_conditions() -> list[Condition]:
    """Any credential not revoked yet may be revoked (once the lease is free)."""
    return [Condition(~Q(status=Credential.Status.REVOKED), Result.NOT_REFRESHABLE,
                      lambda row: "Already revoked.")]


def all_of(conditions: Sequence[Condition]) -> Q:
    return reduce(and_, (condition.test for condition in conditions), Q())


def explain(credential_id: int, conditions: Sequence[Condition]) -> Outcome | None:
    """Why the lease of ``credential_id`` was not taken under ``conditions``: the first
    condition it fails, else ``BUSY`` when another process holds the lease. ``None`` when
    it passes them all and the lease is free now (it was freed meanwhile: try again).
    Raises ``Credential.DoesNotExist`` for an unknown id."""
    tests = {f"passes_{index}": ExpressionWrapper(condition.test, output_field=BooleanField())
             for index, condition in enumerate(conditions)}
    row = (leases.credentials().filter(pk=credential_id)
           .annotate(leased=lease_held(), **tests)
           .values("status", "version", "next_refresh_at", "leased", *tests)
           .first())
    if row is None:
        raise Credential.DoesNotExist(f"No credential with id {credential_id}.")
    for name, condition in zip(tests, conditions, strict=True):
        if not row[name]:  # False, or NULL (a comparison with a NULL column)
            return Outcome(condition.result, credential_id, condition.reason(row))
    if row["leased"]:
        return Outcome(Result.BUSY, credential_id, "Another process is refreshing it.")
    return None
