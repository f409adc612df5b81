"""The package's layers (docs/architecture.md), kept true: no module imports a module of a
higher layer, and no two modules import each other, directly or round about. Read from the
source with ``ast``. Imports under ``if TYPE_CHECKING:`` are for type checkers only: they
do not count for the layers, but they do for cycles (as import-linter's graph counts them),
so no tool finds a circle either."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.support import REPO_DIR

PACKAGE = REPO_DIR / "alloy_oauth"

#: Lowest first. A module may import its own layer and those below.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundations: no model, no request", [
        "alloy_oauth", "alloy_oauth.conf", "alloy_oauth.redaction", "alloy_oauth.protocol*",
        "alloy_oauth.connection_params*", "alloy_oauth.beat", "alloy_oauth.exceptions",
        "alloy_oauth.auth_types", "alloy_oauth.outcomes"]),
    ("data", ["alloy_oauth.fields", "alloy_oauth.querysets", "alloy_oauth.models*"]),
    ("data access beyond the ORM, signals, read-only summaries", [
        "alloy_oauth.sql", "alloy_oauth.signals", "alloy_oauth.health", "alloy_oauth.metrics"]),
    ("services", [
        "alloy_oauth.refresh*", "alloy_oauth.authorization", "alloy_oauth.validation",
        "alloy_oauth.headless", "alloy_oauth.keys", "alloy_oauth.session",
        "alloy_oauth.credential_methods", "alloy_oauth.webhooks*", "alloy_oauth.discovery",
        "alloy_oauth.presets*", "alloy_oauth.api_check", "alloy_oauth.entered_secrets",
        "alloy_oauth.tickets", "alloy_oauth.credential_store"]),
    ("interfaces: web, admin, Celery, commands, checks", [
        "alloy_oauth.views", "alloy_oauth.responses", "alloy_oauth.urls", "alloy_oauth.admin*",
        "alloy_oauth.forms", "alloy_oauth.bounded_json", "alloy_oauth.tasks", "alloy_oauth.templatetags*",
        "alloy_oauth.management*", "alloy_oauth.checks", "alloy_oauth.secret_forms",
        "alloy_oauth.key_entry", "alloy_oauth.connector_auth"]),
    ("the app's wiring", ["alloy_oauth.apps"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    found = [index for index, (_, patterns) in enumerate(LAYERS)
             if any(fnmatch(module, pattern) for pattern in patterns)]
    assert found, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return max(found)


def imports(path: Path, *, type_checking: bool = False) -> set[str]:
    """The alloy_oauth modules ``path`` imports at run time (and for type checkers too, with
    ``type_checking``)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    for_type_checkers = set() if type_checking else {
        id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
        and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in for_type_checkers:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("alloy_oauth"):
                continue
            for alias in node.names:  # `from . import refresh` imports a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("alloy_oauth")}
    return {name for name in found if name != module}


SOURCES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))
           if "migrations" not in path.parts}
MODULES = set(SOURCES)
GRAPH = {module: imports(path) & MODULES for module, path in SOURCES.items()}
ALL_IMPORTS = {module: imports(path, type_checking=True) & MODULES
               for module, path in SOURCES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    higher = {imported: LAYERS[layer_of(imported)][0] for imported in GRAPH[module]
              if layer_of(imported) > layer_of(module)}
    assert not higher, f"{module} ({LAYERS[layer_of(module)][0]}) imports {higher}"


def test_no_import_cycle():
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for imported in sorted(ALL_IMPORTS[module]):
            if seen.get(imported) == 1:
                cycle = path[path.index(imported):] + [imported]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if imported not in seen:
                visit(imported, [*path, imported])
        seen[module] = 2

    for module in sorted(MODULES):
        if module not in seen:
            visit(module, [module])


def test_the_models_import_no_service():
    models = {module for module in MODULES if fnmatch(module, "alloy_oauth.models*")}
    assert len(models) > 1
    assert not {imported for module in models for imported in GRAPH[module]
                if layer_of(imported) > layer_of("alloy_oauth.models")}


#: One job per module (issue 17): a module past this has taken on a second one.
MAX_MODULE_LINES = 400


def test_no_module_is_over_400_lines():
    long = {module: lines for module, path in SOURCES.items()
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split by job (docs/architecture.md): {long}"


def test_test_modules_share_code_only_through_support_and_conftest():
    """A test module imports no other test module: what tests share is in tests/support (code)
    or a conftest.py (fixtures), so a test folder runs on its own."""
    shared = []
    for path in sorted((REPO_DIR / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                names = [alias.name for alias in node.names]
                if any(part.startswith("test_") for part in target.split(".")) or (
                        node.level and not node.module
                        and any(name.startswith("test_") for name in names)):
                    shared.append(f"{path.relative_to(REPO_DIR)}: from {target} import …")
            elif isinstance(node, ast.Import):
                shared += [f"{path.relative_to(REPO_DIR)}: import {alias.name}"
                           for alias in node.names
                           if any(part.startswith("test_") for part in alias.name.split("."))]
    assert not shared, "move what is shared to tests/support or a conftest.py:\n" + "\n".join(shared)
