"""The connector page's "Validate credential": it checks the values on the page, saved or not
(the add page's too), then Save keeps them validated.

1. :func:`validate` (POST, CSRF-checked): the page's form, bound as Save would bind it (so
   the stored client secret is used only where Save would use it), then the pre-flight
   (:func:`validation.preflight`) on those values; when it passes, the round trip is started
   for them (their draft kept encrypted with the pending authorization) and the page's popup
   goes to the provider.
2. The callback keeps the round trip's outcome in the operator's session
   (:func:`validation.finish`); the popup tells the page, which asks :func:`result`.
3. :func:`keep_validated`, on Save: values that are exactly those the round trip validated
   (same fingerprint) stay validated; any other change to an OAuth field clears the
   validation (``ConnectorForm.save``), and the connector stops being live.

Nothing here shows a secret: checks and reports never hold one, and form errors never repeat
a value typed in the secret field.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.template.loader import render_to_string
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from . import auth_types, authorization, connection_params, protocol, validation
from .models import AuthorizationRequest, Connector, callback_url
from .responses import FLOW_ID

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

#: Connection parameter values in the Validate request: ``param-shop=acme``.
PARAM_PREFIX = "param-"
#: The page's id for its popup (admin.js), sent with the Validate request.
FLOW_FIELD = "_alloy_oauth_flow"
#: The hidden field Save carries after a round trip: that popup's flow id.
PROOF_FIELD = "_alloy_oauth_validation"

#: How each line of a result reads: ✔, ✘ or ⚠ (and its CSS class, for its colour).
SYMBOLS = {"ok": "✔", "failed": "✘", "warning": "⚠"}


def posted_config(connector: Connector, data: Any) -> dict[str, str]:
    """The connection parameter values the operator entered beside "Validate credential"."""
    return {param.name: data[PARAM_PREFIX + param.name] for param in connector.params
            if isinstance(data.get(PARAM_PREFIX + param.name), str)}


def _row(name: str, state: str, message: str) -> dict[str, str]:
    return {"name": name, "state": state, "symbol": SYMBOLS[state], "message": message}


def report_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """A validation report (``Connector.validation_report``) as lines to show."""
    rows = [_row(check["name"], "ok" if check["ok"] else "failed", check["message"])
            for check in report.get("preflight", [])]
    if "scopes_granted" in report:
        rows.append(_row(_("Token"), "ok", _(
            "A %(type)s token was issued; it lasts %(life)s; refresh token: %(refresh)s.") % {
            "type": report["token_type"],
            "life": (_("%(seconds)s seconds") % {"seconds": report["expires_in"]}
                     if report.get("expires_in") else _("an unknown time (not given)")),
            "refresh": _("yes") if report.get("refresh_token") else _("no"),
        }))
        missing, extra = report.get("scopes_missing"), report.get("scopes_extra")
        message = _("Requested: %(requested)s. Granted: %(granted)s.") % {
            "requested": " ".join(report.get("scopes_requested", [])) or "—",
            "granted": " ".join(report.get("scopes_granted", [])) or "—"}
        if missing or extra:
            message += " " + _("Not granted: %(missing)s. Granted without asking: %(extra)s.") % {
                "missing": " ".join(missing or []) or "—", "extra": " ".join(extra or []) or "—"}
        rows.append(_row(_("Scopes"), "warning" if missing or extra else "ok", message))
        if "metadata" in report:
            found = report.get("metadata") or {}
            missing_keys = report.get("metadata_missing") or []
            rows.append(_row(_("Metadata"), "warning" if missing_keys else "ok", "; ".join(
                [f"{key} = {value}" for key, value in found.items()]
                + ([_("not sent by the provider: %(keys)s") % {"keys": ", ".join(missing_keys)}]
                   if missing_keys else [])) or "—"))
        test = report.get("test_request")
        if test:
            # Passed by the connector's own valid statuses (a report stored before it said
            # so: a 2xx).
            passed = test.get("ok", 200 <= test.get("status", 0) < 300)
            rows.append(_row(_("Test request"), "ok" if passed else "failed",
                             f"GET {test['url']} → " + str(test.get("status", test.get("error")))))
    if report.get("error") and not any(row["state"] == "failed" for row in rows):
        rows.append(_row(_("Sign-in at the provider"), "failed", report["error"]))
    if report.get("warning"):
        rows.append(_row(_("Warning"), "warning", report["warning"]))
    return rows


def report_table(report: dict[str, Any]) -> str:
    """:func:`report_rows` as the HTML table of the connector page's "last validation"."""
    return render_to_string("admin/alloy_oauth/connector/validation_report.html",
                            {"rows": report_rows(report)})


def _checks_json(checks: list[validation.Check], **more: Any) -> JsonResponse:
    return JsonResponse({"ok": all(check.ok for check in checks), "checks": [
        _row(check.name, "ok" if check.ok else "failed", check.message) for check in checks
    ], **more})


def _form_problems(form: Any) -> list[validation.Check]:
    """The form's errors as failed checks: Validate checks what Save would save."""
    checks = []
    for name, errors in form.errors.items():
        label = _("The form") if name not in form.fields else capfirst(form.fields[name].label)
        checks.append(validation.Check(label, False, " ".join(errors)))
    return checks


@sensitive_variables()
def validate(model_admin: ModelAdmin, request: HttpRequest, pk: int | None) -> JsonResponse:
    """Check the values on the page (``request.POST`` is its form) and, when the pre-flight
    passes, start the round trip for them: JSON for admin.js (``authorize_url`` for its
    popup)."""
    saved = get_object_or_404(Connector, pk=pk) if pk is not None else None
    allowed = (model_admin.has_change_permission(request, saved) if saved is not None
               else model_admin.has_add_permission(request))
    if not allowed:
        raise PermissionDenied
    form = model_admin.get_form(request, saved, change=saved is not None)(
        request.POST, instance=saved or Connector())
    if not form.is_valid():
        return _checks_json(_form_problems(form))
    draft = form.instance  # (the page's values, as Save would store them; not saved)
    config = posted_config(draft, request.POST)
    checks = validation.preflight(draft, redirect_uri=callback_url(request), config=config)
    if not all(check.ok for check in checks):
        return _checks_json(checks)
    flow = request.POST.get(FLOW_FIELD, "")
    flow = flow if FLOW_ID.fullmatch(flow) else ""
    if draft.auth_type != auth_types.OAUTH2:
        # No round trip in a popup: the pre-flight was the whole validation (for client
        # credentials, a token and the test request; an entered secret is checked when entered).
        report = draft.validation_report or {}
        validation.finish(request.session, flow, draft, report)
        return JsonResponse({"ok": True, "checks": report_rows(report)})
    back = (reverse("admin:alloy_oauth_connector_change", args=[pk]) if pk is not None
            else reverse("admin:alloy_oauth_connector_add"))
    try:
        authorize_url = authorization.start(
            draft, session=request.session, redirect_uri=callback_url(request),
            user=request.user, purpose=AuthorizationRequest.Purpose.VALIDATE, popup=True,
            flow_id=flow, next_url=back,
            connection_config=draft.connection_values(config)[0],
            draft=validation.draft_values(draft),
        )
    except (protocol.OAuthError, connection_params.ParameterError,
            authorization.TooManyPending) as exc:
        message = exc.message if isinstance(exc, connection_params.ParameterError) else str(exc)
        return _checks_json([*checks, validation.Check(_("Sign-in at the provider"), False,
                                                       message)])
    return _checks_json(checks, authorize_url=authorize_url)


def result(request: HttpRequest) -> JsonResponse:
    """The outcome of this operator's round trip ``?flow=`` (JSON: ``done``, ``ok``,
    ``rows``)."""
    outcome = request.session.get(validation.SESSION_KEY, {}).get(request.GET.get("flow", ""))
    if outcome is None:
        return JsonResponse({"done": False})
    return JsonResponse({"done": True, "ok": not outcome["error"],
                         "rows": report_rows(outcome["report"])})


def keep_validated(request: HttpRequest, connector: Connector) -> None:
    """Before Save: when the page carries a passed round trip of exactly these values, the
    connector is saved validated (else ``ConnectorForm.save`` has cleared the validation if an
    OAuth field changed)."""
    outcome = request.session.get(validation.SESSION_KEY, {}).get(
        request.POST.get(PROOF_FIELD, ""))
    if (outcome is None or outcome["error"]
            or outcome["fingerprint"] != validation.fingerprint(connector)):
        return
    connector.validated_at = datetime.fromisoformat(outcome["validated_at"])
    connector.validation_error = ""
    connector.validation_report = outcome["report"]
