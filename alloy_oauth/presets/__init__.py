"""Connector presets: what the connector form is filled with for a known provider.

The presets are data, in ``providers.toml`` beside this module (one reviewed file, each preset
citing the provider's documentation); this module reads them and turns one into the initial
values of the admin's add form. A preset never holds a client ID, a secret or scopes: the
operator pastes those.

A preset may name fields this version of the Connector model does not have (the token
placement fields of docs/configuration.md, a logo URL): those are left out of the form's
values, so a preset file written for a newer model still applies.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..models import Connector


#: The token placement fields (docs/configuration.md, "Authentication types") a preset may
#: name before the Connector model has them.
TOKEN_PLACEMENT_FIELDS = frozenset(
    {"token_placement", "token_header", "token_template", "token_query_param"})
#: The Connector field a preset's logo fills, where the model has it: it takes the path of a
#: static file (``alloy_oauth/logos/github.svg``) as well as an https URL.
LOGO_FIELD = "logo_url"
#: Fields a preset never fills: the operator's own values, and what the app keeps itself.
#: What starts the anchor of each preset's recipe in docs/providers.md (``recipe-github``):
#: the connector form links ``PROVIDER_RECIPES_URL#recipe-<slug>``, and the admin's script
#: builds the same anchor when the operator picks another preset.
RECIPE_ANCHOR_PREFIX = "recipe-"
OPERATOR_FIELDS = frozenset({
    "client_id", "client_secret", "scope", "is_active", "validated_at", "validation_error",
    "validation_report", "created_at", "updated_at", "id",
})


@dataclass(frozen=True)
class Preset:
    """One provider's preset, as ``providers.toml`` gives it."""

    slug: str
    name: str
    #: The provider's documentation of its OAuth 2.0 flow, which the values come from.
    docs: str
    #: Connector field → value (JSON fields as Python values).
    fields: dict[str, Any] = field(default_factory=dict)
    #: A static path (``alloy_oauth/logos/<slug>.svg``), or empty.
    logo: str = ""
    notes: str = ""

    @property
    def recipe_anchor(self) -> str:
        """The anchor of this preset's recipe in docs/providers.md (stable: made from the
        slug, not from a heading's wording)."""
        return RECIPE_ANCHOR_PREFIX + self.slug

    def initial(self) -> dict[str, Any]:
        """The add form's initial values: the name, the slug and each field the Connector
        model has (a field it does not have yet is left out)."""
        names = model_field_names()
        values = {"name": self.name, "slug": self.slug}
        values.update({key: value for key, value in self.fields.items() if key in names})
        if self.logo and LOGO_FIELD in names:
            values[LOGO_FIELD] = self.logo
        return values


def model_field_names() -> set[str]:
    return {model_field.name for model_field in Connector._meta.get_fields()
            if getattr(model_field, "concrete", False)}


@functools.cache
def all_presets() -> tuple[Preset, ...]:
    """Every preset, sorted by name (read once per process)."""
    text = resources.files(__package__).joinpath("providers.toml").read_text(encoding="utf-8")
    entries = tomllib.loads(text)["preset"]
    return tuple(sorted((Preset(**entry) for entry in entries), key=lambda p: p.name.lower()))


def get_preset(slug: str) -> Preset | None:
    return next((preset for preset in all_presets() if preset.slug == slug), None)
