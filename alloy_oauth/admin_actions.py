"""The credential page's own buttons: Refresh now, Revoke, Mark for reconnection — the list's
actions, for the credential on screen. Revoke and Mark for reconnection cannot be undone by
the operator (the end user must connect again), so they ask first: their button opens a
confirmation page, whose form (POST, CSRF-checked) does it. Also how the page shows times:
one format for every date on it (:func:`when`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import Credential

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


def when(moment: datetime | None, *, relative: bool = False) -> str:
    """A time as every credential page shows it: ``2026-12-02 07:23 UTC`` (in UTC, as the
    events' details write times too), with ``relative`` also how far it is from now; ``—``
    for none."""
    if moment is None:
        return "—"
    text = f"{moment.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M} UTC"
    if not relative:
        return text
    now = timezone.now()
    if abs((moment - now).total_seconds()) < 60:
        return _("%(when)s (just now)") % {"when": text}
    if moment > now:
        return _("%(when)s (in %(time)s)") % {"when": text, "time": timeuntil(moment, now)}
    return _("%(when)s (%(time)s ago)") % {"when": text, "time": timesince(moment, now)}


@dataclass(frozen=True)
class Action:
    #: The list action (a method of the credential admin) that does it.
    method: str
    label: Promise
    #: The confirmation page's question; ``None``: done at once.
    question: Promise | None = None
    #: What happens, said on the confirmation page.
    consequence: Promise | None = None


ACTIONS: dict[str, Action] = {
    "refresh": Action("refresh_now", gettext_lazy("Refresh now")),
    "revoke": Action(
        "revoke", gettext_lazy("Revoke"),
        gettext_lazy("Revoke this credential?"),
        gettext_lazy("Its tokens are revoked at the provider (when the connector has a "
                     "revocation URL) and deleted here. The end user must connect again to "
                     "use this connection.")),
    "reconnect": Action(
        "mark_for_reconnection", gettext_lazy("Mark for reconnection"),
        gettext_lazy("Mark this credential for reconnection?"),
        gettext_lazy("It stops being refreshed and used. Its tokens stay stored, but the end "
                     "user is asked to connect again.")),
}


def buttons(credential: Credential) -> list[dict[str, Any]]:
    """The page's buttons: label, URL, and whether it asks first (a link to the
    confirmation page) or acts at once (a POST form)."""
    return [{"name": name, "label": action.label, "asks": action.question is not None,
             "url": reverse("admin:alloy_oauth_credential_action", args=[credential.pk, name])}
            for name, action in ACTIONS.items()]


def credential_action(model_admin: ModelAdmin, request: HttpRequest, pk: int,
                      name: str) -> HttpResponse:
    """A button of the credential page: GET shows the confirmation page (of an action that
    asks first); POST (with ``confirmed`` when it asks) does it and goes back to the page,
    whose messages say what happened."""
    action = ACTIONS.get(name)
    if action is None:
        raise Http404
    credential = get_object_or_404(Credential, pk=pk)
    if not model_admin.has_change_permission(request, credential):
        raise PermissionDenied
    back = reverse("admin:alloy_oauth_credential_change", args=[credential.pk])
    confirmed = action.question is None or request.POST.get("confirmed") == "yes"
    if request.method == "POST" and confirmed:
        getattr(model_admin, action.method)(request, Credential.objects.filter(pk=credential.pk))
        return HttpResponseRedirect(back)
    if action.question is None:  # (a GET of a button that acts at once: the page has it)
        return HttpResponseRedirect(back)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": credential,
        "title": action.question,
        "action": action,
        "back_url": back,
    }
    return TemplateResponse(request, "admin/alloy_oauth/credential/confirm_action.html",
                            context)
