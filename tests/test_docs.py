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
