"""Encryption keys: which key each stored secret is under, and re-encrypting them all with
the first key of ``FERNET_KEYS`` (``manage.py alloy_oauth_rotate_keys``).

Rotating a key: put the new key first in ``FERNET_KEYS`` (keep the old ones after it), deploy,
run the command until it reports nothing under an old key, then drop the old keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.db import router

from . import sql
from .fields import EncryptedTextField

#: Undecryptable ids listed per column (the count is always complete).
MAX_IDS_LISTED = 50


def encrypted_columns() -> list[tuple[Any, Any]]:
    """``(model, field)`` for every encrypted field of this app."""
    return [
        (model, model_field)
        for model in apps.get_app_config("alloy_oauth").get_models()
        for model_field in model._meta.concrete_fields
        if isinstance(model_field, EncryptedTextField)
    ]


def reload_keys(**kwargs: Any) -> None:
    """Forget the keys the fields derived from ``FERNET_KEYS`` (they cache them): connected
    to ``setting_changed``, and called before a rotation."""
    for _, model_field in encrypted_columns():
        for cached in ("keys", "fernet_keys", "fernet"):
            model_field.__dict__.pop(cached, None)


@dataclass
class ColumnReport:
    label: str
    current: int = 0
    old: int = 0
    rotated: int = 0
    changed_meanwhile: int = 0
    undecryptable: int = 0
    undecryptable_ids: list[Any] = field(default_factory=list)

    def add_undecryptable(self, pk: Any) -> None:
        self.undecryptable += 1
        if len(self.undecryptable_ids) < MAX_IDS_LISTED:
            self.undecryptable_ids.append(pk)


def scan(
    *,
    rotate: bool,
    batch_size: int = 1000,
    progress: Callable[[str, int], None] | None = None,
) -> list[ColumnReport]:
    """Look at every encrypted value; with ``rotate``, re-encrypt those under an old key with
    the first key. In batches, never holding more than one batch in memory; each value is
    rewritten only if it has not changed since it was read (a refresh may be writing new
    tokens meanwhile), so it is safe while workers run, and running it again continues where
    it stopped. Values no key can decrypt are counted and listed, never touched."""
    reload_keys()
    primary, *old_keys = [Fernet(key) for key in encrypted_columns()[0][1].fernet_keys]
    reports = []
    for model, model_field in encrypted_columns():
        report = ColumnReport(f"{model._meta.label}.{model_field.name}")
        reports.append(report)
        alias = router.db_for_write(model)
        for rows in sql.encrypted_values(alias, model, model_field, batch_size):
            updates = []
            for pk, value in rows:
                token = bytes(value)
                try:
                    primary.decrypt(token)
                    report.current += 1
                    continue
                except InvalidToken:
                    pass
                found = _decrypt_with_old_key(old_keys, token)
                if found is None:
                    report.add_undecryptable(pk)
                    continue
                report.old += 1
                if rotate:
                    plain, old_key = found
                    # An empty value need not be encrypted at all (see EncryptedTextField).
                    # Otherwise as MultiFernet.rotate() does, without decrypting it again.
                    rotated = (None if plain == b"" and model_field.null else
                               primary.encrypt_at_time(plain, old_key.extract_timestamp(token)))
                    updates.append((rotated, pk, token))
            if updates:
                report.rotated += sql.rewrite_encrypted_values(alias, model, model_field, updates)
            report.changed_meanwhile = report.old - report.rotated if rotate else 0
            if progress:
                progress(report.label, len(rows))
    return reports


def _decrypt_with_old_key(old_keys: list[Fernet], token: bytes) -> tuple[bytes, Fernet] | None:
    """The plain value of a value under one of the old keys, and that key; or None."""
    for key in old_keys:
        try:
            return key.decrypt(token), key
        except InvalidToken:
            continue
    return None
