"""The package's structure, checked against docs/architecture.md (the one source of the layer table).

The layer table is the markdown table under "## The layers" in docs/architecture.md: one row per
layer, the modules of that layer backticked in its second column (``errors.py`` is the module
``lakehouse.errors``, ``expr/`` the whole subpackage ``lakehouse.expr``). This test parses it, so
the document and the check cannot drift apart, and it enforces:

- every module of the package is in the table, and every module the table names exists;
- a module imports only from its own layer or lower ones;
- no import cycle of any kind, same-layer ones included;
- no module imports a private name (``_name``) of another module, by ``from .x import _y`` or by
  ``x._y`` on an imported module, nor uses a private member of another module's objects
  (``snapshot._pruned(...)`` outside snapshot.py);
- no module is over ``MAX_LINES`` lines, every line counted (docstrings and comments too), as
  ``/work/shared/tools/import_graph.py`` counts them.

Imports are read with ``ast`` (nothing is imported), so imports inside functions count, and so do
imports under ``if TYPE_CHECKING:``: a type-only import is still a dependency (the importer knows
the other module's classes and breaks when they change), so it counts for the layers and for
cycles alike; the only way out of a cycle is a dependency that really goes one way.

Each check is a plain function over a package folder; the ``test_checker_*`` tests plant a
violation in a small synthetic package under ``tmp_path`` and show that the check reports it.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "lakehouse"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_LINES = 800

# Cycles being removed by a change in progress (none now: keep empty). The test fails while an
# entry names a cycle that no longer exists.
CYCLES_BEING_REMOVED: frozenset[frozenset[str]] = frozenset()

# Private members (``obj._name``) of other modules' objects used while a change is in progress, as
# (module using it, member); none now: keep empty. A stale entry fails the test.
PRIVATE_MEMBERS_BEING_REMOVED: frozenset[tuple[str, str]] = frozenset()

# Modules over ``MAX_LINES`` lines while a change that splits them is in progress. A stale entry (the
# module is gone or small enough) fails the test.
OVERSIZED_BEING_SPLIT: frozenset[str] = frozenset()

# -- the layer table ---------------------------------------------------------------------------------

_ENTRY = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<kind>\.py|/)$")


@dataclass(frozen=True)
class LayerTable:
    """The parsed table: layer key -> layer, and for each layer the row's module cell as written."""

    layers: dict[str, int]
    rows: dict[int, str]


def parse_layer_table(markdown: str) -> LayerTable:
    """Read the table under ``## The layers``; a malformed row raises ``ValueError`` naming it."""
    found = re.search(r"^## The layers[ \t]*$", markdown, flags=re.M)
    if not found:
        raise ValueError("docs/architecture.md has no '## The layers' section")
    section = markdown[found.end() :].split("\n## ", 1)[0]
    layers: dict[str, int] = {}
    rows: dict[int, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[0] in ("layer", "---"):
            continue
        if not cells[0].isdigit():
            raise ValueError(f"layer table row {line[:60]!r}: the first cell must be the layer number")
        layer = int(cells[0])
        if layer in rows:
            raise ValueError(f"layer table: two rows for layer {layer} (one row per layer)")
        rows[layer] = cells[1]
        rest = re.sub(r"`[^`]*`|,", "", cells[1]).strip()
        if rest:
            raise ValueError(f"layer {layer}: the modules cell holds {rest!r}; list only backticked modules")
        for entry in re.findall(r"`([^`]*)`", cells[1]):
            match = _ENTRY.match(entry)
            if not match:
                raise ValueError(f"layer {layer}: {entry!r} is neither a module (`name.py`) nor a package (`name/`)")
            key = match["name"]
            if key in layers:
                raise ValueError(f"layer table: {entry} is in the rows of layers {layers[key]} and {layer}")
            layers[key] = layer
    if not layers:
        raise ValueError("docs/architecture.md: the layer table names no module")
    return LayerTable(layers, rows)


def documented_layers() -> LayerTable:
    return parse_layer_table(ARCHITECTURE.read_text(encoding="utf-8"))


# -- reading a package's imports ---------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import of a module of the package: where, what, and which name (None: the module itself)."""

    line: int
    target: str
    name: str | None
    type_checking: bool
    in_function: bool = False


@functools.lru_cache(maxsize=256)
def parse(source: str) -> ast.Module:
    """``ast.parse``, once per source text (the checks read every module several times)."""
    return ast.parse(source)


def package_files(package_dir: Path) -> list[Path]:
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def layer_key(module: str) -> str:
    """``lakehouse.log`` -> ``log``, ``lakehouse`` -> ``__init__``, ``lakehouse.expr.dnf`` -> ``expr``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def table_entry(key: str, package_dir: Path) -> str:
    """How the layer table spells a layer key: ``errors.py``, ``expr/``, ``__init__.py``."""
    return f"{key}/" if (package_dir / key).is_dir() else f"{key}.py"


def _is_module(dotted: str, package_dir: Path) -> bool:
    base = package_dir.joinpath(*dotted.split(".")[1:])
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers of statements in the body of an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def _function_lines(tree: ast.AST) -> set[int]:
    """Line numbers of the imports inside a function body (they run when called, not on import)."""
    return {node.lineno for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(fn) if isinstance(node, ast.Import | ast.ImportFrom)}


# Layer keys a lower layer may import inside a function body (never at module level): the optional
# engine adapters, which ``Snapshot.to_pandas``/``to_polars``/``to_duckdb`` load when called. The
# adapters themselves import nothing from the layers that call them, so no cycle arises.
LAZY_UPWARD = frozenset({"integrations"})


def imports_of(path: Path, package_dir: Path, source: str | None = None) -> list[Import]:
    """Every import of a module of the package in ``path`` (or ``source``), at any depth."""
    package_name = package_dir.name
    module = module_name(path, package_dir)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = parse(text)
    guarded = _type_checking_lines(tree)
    lazy = _function_lines(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package_name:
                    found.append(Import(node.lineno, alias.name, None, node.lineno in guarded, node.lineno in lazy))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: max(0, len(parts) - (node.level - 1))]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            if base.split(".")[0] != package_name:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # ``from . import log`` imports the module ``lakehouse.log``; ``from . import X`` with X
                # a name defined in the package's ``__init__.py`` imports the package itself.
                if alias.name != "*" and _is_module(sub, package_dir):
                    found.append(Import(node.lineno, sub, None, node.lineno in guarded, node.lineno in lazy))
                else:
                    name = None if alias.name == "*" else alias.name
                    found.append(Import(node.lineno, base, name, node.lineno in guarded, node.lineno in lazy))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_attribute_uses(path: Path, package_dir: Path, source: str | None = None) -> list[Import]:
    """``x._y`` where ``x`` is a module of the package bound by an import in this file."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = parse(text)
    bound: dict[str, str] = {}  # local name -> module
    package_name = package_dir.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package_name:
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else package_name
    from_imports: dict[int, list[ast.alias]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            from_imports.setdefault(node.lineno, []).extend(node.names)
    for found in imports_of(path, package_dir, text):
        if found.name is None and found.target != package_name:
            # ``from . import log`` / ``from .expr import dnf as d``: the local name it binds
            for alias in from_imports.get(found.line, []):
                if found.target.endswith(f".{alias.name}"):
                    bound[alias.asname or alias.name] = found.target
    uses: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = bound.get(node.value.id)
            if target is not None:
                uses.append(Import(node.lineno, target, node.attr, False))
    return uses


def import_graph(package_dir: Path) -> dict[str, dict[str, list[Import]]]:
    """module -> {imported module -> the imports}; every module of the package is a key."""
    graph: dict[str, dict[str, list[Import]]] = {}
    for path in package_files(package_dir):
        source = module_name(path, package_dir)
        edges = graph.setdefault(source, {})
        for found in imports_of(path, package_dir):
            if found.target != source:
                edges.setdefault(found.target, []).append(found)
    return graph


# -- the checks (each returns the problems it finds, as messages) ------------------------------------


def check_table_matches_package(table: LayerTable, package_dir: Path) -> list[str]:
    problems: list[str] = []
    graph = import_graph(package_dir)
    keys = {layer_key(m) for m in graph}
    for key in sorted(keys - set(table.layers)):
        modules = [m for m in graph if layer_key(m) == key]
        imported = {layer_key(t) for m in modules for t in graph[m]} - {key}
        floor = max((table.layers[k] for k in imported if k in table.layers), default=0)
        importers = {layer_key(m) for m, edges in graph.items() for t in edges if layer_key(t) == key} - {key}
        ceiling = min((table.layers[k] for k in importers if k in table.layers), default=None)
        entry = table_entry(key, package_dir)
        where = f"the row of layer {floor} (the highest layer it imports from)"
        if ceiling is not None and ceiling > floor:
            where += f" or of a higher layer up to {ceiling} (the lowest layer importing it)"
        elif ceiling is not None and ceiling < floor:
            where += f"; but it is imported from layer {ceiling}, so an import has to move"
        problems.append(
            f"{package_dir.name}/{entry} is not in the layer table of docs/architecture.md: add `{entry}` to {where}"
        )
    for key in sorted(set(table.layers) - keys):
        problems.append(
            f"docs/architecture.md names `{key}` in the row of layer {table.layers[key]}, but "
            f"{package_dir.name}/ has no module or package {key!r}: the table describes what exists, "
            "remove it (or add the module)"
        )
    return problems


def check_layers(table: LayerTable, package_dir: Path) -> list[str]:
    problems: list[str] = []
    for source, edges in import_graph(package_dir).items():
        source_layer = table.layers.get(layer_key(source))
        if source_layer is None:
            continue  # reported by check_table_matches_package
        for target, found in sorted(edges.items()):
            target_layer = table.layers.get(layer_key(target))
            if layer_key(target) in LAZY_UPWARD and all(f.in_function for f in found):
                continue
            if target_layer is not None and target_layer > source_layer:
                lines = ", ".join(str(f.line) + (" (TYPE_CHECKING)" if f.type_checking else "") for f in found)
                problems.append(
                    f"{source} (layer {source_layer}) imports {target} (layer {target_layer}) at line {lines}: "
                    "a module may only import from its own layer or lower ones"
                )
    return problems


def import_cycles(graph: dict[str, dict[str, list[Import]]]) -> list[frozenset[str]]:
    """The strongly connected components with a cycle (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, {}):
                    cycles.append(frozenset(component))
    return cycles


def _describe_cycle(component: frozenset[str], graph: dict[str, dict[str, list[Import]]]) -> str:
    edges = []
    for source in sorted(component):
        for target, found in sorted(graph[source].items()):
            if target in component:
                kinds = sorted({"TYPE_CHECKING" if f.type_checking else "runtime" for f in found})
                edges.append(f"{source} -> {target} (line {found[0].line}, {'/'.join(kinds)})")
    return "; ".join(edges)


def check_cycles(package_dir: Path, allowed: frozenset[frozenset[str]] = frozenset()) -> list[str]:
    graph = import_graph(package_dir)
    cycles = import_cycles(graph)
    problems = [
        f"import cycle between {sorted(c)}: {_describe_cycle(c, graph)}" for c in cycles if c not in allowed
    ]
    problems += [
        f"the allowlist names the cycle {sorted(c)}, which no longer exists: delete its entry"
        for c in allowed
        if c not in cycles
    ]
    return problems


def check_private_imports(package_dir: Path, allowed: frozenset[tuple[str, str, str]] = frozenset()) -> list[str]:
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for path in package_files(package_dir):
        source = module_name(path, package_dir)
        for found in [*imports_of(path, package_dir), *private_attribute_uses(path, package_dir)]:
            if found.target == source or found.name is None or not _private(found.name):
                continue
            key = (source, found.target, found.name)
            seen.add(key)
            if key not in allowed:
                problems.append(
                    f"{source} line {found.line} uses the private name {found.target}.{found.name}: make it "
                    "public (no underscore) in a module both can import, or move the code that needs it"
                )
    problems += [
        f"the allowlist names the private import {entry}, which no longer exists: delete its entry"
        for entry in sorted(allowed - seen)
    ]
    return problems


def private_definitions(source: str) -> set[str]:
    """Private names a module defines: functions, classes, class attributes and fields, ``self._x``
    (not ``other._x = ...``, which is itself a use of another module's member)."""
    names: set[str] = set()
    for node in ast.walk(parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if _private(n)}


def check_private_members(package_dir: Path, allowed: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """``obj._name`` where ``_name`` is a private member another module defines and this one does not.

    ``self._x`` and ``cls._x`` are a class's own business. The check goes by name, not by type, so it
    misses a use whose name the using module also defines (a heuristic that never reports a false
    positive of its own making: the name is private to another module).
    """
    sources = {module_name(p, package_dir): p.read_text(encoding="utf-8") for p in package_files(package_dir)}
    owners: dict[str, set[str]] = {}
    for module, source in sources.items():
        for name in private_definitions(source):
            owners.setdefault(name, set()).add(module)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for module, source in sorted(sources.items()):
        for node in ast.walk(parse(source)):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            others = owners.get(node.attr, set()) - {module}
            if not others or module in owners.get(node.attr, set()):
                continue
            key = (module, node.attr)
            seen.add(key)
            if key not in allowed:
                problems.append(
                    f"{module} line {node.lineno} uses {node.attr}, a private member of {sorted(others)}: give "
                    "that module a public function or a narrow interface for what is needed"
                )
    problems += [
        f"the allowlist names the private member use {entry}, which no longer exists: delete its entry"
        for entry in sorted(allowed - seen)
    ]
    return problems


def module_lines(source: str) -> int:
    """Every line of a module (code, docstrings, comments and blank lines), as a file reader counts them."""
    return source.count("\n") + (1 if source and not source.endswith("\n") else 0)


def check_sizes(package_dir: Path, limit: int = MAX_LINES, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Modules over ``limit`` lines, every line counted: docstrings are part of what one has to read
    and keep consistent in a module, and the project's import-graph tool counts them too."""
    problems = []
    seen: set[str] = set()
    for path in package_files(package_dir):
        lines = module_lines(path.read_text(encoding="utf-8"))
        if lines > limit:
            module = module_name(path, package_dir)
            seen.add(module)
            if module not in allowed:
                rel = path.relative_to(package_dir.parent)
                problems.append(f"{rel} has {lines} lines (> {limit}, docstrings counted): split it by concern")
    problems += [
        f"the allowlist names the oversized module {module}, which is no longer over {limit} lines (or gone): "
        "delete its entry"
        for module in sorted(allowed - seen)
    ]
    return problems


# -- the package as it is ----------------------------------------------------------------------------


def test_package_found() -> None:
    assert (PACKAGE_DIR / "errors.py").is_file(), f"layer test cannot find the package at {PACKAGE_DIR}"


def test_layer_table_matches_the_package() -> None:
    problems = check_table_matches_package(documented_layers(), PACKAGE_DIR)
    assert not problems, "\n".join(problems)


def test_imports_respect_layers() -> None:
    problems = check_layers(documented_layers(), PACKAGE_DIR)
    assert not problems, "\n".join(problems)


def test_no_import_cycles() -> None:
    problems = check_cycles(PACKAGE_DIR, CYCLES_BEING_REMOVED)
    assert not problems, "\n".join(problems)


def test_no_private_names_imported_across_modules() -> None:
    problems = check_private_imports(PACKAGE_DIR)
    assert not problems, "\n".join(problems)


def test_no_private_members_used_across_modules() -> None:
    problems = check_private_members(PACKAGE_DIR, PRIVATE_MEMBERS_BEING_REMOVED)
    assert not problems, "\n".join(problems)


def test_modules_are_small() -> None:
    problems = check_sizes(PACKAGE_DIR, allowed=OVERSIZED_BEING_SPLIT)
    assert not problems, "\n".join(problems)


# -- the checkers themselves, on planted violations --------------------------------------------------

TABLE = """# Architecture

## The layers

| layer | modules | what they do |
| --- | --- | --- |
| 0 | `errors.py` | errors (`LakehouseError`) |
| 1 | `log.py`, `schema.py` | the log |
| 2 | `table.py`, `expr/` | the facade |
| 3 | `__init__.py` | the names |

## How a read flows
| 9 | `ignored.py` | not in the section |
"""


def _package(tmp_path: Path, modules: dict[str, str]) -> Path:
    """A synthetic package ``lakehouse`` under ``tmp_path``: {relative path: source}."""
    package_dir = tmp_path / "lakehouse"
    for rel, source in {"__init__.py": "", **modules}.items():
        path = package_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package_dir


CLEAN = {
    "errors.py": "class E(Exception):\n    pass\n",
    "log.py": "from .errors import E\n",
    "schema.py": "from . import log\n",
    "table.py": "from .schema import log\nfrom .expr import dnf\n",
    "expr/__init__.py": "",
    "expr/dnf.py": "from ..errors import E\nfrom . import bridge\n",
    "expr/bridge.py": "import lakehouse.errors\n",
    "__init__.py": "from .table import *\n",
}


def test_checker_reads_the_table() -> None:
    table = parse_layer_table(TABLE)
    assert table.layers == {"errors": 0, "log": 1, "schema": 1, "table": 2, "expr": 2, "__init__": 3}
    for bad, message in [
        ("| x | `a.py` | |", "layer number"),
        ("| 0 | `a.py` | |\n| 0 | `b.py` | |", "two rows for layer 0"),
        ("| 0 | `a.py` (planned) | |", "(planned)"),
        ("| 0 | `a` | |", "neither a module"),
        ("| 0 | `a.py` | |\n| 1 | `a.py` | |", "layers 0 and 1"),
        ("no table", "names no module"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_layer_table(f"## The layers\n\n| layer | modules | what |\n| --- | --- | --- |\n{bad}\n")


def test_checker_passes_a_clean_package(tmp_path: Path) -> None:
    package_dir = _package(tmp_path, CLEAN)
    table = parse_layer_table(TABLE)
    assert check_table_matches_package(table, package_dir) == []
    assert check_layers(table, package_dir) == []
    assert check_cycles(package_dir) == []
    assert check_private_imports(package_dir) == []
    assert check_sizes(package_dir) == []


def test_checker_finds_modules_missing_from_the_table_and_entries_that_do_not_exist(tmp_path: Path) -> None:
    modules = {k: v for k, v in CLEAN.items() if k != "schema.py"}
    package_dir = _package(tmp_path, {**modules, "new.py": "from .log import E\n", "scan/__init__.py": ""})
    problems = check_table_matches_package(parse_layer_table(TABLE), package_dir)
    assert len(problems) == 3, problems
    assert "add `new.py` to the row of layer 1" in problems[0]
    assert "add `scan/` to the row of layer 0" in problems[1]
    assert "names `schema` in the row of layer 1" in problems[2] and "no module" in problems[2]


def test_checker_finds_an_import_from_a_higher_layer(tmp_path: Path) -> None:
    for planted in [
        "from .table import T\n",
        "def f():\n    from lakehouse.expr.dnf import g\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import table\n",
        "import lakehouse\n",
    ]:
        package_dir = _package(tmp_path / str(abs(hash(planted))), {**CLEAN, "log.py": planted})
        problems = check_layers(parse_layer_table(TABLE), package_dir)
        assert len(problems) == 1 and problems[0].startswith("lakehouse.log (layer 1) imports"), (planted, problems)


def test_checker_lets_only_function_level_imports_of_the_adapters_go_upward(tmp_path: Path) -> None:
    names = "| 3 | `__init__.py` | the names |"
    table = TABLE.replace(names, names + "\n| 9 | `integrations/` | adapters |")
    adapters = {"integrations/__init__.py": "", "integrations/pandas.py": "import pyarrow\n"}
    lazy = {**CLEAN, **adapters, "log.py": "def f():\n    from .integrations.pandas import g\n"}
    assert check_layers(parse_layer_table(table), _package(tmp_path / "lazy", lazy)) == []
    eager = {**CLEAN, **adapters, "log.py": "from .integrations.pandas import g\n"}
    problems = check_layers(parse_layer_table(table), _package(tmp_path / "eager", eager))
    assert len(problems) == 1 and "lakehouse.integrations.pandas (layer 9)" in problems[0], problems


def test_checker_finds_cycles_same_layer_type_checking_and_in_functions(tmp_path: Path) -> None:
    for i, (planted, cycle) in enumerate(
        [
            ({"log.py": "from . import schema\n"}, {"lakehouse.log", "lakehouse.schema"}),  # same layer
            (
                {"expr/bridge.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .dnf import x\n"},
                {"lakehouse.expr.bridge", "lakehouse.expr.dnf"},
            ),
            (  # errors -> table -> schema -> log -> errors, and table -> expr.dnf -> expr.bridge -> errors
                {"errors.py": "def f():\n    from .table import T\n"},
                {"lakehouse.errors", "lakehouse.log", "lakehouse.schema", "lakehouse.table", "lakehouse.expr.dnf",
                 "lakehouse.expr.bridge"},
            ),
            ({"errors.py": "from .errors import E\nimport lakehouse.errors\n"}, None),  # self-import is no cycle
        ]
    ):
        package_dir = _package(tmp_path / str(i), {**CLEAN, **planted})
        cycles = import_cycles(import_graph(package_dir))
        assert cycles == ([frozenset(cycle)] if cycle else []), (planted, cycles)
        problems = check_cycles(package_dir)
        assert len(problems) == (1 if cycle else 0), problems
        if cycle:
            assert check_cycles(package_dir, frozenset({frozenset(cycle)})) == []
    stale = check_cycles(_package(tmp_path / "clean", CLEAN), frozenset({frozenset({"lakehouse.a", "lakehouse.b"})}))
    assert len(stale) == 1 and "no longer exists: delete its entry" in stale[0]


def test_checker_finds_private_names_imported_across_modules(tmp_path: Path) -> None:
    for i, planted in enumerate(
        [
            "from .log import _hidden\n",
            "from lakehouse.log import public, _hidden as h\n",
            "from . import log\nx = log._hidden\n",
            "import lakehouse.log as lg\ndef f():\n    return lg._hidden()\n",
            "import lakehouse\nlakehouse._hidden\n",
            "from .expr import dnf\ndnf._hidden\n",
        ]
    ):
        package_dir = _package(tmp_path / str(i), {**CLEAN, "table.py": planted})
        problems = check_private_imports(package_dir)
        assert len(problems) == 1 and "private name" in problems[0] and "_hidden" in problems[0], (planted, problems)
    # dunder names and a module's own private names are fine
    package_dir = _package(tmp_path / "ok", {**CLEAN, "table.py": "from ._version import __version__\n"
                                             "def _own():\n    pass\n_own()\n", "_version.py": "__version__ = '1'\n"})
    assert check_private_imports(package_dir) == []
    allowed = frozenset({("lakehouse.table", "lakehouse.log", "_hidden")})
    planted_dir = _package(tmp_path / "allowed", {**CLEAN, "table.py": "from .log import _hidden\n"})
    assert check_private_imports(planted_dir, allowed) == []
    stale = check_private_imports(_package(tmp_path / "stale", CLEAN), allowed)
    assert len(stale) == 1 and "no longer exists: delete its entry" in stale[0]


def test_checker_finds_a_module_over_the_size_limit(tmp_path: Path) -> None:
    package_dir = _package(tmp_path, {**CLEAN, "log.py": "x = 1\n" * (MAX_LINES + 1)})
    problems = check_sizes(package_dir)
    assert len(problems) == 1 and f"{MAX_LINES + 1} lines" in problems[0]
    assert check_sizes(_package(tmp_path / "ok", {**CLEAN, "log.py": "x = 1\n" * MAX_LINES})) == []
    # docstrings count: a module of short functions with long docstrings is over the limit
    function = 'def f():\n    """Doc.\n\n    More.\n    """\n'
    documented = '"""Module."""\n' + function * (MAX_LINES // 5 + 1)
    assert module_lines(documented) == 1 + 5 * (MAX_LINES // 5 + 1)
    docs = check_sizes(_package(tmp_path / "docs", {**CLEAN, "log.py": documented}))
    assert len(docs) == 1 and "log.py" in docs[0]
    assert module_lines("x = 1\ny = 2") == 2 == module_lines("x = 1\ny = 2\n")  # no final newline
    assert module_lines("") == 0
    # an allow-listed module is let through while it is over the limit; a stale entry fails
    assert check_sizes(package_dir, allowed=frozenset({"lakehouse.log"})) == []
    stale = check_sizes(_package(tmp_path / "small", CLEAN), allowed=frozenset({"lakehouse.log"}))
    assert len(stale) == 1 and "delete its entry" in stale[0]


def test_checker_finds_private_members_used_across_modules(tmp_path: Path) -> None:
    owner = "class T:\n    def __init__(self):\n        self._state = 1\n\n    def _set(self):\n        return 1\n"
    for i, planted in enumerate(
        [
            "def f(t):\n    return t._state\n",
            "def f(t):\n    t._set()\n",
            "x = lambda t: t._state\n",
            "def f(t):\n    t._state = 2\n",  # assigning another object's private member uses it too
        ]
    ):
        package_dir = _package(tmp_path / str(i), {**CLEAN, "schema.py": owner, "table.py": planted})
        problems = check_private_members(package_dir)
        assert len(problems) == 1 and "lakehouse.table line" in problems[0], (planted, problems)
        assert "private member of ['lakehouse.schema']" in problems[0]
    fine = [
        "class U:\n    def __init__(self):\n        self._state = 2\n    def g(self, other):\n"
        "        return self._state + other._state\n",  # its own name: not reported (by name, not type)
        "class U:\n    def g(self):\n        return self._set()\n",  # on self: its own business
        "def f(t):\n    return t._unknown\n",  # defined nowhere in the package (a library's)
    ]
    for i, planted in enumerate(fine):
        package_dir = _package(tmp_path / f"fine{i}", {**CLEAN, "schema.py": owner, "table.py": planted})
        assert check_private_members(package_dir) == [], planted
    planted_dir = _package(tmp_path / "allowed", {**CLEAN, "schema.py": owner, "table.py": "def f(t):\n    t._state\n"})
    allowed = frozenset({("lakehouse.table", "_state")})
    assert check_private_members(planted_dir, allowed) == []
    stale = check_private_members(_package(tmp_path / "stale", {**CLEAN, "schema.py": owner}), allowed)
    assert len(stale) == 1 and "no longer exists: delete its entry" in stale[0]
