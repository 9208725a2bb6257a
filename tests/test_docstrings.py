"""The public docstrings follow one style (Google, as docs/api.md renders them with mkdocstrings).

For every name in ``lakehouse.__all__``, every name in the ``__all__`` of a module listed in ``CHECKED``
that is defined in one of those modules, and every public method and property of those classes
(inherited ones included, from base classes of the package):

- it has a docstring;
- a function or method taking arguments has an ``Args:`` section naming each of them;
- one returning something (its annotation is not ``None``) has a ``Returns:`` (or ``Yields:``)
  section; properties are described by their first line and need neither;
- a public function or class has an ``Example:`` (run by ``pytest --doctest-modules``);
- a frozen dataclass lists its fields under ``Attributes:``, an error the attributes it sets.

The checker is a plain function; ``test_checker_*`` show it reports planted omissions.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

import lakehouse

# Modules whose public docstrings follow the style (``lakehouse.dask`` re-exports
# ``lakehouse.integrations.dask``, checked as the names' home). Every name in ``lakehouse.__all__`` is
# checked wherever it is defined. Not yet here: ``lakehouse.schema`` (28 public functions:
# full Args/Returns/examples would take it to ~890 lines; its data-conforming half can move to a module
# of its own first; its main functions already follow the style).
CHECKED = {
    "lakehouse.cli_parse", "lakehouse.rowremoval", "lakehouse.merge", "lakehouse.merge_match",
    "lakehouse.merge_source", "lakehouse.maintenance",
    "lakehouse.table",
    "lakehouse.table_reads",
    "lakehouse.table_maintenance",
    "lakehouse.snapshot",
    "lakehouse.scan",
    "lakehouse.scan.core",
    "lakehouse.scan.dataset",
    "lakehouse.scan.mapping",
    "lakehouse.scan.groups",
    "lakehouse.scan.tasks",
    "lakehouse.datafile",
    "lakehouse.write",
    "lakehouse.properties",
    "lakehouse.replay",
    "lakehouse.handle",
    "lakehouse.clock",
    "lakehouse.deletion_vector",
    "lakehouse.dv_store",
    "lakehouse.integrations",
    "lakehouse.integrations.pandas",
    "lakehouse.integrations.polars",
    "lakehouse.integrations.duckdb",
    "lakehouse.integrations.dask",
    "lakehouse.writer",
    "lakehouse.transaction",
    "lakehouse.tx_checks",
    "lakehouse.removal_plan",
    "lakehouse.alter",
    "lakehouse.inspect",
    "lakehouse.errors",
    "lakehouse.progress",
    "lakehouse.commit",
    "lakehouse.cli",
    "lakehouse.probe",
    "lakehouse.log",
    "lakehouse.storage",
    "lakehouse.arguments",
    "lakehouse.checkpoint",
    "lakehouse.state",
    "lakehouse.creation",
    "lakehouse.expr.codec",
    "lakehouse.expr.dnf",
    "lakehouse.expr.literals",
    "lakehouse.expr.prune",
    "lakehouse.expr.sql",
    "lakehouse.expr.bridge",
    "lakehouse.records",
    "lakehouse.partitioning",
    "lakehouse.stats",
    "lakehouse.localfs",
    "lakehouse.storage_options",
    "lakehouse.roaring",
    "lakehouse.constraints",
    "lakehouse.evolution",
    "lakehouse.setexpr",
}

_SECTION = re.compile(r"^\s*(Args|Arguments|Returns|Yields|Raises|Example|Examples|Attributes|Note):\s*$", re.M)


def sections(doc: str) -> dict[str, str]:
    """Section heading -> its body, for a Google-style docstring."""
    found = list(_SECTION.finditer(doc))
    return {m[1]: doc[m.end() : found[i + 1].start() if i + 1 < len(found) else len(doc)] for i, m in enumerate(found)}


def _documents(body: str, name: str) -> bool:
    return re.search(rf"^\s*\**{re.escape(name)}\s*(\([^)]*\))?\s*:", body, flags=re.M) is not None


def check_callable(qualname: str, func: Callable[..., Any], *, example: bool) -> list[str]:
    doc = inspect.getdoc(func)
    if not doc:
        return [f"{qualname}: no docstring"]
    parts = sections(doc)
    problems = []
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.name not in ("self", "cls")
    ]
    if params:
        if "Args" not in parts:
            problems.append(f"{qualname}: takes {[p.name for p in params]} but has no Args: section")
        else:
            for p in params:
                stars = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
                name = f"{stars}{p.name}"
                if not (_documents(parts["Args"], name) or _documents(parts["Args"], p.name)):
                    problems.append(f"{qualname}: argument {p.name!r} is not in its Args: section")
    returns = inspect.signature(func).return_annotation
    returns_nothing = returns in (None, "None", "NoReturn", inspect.Signature.empty)
    if not returns_nothing and not ({"Returns", "Yields"} & parts.keys()):
        problems.append(f"{qualname}: returns {returns} but has no Returns: section")
    if example and not ({"Example", "Examples"} & parts.keys()):
        problems.append(f"{qualname}: no Example: section")
    return problems


def _init_attributes(cls: type) -> list[str]:
    """The public attributes an ``__init__`` defined on ``cls`` sets (``self.x = ...``)."""
    if "__init__" not in vars(cls):
        return []
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))  # type: ignore[misc]
    return [
        target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
        and target.value.id == "self" and not target.attr.startswith("_")
    ]


def members(cls: type) -> dict[str, Any]:
    """Name -> value of what ``cls`` defines and inherits from base classes of its own package (``Table``
    inherits its read and maintenance verbs from ``table_reads`` and ``table_maintenance``), the
    nearest definition of each name; builtins' and other packages' members are theirs to document."""
    package = cls.__module__.split(".")[0]
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == package:
            for attr, value in vars(klass).items():
                found.setdefault(attr, value)
    return found


def check_class(name: str, cls: type) -> list[str]:
    """A class: its docstring (fields or attributes listed), and its public methods and properties.

    An error's constructor is lakehouse's own business (it is raised, not built, by users): what a
    caller reads is its attributes, so those go in ``Attributes:``, like a dataclass's fields.
    """
    doc = inspect.getdoc(cls)
    if not doc or cls.__doc__ is None:
        return [f"{name}: no docstring"]
    problems: list[str] = []
    parts = sections(doc)
    if dataclasses.is_dataclass(cls):
        attributes = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
    else:
        attributes = _init_attributes(cls) if issubclass(cls, BaseException) else []
    missing = [a for a in attributes if not _documents(parts.get("Attributes", ""), a)]
    if missing:
        problems.append(f"{name}: attributes {missing} are not in its Attributes: section")
    for attr, value in members(cls).items():
        if attr.startswith("_"):
            continue
        qual = f"{name}.{attr}"
        if isinstance(value, property):
            if not (value.fget and value.fget.__doc__):
                problems.append(f"{qual}: no docstring")
        elif isinstance(value, (classmethod, staticmethod)):
            problems += check_callable(qual, value.__func__, example=True)
        elif inspect.isfunction(value):
            problems += check_callable(qual, value, example=True)
    return problems


def public_names() -> dict[str, Any]:
    """``lakehouse.__all__`` and the ``__all__`` of every checked module, name -> object."""
    names = {n: getattr(lakehouse, n) for n in lakehouse.__all__}
    for module in sorted(CHECKED):
        mod = importlib.import_module(module)
        names.update({f"{module.rpartition('.')[2]}.{n}": getattr(mod, n) for n in getattr(mod, "__all__", [])})
    return names


def public_problems(names: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[int] = set()
    for name, obj in sorted(names.items()):
        module = getattr(obj, "__module__", None) or ""
        exported = "." not in name  # a name of ``lakehouse.__all__``: checked wherever it is defined
        if not (module in CHECKED or (exported and module.startswith("lakehouse"))) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if inspect.isclass(obj):
            problems += check_class(name, obj)
        elif inspect.isfunction(obj):
            problems += check_callable(name, obj, example=True)
    return problems


def test_public_docstrings_have_args_returns_and_an_example() -> None:
    problems = public_problems(public_names())
    assert not problems, f"{len(problems)} docstring problems:\n" + "\n".join(problems)


def test_every_checked_module_has_checked_names() -> None:
    """A module renamed or emptied would silently drop out of the check. A package that only re-exports
    names of its checked submodules (``lakehouse.scan``) counts: its ``__all__`` is checked there."""
    modules = {getattr(obj, "__module__", None) for obj in public_names().values()}
    for package in sorted(CHECKED - modules):
        mod = importlib.import_module(package)
        homes = {getattr(getattr(mod, n), "__module__", None) for n in getattr(mod, "__all__", [])}
        if hasattr(mod, "__path__") and homes and homes <= CHECKED and all(h.startswith(package + ".") for h in homes):
            modules.add(package)
    assert modules >= CHECKED, CHECKED - modules


# -- the checker, on planted omissions -------------------------------------------------------------


def _good(a: int, *, b: str = "") -> int:
    """Add.

    Args:
        a: a number.
        b (str): a text.

    Returns:
        The sum.

    Example:
        >>> _good(1)
        1
    """
    return a


def _no_args(a: int) -> int:
    """Add.

    Returns:
        The sum.

    Example:
        >>> 1
        1
    """
    return a


def _missing_one(a: int, b: int) -> None:
    """Add.

    Args:
        a: a number.

    Example:
        >>> 1
        1
    """


def _no_returns(a: int) -> int:
    """Add.

    Args:
        a: a number.

    Example:
        >>> 1
        1
    """
    return a


def _no_example() -> None:
    """Nothing."""


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (_good, None),
        (_no_args, "has no Args: section"),
        (_missing_one, "argument 'b' is not in its Args: section"),
        (_no_returns, "has no Returns: section"),
        (_no_example, "no Example: section"),
    ],
)
def test_checker_reports_a_planted_omission(func: Callable[..., Any], expected: str | None) -> None:
    problems = check_callable(func.__name__, func, example=True)
    assert problems == ([] if expected is None else [p for p in problems if expected in p]) and (
        expected is None or len(problems) == 1
    ), problems


def test_checker_reports_dataclass_fields_and_methods() -> None:
    @dataclasses.dataclass(frozen=True)
    class Record:
        """A record.

        Attributes:
            a: the a.
        """

        a: int
        b: int

        def twice(self, n: int) -> int:
            """Twice.

            Example:
                >>> 1
                1
            """
            return n

        @property
        def bare(self) -> int:
            return 1

    problems = check_class("Record", Record)
    assert any("attributes ['b']" in p for p in problems), problems
    assert any("Record.twice: takes ['n']" in p for p in problems), problems
    assert any("Record.twice: returns" in p for p in problems), problems
    assert any("Record.bare: no docstring" in p for p in problems), problems


def test_checker_reports_an_error_attribute_left_out() -> None:
    class Planted(Exception):
        """An error.

        Attributes:
            path: the path.
        """

        def __init__(self, message: str, *, path: str, version: int) -> None:
            super().__init__(message)
            self.path = path
            self.version = version

    assert check_class("Planted", Planted) == ["Planted: attributes ['version'] are not in its Attributes: section"]


def test_checker_reports_an_inherited_method() -> None:
    """A class's public surface includes what it inherits from its package's base classes."""

    class Base:
        """A base."""

        def undocumented(self, n: int) -> int:
            return n

    class Child(Base):
        """A child."""

    assert check_class("Child", Child) == ["Child.undocumented: no docstring"]


def test_table_inherited_verbs_are_checked() -> None:
    """``Table``'s verbs defined in its base classes are part of what the check reads."""
    found = members(lakehouse.Table)
    assert {"to_arrow", "to_duckdb", "vacuum", "optimize", "append", "snapshot"} <= found.keys()


def test_the_dask_shim_names_are_checked() -> None:
    """``lakehouse.dask`` (public, rendered by docs/api.md) re-exports the checked adapter's functions."""
    import lakehouse.dask
    import lakehouse.integrations.dask

    assert "lakehouse.integrations.dask" in CHECKED
    assert all(getattr(lakehouse.dask, n) is getattr(lakehouse.integrations.dask, n) for n in lakehouse.dask.__all__)
