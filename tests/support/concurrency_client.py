"""A separate OS process for the concurrency tests (python -m tests.support.concurrency_client …).

Reads its database and broker from the environment (DATABASE_URL, …) like a real web or
worker process of the host project, and prints one JSON line on stdout when done.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time


def hammer(args: argparse.Namespace) -> dict:
    """Ask for tokens in a loop and use each one at the provider's API."""
    from alloy_oauth.models import Credential
    from alloy_oauth.signals import credential_refreshed

    refreshed = []
    credential_refreshed.connect(lambda credential, **kw: refreshed.append(credential.pk),
                                 weak=False)
    # The provider revokes an access token when it rotates the refresh token, so a token
    # read a moment before another process refreshed is refused: the session then retries
    # once with the new one (it forces a refresh only if nobody has refreshed meanwhile).
    retried = []
    calls, rejected, errors = 0, [], []
    deadline = time.monotonic() + args.seconds
    # The first credential is left to the sweep (it refreshes 3 s before expiry; asking for
    # 1 s lets it go first), the others are refreshed on demand as often as not.
    sessions = {pk: Credential.objects.get(pk=pk).session(
                    min_valid=1 if pk == args.ids[0] else args.min_valid)
                for pk in args.ids}
    for session in sessions.values():
        session.hooks["response"].append(
            lambda response, **kw: retried.append(1) if response.status_code == 401 else None)
    while time.monotonic() < deadline:
        for credential_id in random.sample(args.ids, len(args.ids)):
            try:
                status = sessions[credential_id].get(args.api_url, timeout=10).status_code
            except Exception as exc:  # reported to the test, which fails on any
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            calls += 1
            if status != 200:
                rejected.append(status)
    return {"calls": calls, "rejected": rejected, "errors": errors[:20],
            "refreshed": len(refreshed), "retried_after_401": len(retried)}


def refresh_once(args: argparse.Namespace) -> dict:
    from alloy_oauth.refresh.single import refresh_one

    outcome = refresh_one(args.id, force=True)
    return {"result": str(outcome.result)}


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    loop = commands.add_parser("hammer")
    loop.add_argument("--ids", type=lambda v: [int(i) for i in v.split(",")], required=True)
    loop.add_argument("--seconds", type=float, required=True)
    loop.add_argument("--min-valid", type=int, required=True)
    loop.add_argument("--api-url", required=True)
    once = commands.add_parser("refresh")
    once.add_argument("--id", type=int, required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")
    import django

    django.setup()
    result = hammer(args) if args.command == "hammer" else refresh_once(args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
