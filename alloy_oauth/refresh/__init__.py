"""The refresh engine: keeps credentials fresh under any number of workers.

Providers that rotate refresh tokens with reuse detection revoke the whole grant when one
refresh token is presented twice, so two token requests for one credential must never be in
flight at once: every request is sent under the credential's lease (:mod:`.leases`), taken
under the one rule of :mod:`.eligibility`, and every outcome is written fenced by that lease
(:mod:`.records`). See ``docs/refresh.md``.

- :func:`refresh_one` (:mod:`.single`): one credential, now (web requests, the admin,
  ``manage.py alloy_oauth_refresh``, the ``refresh_credential`` task);
- :func:`refresh_batch` (:mod:`.batch`): many at once, for the sweep's batches;
- :func:`revoke_credential`, :func:`mark_reauth_required` (:mod:`.revocation`);
- :func:`access_token`, :func:`refresh_for_caller`, :func:`raise_if_unusable`,
  :func:`secret_refused` (:mod:`.on_demand`): for host code and its API session;
- :func:`due_credential_ids` (:mod:`.sweep`): what the sweep enqueues.
"""

from .batch import refresh_batch
from .on_demand import access_token, raise_if_unusable, refresh_for_caller, secret_refused
from .outcomes import Outcome, Result
from .records import retry_delay
from .revocation import mark_reauth_required, revoke_credential
from .single import UNDECRYPTABLE_MESSAGE, refresh_one
from .sweep import due_credential_ids

# Public (docs/api.md): what credential.refresh() and .revoke() return. The functions above
# are the app's own callers' (tasks, admin, commands, views).
__all__ = ["Outcome", "Result"]
