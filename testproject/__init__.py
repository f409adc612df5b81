"""A runnable Django project that installs alloy_oauth (and plays the third party too)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
