"""Connection parameters and metadata: connector URLs that depend on the connection.

A connector's URLs may name *connection parameters*, values collected before the
authorization starts (``https://{shop}.myshopify.com/admin/oauth/authorize``), and its API
base URL may also name *metadata*, values the provider returned when the account was
connected (``{metadata.instance_url}/services/data/v62.0``). This package parses those
templates, checks values, builds the URLs and picks the metadata out of a token response; the
flow, the refresh engine, the revocation and the API session call it, and the protocol layer
only ever receives finished URLs. It knows no model: it works on the connector's JSON.

- :mod:`.params`: the parameters the operator declares, and checking end users' values;
- :mod:`.templates`: the placeholder syntax (``{name}``, ``{metadata.key}``), and the
  account label;
- :mod:`.urls`: checking URL templates and building each account's URLs, no value leaving its
  slot (the rules are there);
- :mod:`.metadata`: picking metadata out of token responses and callbacks.

Everything public is importable from here (``from alloy_oauth import connection_params``).
"""

from __future__ import annotations

from .metadata import (
    MAX_METADATA_LENGTH,
    MAX_PATH_DEPTH,
    PROTOCOL_CALLBACK_PARAMS,
    callback_metadata,
    is_secret_field,
    metadata_spec_problems,
    metadata_value,
    token_metadata,
)
from .params import (
    MAX_VALUE_LENGTH,
    NAME,
    RESERVED_NAMES,
    InvalidValues,
    Param,
    ParameterError,
    checked_values,
    declared,
    pattern_problem,
    read_values,
    spec_problems,
)
from .templates import METADATA_PREFIX, has_placeholders, label, label_problem, placeholders
from .urls import build_url, sample_url, template_problem, within_domain_of

__all__ = [
    "MAX_METADATA_LENGTH", "MAX_PATH_DEPTH", "MAX_VALUE_LENGTH", "METADATA_PREFIX", "NAME",
    "PROTOCOL_CALLBACK_PARAMS", "RESERVED_NAMES", "InvalidValues", "Param", "ParameterError",
    "build_url", "callback_metadata", "checked_values", "declared", "has_placeholders",
    "is_secret_field", "label", "label_problem", "metadata_spec_problems", "metadata_value",
    "pattern_problem", "placeholders", "read_values", "sample_url", "spec_problems",
    "template_problem", "token_metadata", "within_domain_of",
]
