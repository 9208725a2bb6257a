"""The README's Python examples run (with their paths moved into a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
RUNNABLE = [b for b in BLOCKS if "{...}" not in b]  # blocks with placeholders are illustrations


def test_readme_has_a_runnable_quick_start():
    assert RUNNABLE, "the README lost its quick start"


@pytest.mark.parametrize("code", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_example_runs(code, tmp_path, capsys):
    code = code.replace("/tmp/", f"{tmp_path}/")
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    if "history()" in code:
        assert "delete" in out and "append" in out, "the history printed by the example"


ECOSYSTEM = Path(__file__).resolve().parents[1] / "docs" / "ecosystem.md"


def test_ecosystem_page_runs(tmp_path, capsys):
    """docs/ecosystem.md's blocks, in order in one namespace (later ones read the table the first makes)."""
    for module in ("pandas", "polars", "duckdb"):
        pytest.importorskip(module)
    blocks = re.findall(r"```python\n(.*?)```", ECOSYSTEM.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for code in blocks:
        exec(compile(code.replace("/tmp/", f"{tmp_path}/"), str(ECOSYSTEM), "exec"), namespace)
    out = capsys.readouterr().out.split("\n")
    assert out[:4] == ["4", "4", "[(4,)]", "1"]
    assert out[4:7] == ["['c', 'd']", "['a', 'b']", "[(2,)]"]


# -- the documentation site's pages (mkdocs.yml; `make docs` builds them with --strict) ---------------

DOCS = Path(__file__).resolve().parents[1] / "docs"
MKDOCS = Path(__file__).resolve().parents[1] / "mkdocs.yml"
NOT_RUN = "not run by the tests"  # the first comment of a block that needs a cloud account or a server
# Each page's blocks run in order in one namespace (later blocks use what earlier ones made), in a
# fresh folder, with "/tmp/" moved there; the expected lines are among what they print.
PAGES = {
    "index.md": ["2", "3", "['delete', 'append', 'write']", "4"],
    "concepts.md": ["append ['day=2']", "1 3", "2 4", "CommitConflictError", "3 [1, 4]", "True 1 3",
                    "5 5 1", "[1] restore"],
    "howto-storage.md": ["True 3", "True 0 0 0"],
    "howto-upserts.md": ["[{'id': 2, 'name': 'x', 'value': 21}, {'id': 3, 'name': 'c', 'value': 300}]", "0 1",
                         "1 1 1", "[1, 2, 4, 5, 6]", "DuplicateMatchError {'id': 1} 2", "[1, 2, 4, 5] 1",
                         "['merge', 'merge', 'upsert']", "4", "1000 1000 2000"],
    "inspect.md": ["[{'version': 1, 'operation': 'append', 'rows_added': 1}, "
                   "{'version': 0, 'operation': 'write', 'rows_added': 3}]"],
    "api.md": [],
    "filters.md": ["['banana']", "['apple']", "InvalidFilterError", "['banana']"],
}


def _page_blocks(page: str) -> tuple[list[str], list[str]]:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
    return [b for b in blocks if NOT_RUN not in b], [b for b in blocks if NOT_RUN in b]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_docs_page_runs(page, tmp_path, monkeypatch, capsys):
    runnable, _ = _page_blocks(page)
    assert runnable, f"docs/{page} has no runnable example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in runnable:
        exec(compile(code.replace("/tmp/", f"{tmp_path}/"), str(DOCS / page), "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    for line in PAGES[page]:
        assert line in out, f"docs/{page}: expected the line {line!r} in {out}"


def test_cloud_blocks_are_marked_and_compile():
    """Blocks that cannot run here at least parse, and say so on their first line."""
    _, skipped = _page_blocks("howto-storage.md")
    skipped += _page_blocks("dask.md")[1]
    assert len(skipped) >= 4  # S3, an S3-compatible endpoint, Azure, Azurite, GCS, single writer
    for code in skipped:
        assert code.lstrip().startswith(f"# {NOT_RUN}")
        compile(code, "howto-storage.md", "exec")


def test_every_docs_page_is_in_the_nav():
    nav = MKDOCS.read_text()
    missing = [p.name for p in DOCS.glob("*.md") if f": {p.name}" not in nav]
    assert not missing, f"pages missing from mkdocs.yml nav: {missing}"


def test_api_page_covers_the_public_api():
    import lakehouse

    api = (DOCS / "api.md").read_text()
    errors = set(lakehouse.errors.__all__)
    documented = set(re.findall(r"^::: lakehouse\.(\w+)", api, flags=re.M))
    missing = [n for n in lakehouse.__all__ if n not in errors and n != "__version__" and n not in documented]
    assert not missing, f"public names missing from docs/api.md: {missing}"
    assert {"errors", "dask"} <= documented


def test_api_page_renders_inherited_methods():
    """A public class inheriting public methods from the package's base classes (``Table``: its read
    and maintenance verbs) has ``inherited_members: true`` in its docs/api.md block, or mkdocstrings
    would leave those methods out."""
    import inspect

    import lakehouse

    api = (DOCS / "api.md").read_text()
    blocks = dict(re.findall(r"^::: lakehouse\.(\w+)\n((?:[ \t]+\S.*\n)*)", api, flags=re.M))
    missing = []
    for name in lakehouse.__all__:
        cls = getattr(lakehouse, name)
        if not inspect.isclass(cls) or name not in blocks:
            continue
        inherited = {
            attr
            for base in cls.__mro__[1:]
            if base.__module__.startswith("lakehouse")
            for attr in vars(base)
            if not attr.startswith("_") and attr not in vars(cls)
        }
        if inherited and "inherited_members: true" not in blocks[name]:
            missing.append(f"{name} (inherits {sorted(inherited)})")
    assert not missing, f"docs/api.md leaves out inherited methods of: {missing}"
    assert "vacuum" in dir(lakehouse.Table) and "inherited_members: true" in blocks["Table"]


def test_every_python_block_of_the_docs_runs_or_says_why():
    """A page with a runnable Python block must be run by one of the tests above."""
    run_elsewhere = {"ecosystem.md"}  # test_ecosystem_page_runs
    for page in sorted(DOCS.glob("*.md")):
        runnable, _ = _page_blocks(page.name)
        if runnable:
            assert page.name in PAGES or page.name in run_elsewhere, f"docs/{page.name} has unrun examples"
