"""What the sweep hands to the workers: the due credentials' ids, in batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ..conf import app_settings
from . import leases


def due_credential_ids(
    now: datetime | None = None, batch_size: int | None = None
) -> Iterator[list[int]]:
    """The ids of the due credentials (``Credential.objects.due()``, read from the primary
    database), in batches of ``SWEEP_BATCH_SIZE``."""
    batch_size = batch_size or app_settings.SWEEP_BATCH_SIZE
    batch: list[int] = []
    due = leases.credentials().due(now)
    for pk in due.values_list("pk", flat=True).iterator(chunk_size=batch_size):
        batch.append(pk)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
