"""The Celery app of the test suite (the same shape as testproject/celery.py)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")

app = Celery("alloy_oauth_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The host's one line for the sweep (alloy_oauth.beat).
from alloy_oauth.beat import beat_schedule  # noqa: E402

app.conf.beat_schedule.update(beat_schedule())
