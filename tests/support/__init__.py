"""What the tests share and are not tests: the suite's Django project (settings, URLs, Celery
app, static files), local servers, a headless browser, and helpers that drive pages."""

from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent.parent
