"""What ``Credential.get_access_token()``, ``.session()``, ``.refresh()`` and ``.revoke()``
do: they hand over to the refresh engine and the API session, which build on the models.
``AlloyOAuthConfig.ready()`` wires this module into the models (they do not import it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .refresh.on_demand import access_token, refresh_for_caller
from .refresh.revocation import revoke_credential
from .session import CredentialSession

if TYPE_CHECKING:
    from .models import Credential


def session(credential: Credential, *, min_valid: int) -> CredentialSession:
    return CredentialSession(credential, min_valid=min_valid)


__all__ = ["access_token", "refresh_for_caller", "revoke_credential", "session"]
