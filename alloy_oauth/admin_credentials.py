"""Adding a credential in the admin: a client credentials credential (no secret: the engine
fetches its token), or the operator's shared API key, user name and password or bearer
token, checked with the connector's test request before it is stored. OAuth 2.0
credentials are only ever made by an end user connecting."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import auth_types, entered_secrets
from .models import Connector, Credential, CredentialEvent
from .outcomes import Result
from .refresh.single import refresh_one
from .secret_forms import EnteredSecretForm
from .signals import credential_connected, send


class ConnectorSelect(forms.Select):
    """Options that carry their connector's type, for the page's script (auth_types.js)."""

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-auth-type"] = instance.auth_type
        return option


class CredentialAddForm(forms.ModelForm):
    api_key = EnteredSecretForm.base_fields["api_key"]
    username = EnteredSecretForm.base_fields["username"]
    password = EnteredSecretForm.base_fields["password"]
    access_token = EnteredSecretForm.base_fields["access_token"]

    class Meta:
        model = Credential
        fields = ["connector", "user", "external_id", "connection_config"]
        widgets = {"connector": ConnectorSelect}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connector"].queryset = Connector.objects.exclude(
            auth_type=auth_types.OAUTH2)
        # The page's script shows the secret fields of the chosen connector's type.
        select = self.fields["connector"].widget
        select = getattr(select, "widget", select)  # (the admin wraps it: add/change links)
        select.attrs["data-alloy-oauth-secret-fields"] = json.dumps(entered_secrets.FIELDS)
        self.fields["connector"].help_text = _(
            "Client credentials, API key, Basic or Bearer connectors. (OAuth 2.0 credentials "
            "are created by end users connecting.)")
        for name in ("api_key", "username", "password", "access_token"):
            self.fields[name].required = False  # which ones: the connector's type says
        self.fields["api_key"].help_text = _("API key connectors. Write-only: never shown again.")
        self.fields["username"].help_text = _("Basic connectors.")
        self.fields["password"].help_text = _("Basic connectors. Write-only.")
        self.fields["access_token"].help_text = _("Bearer connectors. Write-only.")

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        connector = cleaned.get("connector")
        if connector is None:
            return cleaned
        user, external_id = cleaned.get("user"), cleaned.get("external_id")
        if (user is None) == (not external_id):
            raise ValidationError(_("Choose a user or enter an external ID (one of them)."))
        owner = {"user": user} if user is not None else {"external_id": external_id}
        if (not connector.allow_multiple_accounts
                and Credential.objects.filter(connector=connector, **owner).exists()):
            raise ValidationError(_("This owner already has a credential for this connector: "
                                    "revoke or delete it first."))
        config = cleaned.get("connection_config") or {}
        if connector.params or config:
            values, errors = connector.connection_values(config if isinstance(config, dict)
                                                         else {})
            if errors:
                raise ValidationError(" ".join(errors.values()))
            cleaned["connection_config"] = values
        missing = [self.fields[name].label for name in entered_secrets.fields_of(connector)
                   if not cleaned.get(name)]
        if missing:
            raise ValidationError(_("A %(type)s connector needs: %(fields)s.") % {
                "type": connector.get_auth_type_display(), "fields": ", ".join(map(str, missing))})
        problem = entered_secrets.check(connector, self.secret_values(),
                                        cleaned.get("connection_config") or {})
        if problem:
            raise ValidationError(_("Not stored: %(problem)s") % {"problem": problem})
        return cleaned

    @sensitive_variables()
    def secret_values(self) -> dict[str, str]:
        connector = self.cleaned_data["connector"]
        return {name: self.cleaned_data.get(name) or ""
                for name in entered_secrets.fields_of(connector)}


class CredentialAddMixin(admin.ModelAdmin):
    """The add page of the credential admin (whose other pages change nothing)."""

    add_form = CredentialAddForm
    raw_id_fields = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = None
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["connector", "user", "external_id", "connection_config", "api_key",
                    "username", "password", "access_token"]
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return super().get_readonly_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [] if obj is None else super().get_inlines(request, obj)

    @sensitive_variables()
    def save_model(self, request: HttpRequest, obj: Credential, form: Any, change: bool) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        connector = obj.connector
        who = request.user.get_username()
        if connector.auth_type in auth_types.ENTERED_TYPES:
            entered_secrets.store(connector, form.secret_values(), user=obj.user,
                                  external_id=obj.external_id, config=obj.connection_config,
                                  by=who, into=obj)
            return
        obj.save()  # client credentials: due now, without a token
        CredentialEvent.objects.create(credential=obj, kind=CredentialEvent.Kind.CONNECTED,
                                       detail=_("Created by %(who)s.") % {"who": who})
        send(credential_connected, obj, created=True)
        # Once the new row is committed (the engine works outside the admin's transaction).
        transaction.on_commit(lambda: self._fetch_first_token(request, obj.pk))

    def _fetch_first_token(self, request: HttpRequest, credential_id: int) -> None:
        outcome = refresh_one(credential_id, wait=True)
        if outcome.result is Result.REFRESHED:
            self.message_user(request, _("A token was fetched from the token endpoint."),
                              messages.SUCCESS)
        else:
            self.message_user(request, _("No token yet (the sweep will try again): "
                                         "%(message)s") % {"message": outcome.message},
                              messages.WARNING)

    # --- replacing an entered secret ------------------------------------------------------

    def get_urls(self) -> list[Any]:
        return [path("<int:pk>/replace-secret/",
                     self.admin_site.admin_view(self.replace_secret_view),
                     name="alloy_oauth_credential_replace_secret"),
                *super().get_urls()]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        credential = self.get_object(request, object_id)
        if (credential is not None and self.has_change_permission(request, credential)
                and credential.connector.auth_type in auth_types.ENTERED_TYPES):
            extra_context = {**(extra_context or {}), "replace_secret_url": reverse(
                "admin:alloy_oauth_credential_replace_secret", args=[credential.pk])}
        return super().change_view(request, object_id, form_url, extra_context)

    @method_decorator(sensitive_post_parameters())
    @method_decorator(sensitive_variables())
    def replace_secret_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The operator types a new API key, password or bearer token (write-only), checked
        with the test request before it replaces the stored one."""
        credential = get_object_or_404(Credential.objects.select_related("connector"), pk=pk)
        connector = credential.connector
        if not self.has_change_permission(request, credential):
            raise PermissionDenied
        if connector.auth_type not in auth_types.ENTERED_TYPES:
            raise PermissionDenied
        form = EnteredSecretForm(connector, request.POST or None,
                                 config=credential.connection_config)
        if request.method == "POST" and form.is_valid():
            entered_secrets.store(connector, form.secret_values(), user=credential.user,
                                  external_id=credential.external_id,
                                  config=credential.connection_config,
                                  by=request.user.get_username(), into=credential)
            self.message_user(request, _("The secret was checked and replaced."),
                              messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:alloy_oauth_credential_change",
                                                args=[pk]))
        return TemplateResponse(request, "admin/alloy_oauth/credential/replace_secret.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "original": credential,
            "form": form, "title": _("Replace the secret of %(credential)s") % {
                "credential": credential}}, status=400 if form.errors else 200)

    class Media:
        js = ["alloy_oauth/auth_types.js"]

