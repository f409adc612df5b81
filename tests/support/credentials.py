"""Credentials as the tests make and read them."""

from __future__ import annotations

from alloy_oauth.models import Credential

#: The tokens of the ``credential`` fixture (tests/conftest.py) before any refresh.
OLD_ACCESS, OLD_REFRESH = "old-access-token", "old-refresh-token"


def stored(credential: Credential) -> Credential:
    return Credential.objects.get(pk=credential.pk)
