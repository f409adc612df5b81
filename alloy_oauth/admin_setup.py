"""Setting a connector up quickly, in the connector admin: "New connector from a preset" (the
add form filled from :mod:`alloy_oauth.presets`) and "Fill from issuer" (the form filled from
the provider's discovery document, :mod:`alloy_oauth.discovery`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import discovery
from .presets import RECIPE_ANCHOR_PREFIX, all_presets, get_preset

#: The add page's query parameter that names a preset: ``add/?preset=github``.
PRESET_PARAM = "preset"


class ConnectorSetup(admin.ModelAdmin):
    """Mixed into the connector admin: the preset picker and the discovery endpoint."""

    def get_urls(self) -> list[Any]:
        return [
            path("discover/", self.admin_site.admin_view(self.discover_view),
                 name="alloy_oauth_connector_discover"),
            *super().get_urls(),
        ]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        slug = initial.pop(PRESET_PARAM, None)
        preset = get_preset(slug) if isinstance(slug, str) else None
        if preset is not None:
            initial.update(preset.initial())
        return initial

    def add_view(self, request: HttpRequest, form_url: str = "",
                 extra_context: dict[str, Any] | None = None) -> HttpResponse:
        slug = request.GET.get(PRESET_PARAM, "")
        preset = get_preset(slug) if slug else None
        if slug and preset is None and request.method == "GET":
            messages.error(request, _("There is no preset “%(slug)s”: pick one from the list.")
                           % {"slug": slug[:50]})
        extra_context = {**(extra_context or {}), "presets": all_presets(), "preset": preset,
                         "recipe_anchor_prefix": RECIPE_ANCHOR_PREFIX}
        return super().add_view(request, form_url, extra_context)

    @method_decorator(require_POST)
    def discover_view(self, request: HttpRequest) -> JsonResponse:
        """Staff's "Fill from issuer": the discovery document's values as JSON for the page's
        script (POST, CSRF-checked by the admin site). No secret is involved."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        url = request.POST.get("url", "")
        if not url.strip():
            return JsonResponse({"ok": False, "error": _(
                "Enter the provider's issuer, or any URL of the provider.")}, status=400)
        try:
            found = discovery.discover(url)
        except discovery.DiscoveryError as exc:
            return JsonResponse({"ok": False, "error": str(exc)}, status=400)
        return JsonResponse({"ok": True, "document_url": found.document_url,
                             "fields": found.fields, "notes": found.notes})
