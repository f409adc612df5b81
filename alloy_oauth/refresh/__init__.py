"""The refresh engine: keeps credentials fresh under any number of workers.

Providers that rotate refresh tokens with reuse detection revoke the whole grant when one
refresh token is presented twice, so two token requests for one credential must never be in
flight at once: every request is sent under the credential's lease (:mod:`.leases`), taken
under the one rule of :mod:`.eligibility`, and every outcome is written fenced by that lease
(:mod:`.records`). See ``docs/refresh.md``.

The app's own callers (tasks, admin, commands, views, the API session) import from the module
that does the job; this package re-exports nothing of them, so no module of it imports the
package back:

- :func:`.single.refresh_one`: one credential, now (web requests, the admin,
  ``manage.py alloy_oauth_refresh``, the ``refresh_credential`` task);
- :func:`.batch.refresh_batch`: many at once, for the sweep's batches;
- :func:`.revocation.revoke_credential`, :func:`.revocation.mark_reauth_required`;
- :func:`.on_demand.access_token`, :func:`.on_demand.refresh_for_caller`,
  :func:`.on_demand.raise_if_unusable`, :func:`.on_demand.secret_refused`: for host code and
  its API session;
- :func:`.sweep.due_credential_ids`: what the sweep enqueues.
"""

from ..outcomes import Outcome, Result

# Public (docs/api.md): what credential.refresh() and .revoke() return.
__all__ = ["Outcome", "Result"]
