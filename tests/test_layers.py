"""Imports point one way: api → services → decision_engine → engine, schemas → rulesets → decisionlog.

Every module under service/ is read with `ast` (nothing is imported) and every import it
makes — at module level or inside a function — is checked against its layer: a module may
import its own layer and the layers below, never one above. Besides, nothing in api/ (or the
other HTTP front ends) imports the decision log: views go through the services.
A new package under service/ must be given a layer here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parent.parent / "service"

# Leaf modules: the error vocabulary and small shared values; any layer may use them, they use no layer.
LEAF = 0
LAYERS: dict[str, int] = {
    "service.errors": LEAF, "service.contract": LEAF, "service.identifiers": LEAF, "service.canonical": LEAF,
    "service.config": LEAF, "service.metrics": LEAF, "service.accesslog": LEAF,
    "service.decisionlog": 1,                               # the store: registry rows and the decision log
    "service.rulesets": 2,                                  # documents, parsing, model, static checks
    "service.engine": 3, "service.schemas": 3,              # compiler/evaluator; marshmallow validation
    "service.decision_engine": 4,                           # the load pipeline + in-process API
    "service.boundary": 5, "service.catalog": 5, "service.decisions": 5, "service.audit": 5,
    "service.impact": 5, "service.rollouts": 5, "service.jobs": 5,                   # services
    "service.api": 6, "service.console": 6, "service.cli": 6, "service.wsgi": 6,          # front ends
    "service.serving": 6,                                   # the gunicorn worker class
    "service": 6,                                           # create_app: wiring
}
# Command-line entry points of a package (python -m service.x) wire that package: top layer.
ENTRY_POINT = "__main__"
FRONT_ENDS = ("service.api", "service.console", "service.cli", "service.serving")
FORBIDDEN_FOR_FRONT_ENDS = ("service.decisionlog",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVICE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer_of(module: str) -> tuple[str, int] | None:
    """The most specific LAYERS entry containing this module (`service` itself names only
    service/__init__.py: a new top-level module must be given its own layer)."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    return ("service", LAYERS["service"]) if module == "service" else None


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every service import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "service" or (node.level and not node.module):
                # `from service import x` / `from . import x`: x may be a module
                out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, target))
    return [(line, name) for line, name in out if name == "service" or name.startswith("service.")]


def _all_modules() -> list[tuple[Path, str]]:
    return sorted((path, _module_name(path)) for path in SERVICE.rglob("*.py"))


def _violations() -> list[str]:
    problems = []
    for path, module in _all_modules():
        own = _layer_of(module)
        if own is None:
            problems.append(f"{module}: no layer; give its package one in tests/test_layers.py")
            continue
        own_layer = LAYERS["service"] if module.endswith("." + ENTRY_POINT) else own[1]
        for line, target in _imports(path, module):
            if target == "service" and module != "service":
                continue  # `import service` alone names the package, not a layer
            theirs = _layer_of(target)
            if theirs is None:
                continue  # a module that does not exist is the import system's problem, not this test's
            where = f"{path.relative_to(SERVICE.parent)}:{line}"
            if module.startswith(FRONT_ENDS) and target.startswith(FORBIDDEN_FOR_FRONT_ENDS):
                problems.append(f"{where}: {module} imports {target}: front ends reach the store through services")
            elif own_layer == LEAF and theirs[1] != LEAF:
                problems.append(f"{where}: leaf module {module} imports {target}")
            elif theirs[1] > own_layer and theirs[1] != LEAF and not target.startswith(own[0]):
                problems.append(f"{where}: {module} (layer {own_layer}) imports {target} (layer {theirs[1]}): upward")
    return problems


def test_imports_point_one_way():
    problems = _violations()
    assert not problems, "\n".join(problems)


def test_every_package_has_a_layer():
    assert all(_layer_of(module) for _, module in _all_modules())


@pytest.mark.parametrize("source, module, expected", [
    ("from service.decisionlog import Store\n", "service.api.fake", "front ends reach the store"),
    ("def f():\n    import service.decisionlog.sqlite\n", "service.api.fake", "front ends reach the store"),
    ("from service.catalog import Catalog\n", "service.engine.fake", "upward"),
    ("from ..decisions import DecisionService\n", "service.rulesets.fake", "upward"),
    ("from service import decisions\n", "service.schemas.fake", "upward"),
    ("from service.rulesets import model\n", "service.errors_fake_leaf", "leaf module"),
])
def test_the_checker_catches_a_wrong_import(tmp_path, monkeypatch, source, module, expected):
    """The checker is not a rubber stamp: each kind of wrong import is reported."""
    fake_root = tmp_path / "service"
    relative = Path(*module.split(".")[1:]).with_suffix(".py")
    target = fake_root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__, fromlist=["SERVICE"]), "SERVICE", fake_root)
    if module == "service.errors_fake_leaf":
        monkeypatch.setitem(LAYERS, module, LEAF)
    assert any(expected in p for p in _violations()), _violations()
