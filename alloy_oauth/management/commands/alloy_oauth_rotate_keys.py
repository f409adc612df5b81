"""manage.py alloy_oauth_rotate_keys: re-encrypt every stored secret with the first key of
FERNET_KEYS (or, with --check, only say where each one stands)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alloy_oauth import keys
from alloy_oauth.management import progress


class Command(BaseCommand):
    help = (
        "Re-encrypt client secrets, tokens, PKCE verifiers and token responses with the first "
        "key of FERNET_KEYS, in batches; safe while workers run, and idempotent (run it again "
        "to continue). --check only counts the values under an old key and lists those no "
        "configured key can decrypt."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true",
                            help="Count and list; change nothing.")
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, check: bool, batch_size: int, **options: Any) -> None:
        totals = {
            f"{model._meta.label}.{field.name}":
                model.objects.filter(**{f"{field.name}__isnull": False}).count()
            for model, field in keys.encrypted_columns()
        }
        done: dict[str, int] = {}

        def advance(label: str, rows: int) -> None:
            done[label] = done.get(label, 0) + rows
            progress.show(f"{label:<45} ", done[label], totals.get(label, 1))

        reports = keys.scan(rotate=not check, batch_size=batch_size, progress=advance)
        verb = "under an old key" if check else "re-encrypted"
        for report in reports:
            line = (f"{report.label}: {report.current} current, "
                    f"{report.old if check else report.rotated} {verb}, "
                    f"{report.undecryptable} undecryptable")
            if report.changed_meanwhile:
                line += f", {report.changed_meanwhile} changed meanwhile (run again)"
            self.stdout.write(line)
            if report.undecryptable_ids:
                more = report.undecryptable - len(report.undecryptable_ids)
                self.stdout.write("  undecryptable ids: " + ", ".join(
                    map(str, report.undecryptable_ids)) + (f" (and {more} more)" if more else ""))
        undecryptable = sum(r.undecryptable for r in reports)
        old = sum(r.old for r in reports) if check else sum(r.changed_meanwhile for r in reports)
        if undecryptable:
            raise CommandError(
                f"{undecryptable} value(s) cannot be decrypted with any key of FERNET_KEYS: "
                "restore the key they were written with (add it after the first), or have the "
                "connectors' secrets re-entered and the credentials reconnected.")
        if check and old:
            raise CommandError(f"{old} value(s) are still under an old key: run "
                               "manage.py alloy_oauth_rotate_keys before dropping it.")
