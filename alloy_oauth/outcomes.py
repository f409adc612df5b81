"""What the engine tells its callers about one credential."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Result(StrEnum):
    REFRESHED = "refreshed"
    #: Not due (or already refreshed by someone else, or backing off after a failure).
    NOT_DUE = "not_due"
    #: Another process holds the lease.
    BUSY = "busy"
    #: The credential changed while we refreshed (reconnected); our tokens were discarded.
    SUPERSEDED = "superseded"
    REAUTH_REQUIRED = "reauth_required"
    #: Refused for good (client rejected, bad request, too many failures): status ``error``.
    FAILED = "failed"
    #: A transient failure; tried again after ``retry_in`` seconds.
    RETRY = "retry"
    #: Not refreshable: revoked, reconnection required, no refresh token, …
    NOT_REFRESHABLE = "not_refreshable"
    #: Revoked (at the provider when it has a revocation URL) and its tokens deleted.
    REVOKED = "revoked"


@dataclass(frozen=True)
class Outcome:
    result: Result
    credential_id: int
    message: str = ""
    retry_in: int | None = None
