"""docs/api.md is the public API: every name it lists exists, and each module's ``__all__``
lists exactly the names docs/api.md gives for it (a name made public is documented; a
documented name is not dropped by accident)."""

from __future__ import annotations

import importlib
import re
from collections import defaultdict

import pytest

from tests.support import REPO_DIR

API = (REPO_DIR / "docs" / "api.md").read_text()
DOCUMENTED: dict[str, set[str]] = defaultdict(set)
for name in re.findall(r"^\| `(alloy_oauth\.[\w.]+)` \|", API, re.M):
    module, _, attribute = name.rpartition(".")
    DOCUMENTED[module].add(attribute)


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_the_documented_names_are_the_modules_public_names(module):
    imported = importlib.import_module(module)
    for attribute in DOCUMENTED[module]:
        assert hasattr(imported, attribute), f"{module}.{attribute} is documented, not there"
    assert set(getattr(imported, "__all__", ())) == DOCUMENTED[module]


def test_the_documented_task_and_url_names_exist():
    from celery import current_app
    from django.urls import reverse

    for task in re.findall(r"`(alloy_oauth\.tasks\.\w+)`", API):
        assert task in current_app.tasks, task
    for name in re.findall(r"`(alloy_oauth:\w+)`", API):
        reverse(name, args=[] if name in ("alloy_oauth:callback", "alloy_oauth:connections",
                                      "alloy_oauth:connections_status")
                else ["slug"])
