"""The connector form's authentication part: which fields each authentication type uses
(the page's script shows only those, ``static/alloy_oauth/auth_types.js``), and the same
rules on the server: what each type needs, and a token placement that can work."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext as _

from . import api_check, auth_types

#: Fields every type uses.
COMMON = ("name", "slug", "is_active", "auth_type", "api_base_url", "test_request_path",
          "test_request_statuses", "token_placement", "token_header", "token_template",
          "token_query_param", "connection_params", "allow_multiple_accounts", "account_label")
_CLIENT = ("token_url", "client_id", "client_secret", "scope", "scope_separator",
           "client_auth_method", "token_params", "refresh_lead_time", "default_expires_in",
           "revocation_url", "metadata_fields")
#: The fields of each type, beyond :data:`COMMON`, in the order of the page.
FIELDS_BY_TYPE: dict[str, tuple[str, ...]] = {
    auth_types.OAUTH2: ("callback_url", "auth_url", *_CLIENT, "refresh_url", "refresh_params",
                        "keepalive_interval", "callback_params", "use_pkce",
                        "authorization_params", "issuer", "require_issuer"),
    auth_types.CLIENT_CREDENTIALS: _CLIENT,
    auth_types.API_KEY: (),
    auth_types.BASIC: (),
    auth_types.BEARER: (),
}
#: What each type cannot work without.
REQUIRED: dict[str, tuple[str, ...]] = {
    auth_types.OAUTH2: ("auth_url", "token_url", "client_id"),
    auth_types.CLIENT_CREDENTIALS: ("token_url", "client_id"),
    # The host an entered secret may be sent to (credential.session() sends it nowhere else).
    auth_types.API_KEY: ("api_base_url",),
    auth_types.BASIC: ("api_base_url",),
    auth_types.BEARER: ("api_base_url",),
}
#: Filled in when the form leaves them out (older forms, scripts that post a connector).
DEFAULTS = {"auth_type": auth_types.OAUTH2, "token_placement": auth_types.HEADER,
            "token_header": auth_types.DEFAULT_HEADER, "token_template": auth_types.DEFAULT_TEMPLATE}


def prepare(form: forms.ModelForm) -> None:
    """Loosen the fields the server fills in, and hand the page the fields of each type."""
    for name in DEFAULTS:
        if name in form.fields:
            form.fields[name].required = False
    form.auth_type_fields = {kind: [*COMMON, *fields] for kind, fields in FIELDS_BY_TYPE.items()}


def clean(form: forms.ModelForm, cleaned: dict[str, Any]) -> None:
    """Defaults for what was left out, then each type's rules, as errors on the form."""
    for name, default in DEFAULTS.items():
        if name in form.fields and not cleaned.get(name):
            cleaned[name] = default
            if name in form.changed_data and form.get_initial_for_field(
                    form.fields[name], name) == default:
                form.changed_data.remove(name)  # left out, not changed
    auth_type = cleaned.get("auth_type", auth_types.OAUTH2)
    for name in REQUIRED.get(auth_type, ()):
        if name in form.fields and not cleaned.get(name) and name not in form.errors:
            form.add_error(name, _("A connector of this authentication type needs it."))
    placement = cleaned.get("token_placement")
    if placement == auth_types.QUERY:
        if auth_type == auth_types.BASIC:
            form.add_error("token_placement", _("Basic credentials go in a header."))
        elif not cleaned.get("token_query_param"):
            form.add_error("token_query_param", _("Name the query parameter, e.g. api_key."))
    elif "token_template" in cleaned:
        problem = auth_types.template_problem(cleaned["token_template"], auth_type)
        if problem:
            form.add_error("token_template", problem)
        header = cleaned.get("token_header", "")
        if header and not header.replace("-", "").replace("_", "").isalnum():
            form.add_error("token_header", _("A header name is letters, digits and dashes."))
    statuses = cleaned.get("test_request_statuses", "")
    if statuses and api_check.status_problem(statuses):
        form.add_error("test_request_statuses", api_check.status_problem(statuses))
