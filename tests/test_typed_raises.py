"""Every error lakehouse raises on purpose is a ``LakehouseError`` (issue 13, item 21).

The check reads the source with ``ast`` (nothing is imported): a ``raise`` of a builtin exception
class (``raise ValueError(...)``, ``raise TypeError``, ``raise KeyError(...)``, ...) anywhere in the
package fails, unless it is one of the few listed in ``ALLOWED`` with the reason it is not a user
error. A bad input must get a subclass from ``lakehouse/errors.py`` that also inherits the builtin
(``InvalidArgumentError`` is a ``ValueError``, ``ArgumentTypeError`` a ``TypeError``), so that
``except LakehouseError`` catches every refusal and ``except ValueError`` keeps working.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import lakehouse as lh

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "lakehouse"

# (module file, builtin) -> why it is not a refusal of user input
ALLOWED: dict[tuple[str, str], str] = {
    ("alter.py", "AssertionError"): "unreachable branch after exhaustive dispatch",
    ("evolution.py", "AssertionError"): "unreachable branch after exhaustive dispatch",
    ("cli.py", "SystemExit"): "the CLI's exit code",
    ("integrations/__init__.py", "ImportError"): "an optional dependency is not installed",
    ("integrations/dask.py", "ImportError"): "an optional dependency is not installed",
    ("expr/sql.py", "ImportError"): "an optional dependency is not installed",
    ("setexpr.py", "ImportError"): "an optional dependency is not installed",
    ("storage.py", "FileExistsError"): "put_if_absent's internal contract, turned into a conflict by commit",
    ("localfs.py", "FileNotFoundError"): "delete_file: nothing to delete, ignored by Storage.delete",
}


def _builtin_raises(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every ``raise Name`` / ``raise Name(...)`` where ``Name`` is a builtin exception."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = target.id if isinstance(target, ast.Name) else (
            target.attr if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
            and target.value.id == "builtins" else None)
        obj = getattr(builtins, name, None) if name else None
        if isinstance(obj, type) and issubclass(obj, BaseException):
            found.append((node.lineno, name))
    return found


def test_no_plain_builtin_raise_in_the_package():
    bad = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        for line, name in _builtin_raises(path):
            if (rel, name) not in ALLOWED:
                bad.append(f"lakehouse/{rel}:{line}: raise {name} (use a LakehouseError subclass from errors.py)")
    assert not bad, "\n".join(bad)


def test_allowed_list_has_no_stale_entries():
    seen = set()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        seen.update((rel, name) for _, name in _builtin_raises(path))
    assert set(ALLOWED) <= seen, sorted(set(ALLOWED) - seen)


def test_scanner_sees_the_forms_it_forbids(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f(x):\n    if x:\n        raise ValueError('x')\n    raise TypeError\n"
                   "def g():\n    raise builtins.KeyError('k')\n"
                   "def h():\n    raise lh.InvalidArgumentError('fine')\n")
    assert sorted(n for _, n in _builtin_raises(src)) == ["KeyError", "TypeError", "ValueError"]


def test_every_error_class_is_a_lakehouse_error_and_exported():
    import lakehouse.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, lh.LakehouseError), name
        assert getattr(lh, name) is cls and name in lh.__all__, name
        assert name in errors.__doc__, f"{name} is missing from the tree drawn in errors.py's docstring"
