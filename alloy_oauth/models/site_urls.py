"""This site's absolute URLs, as providers and end users must be given them: the callback URL
an operator registers at a provider, the links the app hands out."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from ..conf import app_settings


def absolute_url(path: str, request: Any = None) -> str:
    """``path`` on this site: under ``CALLBACK_BASE_URL`` when set, else on the request's
    host; without either, the path alone (set ``CALLBACK_BASE_URL``)."""
    if app_settings.CALLBACK_BASE_URL:
        return app_settings.CALLBACK_BASE_URL + path
    if request is not None:
        return request.build_absolute_uri(path)
    return path


def callback_url(request: Any = None) -> str:
    """The absolute URL of the one callback view (see :func:`absolute_url`)."""
    return absolute_url(reverse("alloy_oauth:callback"), request)
