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
