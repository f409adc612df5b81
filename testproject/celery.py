"""The project's Celery app: settings come from Django's, under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

app = Celery("testproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The sweep that refreshes credentials before they expire (alloy_oauth.beat).
from alloy_oauth.beat import beat_schedule  # noqa: E402

app.conf.beat_schedule.update(beat_schedule())
