"""The Celery beat entry of the sweep. Importable before Django is set up (no models).

In the project's ``celery.py``, after ``config_from_object``::

    from alloy_oauth.beat import beat_schedule
    app.conf.beat_schedule.update(beat_schedule())

or in settings (pass the interval, settings are not readable yet)::

    CELERY_BEAT_SCHEDULE = {**beat_schedule(interval=60)}

django-celery-beat's ``DatabaseScheduler`` copies ``beat_schedule`` entries into its table
at start-up, so the same line serves it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["beat_schedule", "SWEEP_ENTRY", "SWEEP_TASK"]

SWEEP_TASK = "alloy_oauth.tasks.refresh_due_credentials"
SWEEP_ENTRY = "alloy_oauth.refresh_due_credentials"


def beat_schedule(interval: float | None = None) -> dict[str, dict[str, Any]]:
    """``{name: entry}`` running the sweep every ``interval`` seconds (default: the
    ``SWEEP_INTERVAL`` setting). A sweep not started within one interval is dropped: the
    next one does the same work."""
    if interval is None:
        from .conf import app_settings

        interval = app_settings.SWEEP_INTERVAL
    return {
        SWEEP_ENTRY: {
            "task": SWEEP_TASK,
            "schedule": float(interval),
            "options": {"expires": float(interval)},
        }
    }
