"""What the app's admin pages share: one style sheet and its status badges, how a stored
secret is described, and the guards every page with a secret or a worker-owned object needs.

No page renders a token, a client secret or a webhook secret, whatever the operator's
permissions: secrets are write-only in the forms, a credential shows whether each token is
stored (and its last four characters to staff who may act on it), and staff with the view
permission only see every secret as "stored" or "not stored" (see
:class:`SecretsHiddenFromViewers`).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import protocol
from .fields import is_undecryptable
from .redaction import REDACTED, last_four


def status_badge(status: str, label: str) -> str:
    """A status as a coloured badge (its colour: ``alloy-oauth-badge-<status>`` in admin.css)."""
    return format_html('<span class="alloy-oauth-badge alloy-oauth-badge-{}">{}</span>',
                       status, label)


class StyledAdmin(admin.ModelAdmin):
    """The app's admin pages share one style sheet (badges, validation results, actions)."""

    class Media:
        css = {"all": ["alloy_oauth/admin.css"]}


@sensitive_variables()
def secret_state(value: str, *, tail: bool = False) -> str:
    """What an admin page says of a stored secret: whether it is stored, and with ``tail``
    its last four characters (see :func:`alloy_oauth.redaction.last_four`)."""
    if is_undecryptable(value):
        return _("cannot be decrypted with FERNET_KEYS")
    if not value:
        return _("not stored")
    if tail:
        return _("stored (ends %(tail)s)") % {"tail": last_four(value)}
    return _("stored")


@sensitive_variables()
def public_token_params(params: Any) -> str:
    """Extra token parameters as JSON, the values of all but known public ones redacted
    (empty when there are none)."""
    if not params:
        return ""
    if not isinstance(params, dict):
        return REDACTED
    return json.dumps({key: value if str(key).lower() in protocol.PUBLIC_TOKEN_PARAMS
                       else REDACTED for key, value in params.items()},
                      ensure_ascii=False, sort_keys=True)


class SecretsHiddenFromViewers(StyledAdmin):
    """Staff with the view permission only see a page of read-only fields, which Django
    renders from the model's values: a form's write-only widget does not apply there, and
    a secret would be shown in plain text. For them, each field named in
    :attr:`viewer_displays` is replaced by a display that says at most whether it is stored."""

    #: A field of the page → the display (a method of the admin) a viewer sees instead.
    viewer_displays: dict[str, str] = {}
    #: Fields that only ask something of whoever saves: not on a viewer's page.
    viewer_hidden: tuple[str, ...] = ()

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # As Django decides: an existing object without the change permission is read-only.
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets

        def swap(name: Any) -> Any:
            if isinstance(name, (list, tuple)):  # several fields on one line
                return type(name)(swap(each) for each in name)
            return self.viewer_displays.get(name, name)

        return [(title, {**options, "fields": [swap(name) for name in options["fields"]
                                               if name not in self.viewer_hidden]})
                for title, options in fieldsets]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Displays are never form fields, so the form never asks the model for them.
        return [*super().get_readonly_fields(request, obj), *self.viewer_displays.values()]


class SensitiveFormViews(admin.ModelAdmin):
    """For an admin whose form receives a secret: the report Django mails to ADMINS when the
    view fails shows neither the POST nor any frame's variables (cleaned_data, the object
    being saved)."""

    @method_decorator(sensitive_post_parameters())
    @method_decorator(sensitive_variables())
    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: dict[str, Any] | None = None
                        ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)


class ChangedByActionsOnly(StyledAdmin):
    """Pages of objects that the app itself keeps changing (a refresh, a delivery's worker):
    nothing is editable, and a full save() would write back a stale copy over a change that
    landed meanwhile. Changes go through the actions only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "show_save": False,
                         "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)
