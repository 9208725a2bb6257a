"""The package layers (see docs/architecture.md): a module may import only from its own layer or a lower one.

The check reads the source with ``ast`` (nothing is imported), so it also sees imports inside
functions and under ``if TYPE_CHECKING:``. A module missing from ``LAYERS`` fails the test: add it
to the table here and to docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "lakehouse"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

# Layer of every module (key = first component below ``lakehouse``; ``__init__`` is the package itself).
# Lower numbers are more basic. Modules listed but not yet written are simply skipped.
LAYERS: dict[str, int] = {
    "errors": 0,
    "arguments": 0,
    "_version": 0,
    "progress": 0,
    "storage": 1,
    "storage_options": 1,
    "localfs": 1,
    "log": 2,
    "schema": 2,
    "partitioning": 3,
    "stats": 3,
    "expressions": 3,
    "literals": 3,
    "properties": 3,
    "constraints": 3,
    "evolution": 3,
    "sqlfilter": 3,
    "setexpr": 3,
    "state": 4,
    "checkpoint": 4,
    "replay": 4,
    "snapshot": 4,
    "tasks": 4,
    "scan": 5,
    "write": 5,
    "commit": 5,
    "creation": 5,
    "records": 5,
    "transaction": 6,
    "alter": 6,
    "table": 6,
    "writer": 6,
    "inspect": 6,
    "probe": 6,
    "rowlevel": 6,
    "merge": 6,
    "__init__": 7,
    # planned (design): lazy integrations, the command line
    "maintenance": 5,
    "integrations": 9,
    "cli": 10,
    "dask": 10,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _layer_key(module: str) -> str:
    """Layer key: ``lakehouse.log`` -> ``log``, ``lakehouse`` -> ``__init__``, subpackages -> their name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    base = PACKAGE_DIR / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imported_modules(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, dotted module) for every import of a ``lakehouse`` module in ``path`` (or ``source``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    text = path.read_text(encoding="utf-8") if source is None else source
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: max(0, len(package.split(".")) - (node.level - 1))]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # ``from . import log`` imports the module ``lakehouse.log``; ``from . import X`` with X a
                # name defined in ``lakehouse/__init__.py`` imports the package itself.
                found.append((node.lineno, sub if alias.name != "*" and _is_module(sub) else base))
    return found


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_package_found() -> None:
    assert (PACKAGE_DIR / "errors.py").is_file(), f"layer test cannot find the package at {PACKAGE_DIR}"


def test_every_module_has_a_layer() -> None:
    unknown = sorted({_module_name(p) for p in _package_files() if _layer_key(_module_name(p)) not in LAYERS})
    assert not unknown, (
        f"modules without a layer: {unknown}. Add each to LAYERS in tests/test_architecture.py "
        "and to the layer table in docs/architecture.md."
    )


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: _module_name(p))
def test_imports_respect_layers(path: Path) -> None:
    source = _module_name(path)
    source_key = _layer_key(source)
    if source_key not in LAYERS:
        pytest.skip(f"{source} has no layer (reported by test_every_module_has_a_layer)")
    source_layer = LAYERS[source_key]
    problems = []
    for line, target in sorted(set(_imported_modules(path))):
        key = _layer_key(target)
        if key not in LAYERS:
            problems.append(f"line {line}: imports {target}, which has no layer in LAYERS")
        elif LAYERS[key] > source_layer:
            problems.append(
                f"line {line}: imports {target} (layer {LAYERS[key]}) from layer {source_layer}; "
                f"a module may only import from layers <= its own"
            )
    rel = path.relative_to(PACKAGE_DIR.parent)
    assert not problems, f"{rel} ({source}, layer {source_layer}) breaks the layering:\n" + "\n".join(
        problems
    )


def test_checker_resolves_imports() -> None:
    """The resolver itself: relative and absolute forms map to the right modules; others are ignored."""
    source = (
        "from . import errors\n"
        "from .log import X\n"
        "from lakehouse.table import T\n"
        "import lakehouse.scan\n"
        "from lakehouse import Table\n"
        "from .. import outside\n"
        "import os\n"
        "def f():\n"
        "    from .commit import C\n"
    )
    found = sorted(t for _, t in _imported_modules(PACKAGE_DIR / "errors.py", source))
    assert found == sorted(
        [
            "lakehouse.errors",
            "lakehouse.log",
            "lakehouse.table",
            "lakehouse.scan",
            "lakehouse",
            "lakehouse.commit",
        ]
    )
    assert [_layer_key(t) for t in ("lakehouse", "lakehouse.log", "lakehouse.integrations.pandas")] == [
        "__init__",
        "log",
        "integrations",
    ]
