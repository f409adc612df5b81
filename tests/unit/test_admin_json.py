"""The connector form's JSON fields refuse, as a field error, every value that the parser or
the database would fail on: through the admin, never a 500 and nothing saved."""

from __future__ import annotations

import pytest
from django import forms
from django.urls import reverse

from alloy_oauth.admin import ConnectorAdmin
from alloy_oauth.bounded_json import MAX_JSON_DEPTH, MAX_JSON_LENGTH, BoundedJSONField
from alloy_oauth.forms import ConnectorForm
from alloy_oauth.models import Connector

from tests.support.connector_page import VALID

pytestmark = pytest.mark.django_db

JSON_FIELDS = ["authorization_params", "token_params", "refresh_params", "connection_params",
               "metadata_fields", "callback_params"]


def nested(depth: int) -> str:
    """An object with ``depth`` levels of objects and lists."""
    return '{"a": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


#: value → what the error says.
HOSTILE = {
    "NaN": ('{"a": NaN}', "Numbers must be finite"),
    "Infinity": ('{"a": Infinity}', "Numbers must be finite"),
    "-Infinity": ('{"a": [-Infinity]}', "Numbers must be finite"),
    "1e999": ('{"a": 1e999}', "Numbers must be finite"),
    "-1e999": ('{"a": -1e999}', "Numbers must be finite"),
    "100,000 [": ("[" * 100_000, "Enter at most 10000 characters"),
    "5,000 [ ] (within the length)": ("[" * 5_000 + "]" * 5_000, "at most 10 levels deep"),
    "one level too deep": (nested(MAX_JSON_DEPTH + 1), "at most 10 levels deep"),
    "too long": ('{"a": "' + "x" * MAX_JSON_LENGTH + '"}', "Enter at most 10000 characters"),
    "5,000 digits": ('{"a": ' + "1" * 5_000 + "}", "Enter a valid JSON"),
    "NUL": ('{"a": "b\\u0000c"}', "NUL characters"),
    "NUL in a key": ('{"a\\u0000": "b"}', "NUL characters"),
    "unpaired surrogate": ('{"a": "\\ud800"}', "unpaired surrogates"),
}


@pytest.mark.parametrize("field", JSON_FIELDS)
@pytest.mark.parametrize("value, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_is_a_field_error(admin_client, connector, field, value, message):
    stored = Connector.objects.values().get(pk=connector.pk)
    for url in [reverse("admin:alloy_oauth_connector_add"),
                reverse("admin:alloy_oauth_connector_change", args=[connector.pk])]:
        data = {**VALID, "slug": "github", "client_secret": "", "token_url": connector.token_url,
                field: value}
        response = admin_client.post(url, data)
        assert response.status_code == 200, url
        errors = response.context["adminform"].form.errors
        assert list(errors) == [field], errors
        assert message in " ".join(errors[field])
        # The value comes back as typed, to be corrected.
        assert response.context["adminform"].form[field].value() == value
    assert list(Connector.objects.values()) == [stored]


def test_what_a_real_connector_needs_is_accepted(admin_client):
    value = nested(MAX_JSON_DEPTH)[:-1] + ', "b": "' + "x" * 9_000 + '", "c": 1e300, "d": -0.5}'
    assert len(value) <= MAX_JSON_LENGTH
    response = admin_client.post(reverse("admin:alloy_oauth_connector_add"),
                                 {**VALID, "token_params": value})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert float(Connector.objects.get().token_params["c"]) == 1e300  # PostgreSQL: an int


def test_brackets_inside_strings_are_no_nesting():
    field = BoundedJSONField()
    assert field.clean('{"a": "' + "[{" * 100 + '\\" ]]"}') == {"a": "[{" * 100 + '" ]]'}


def test_every_json_field_is_bounded(rf, admin_user):
    """The form's own fields, and those of the form the admin builds (with its own
    callback): every JSON field of the app's forms is a BoundedJSONField."""
    from django.contrib import admin

    request = rf.get("/")
    request.user = admin_user
    admin_form = ConnectorAdmin(Connector, admin.site).get_form(request)
    for form_class in (ConnectorForm, admin_form):
        json_fields = {name for name, field in form_class.base_fields.items()
                       if isinstance(field, forms.JSONField)}
        assert json_fields == set(JSON_FIELDS)
        assert all(isinstance(form_class.base_fields[name], BoundedJSONField)
                   for name in json_fields)
