"""The scripts in examples/ run (each as a subprocess in a fresh folder) and print what they promise."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

import lakehouse as lh

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONWARNINGS": "error"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_every_example_is_tested():
    tested = {"demo.py", "time_travel.py", "maintenance.py", "duckdb_polars.py", "cdc_upsert.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_demo(tmp_path):
    out = run("demo.py", tmp_path)
    assert "overwrote day 2 -> version 4" in out
    assert (tmp_path / "demo-table" / "_lakehouse_log").is_dir()


def test_time_travel_demo(tmp_path):
    lines = run("time_travel.py", tmp_path).splitlines()
    assert lines[1].startswith("yesterday: version 1 ")
    assert "today: version 4, 6 rows" in lines
    assert "rows added: 2  [6, 7]" in lines
    assert "rows removed: 1  [2]" in lines
    assert "rows changed: 1  [5]" in lines
    assert "  id=5: {'customer': 'c2', 'amount': 50.0} -> {'customer': 'c2', 'amount': 55.0}" in lines
    assert not list(tmp_path.iterdir()), "the demo table lives in a temporary folder that is removed"


def test_time_travel_on_an_existing_table(tmp_path):
    uri = str(tmp_path / "t")
    t = lh.write_table(uri, pa.table({"k": [1, 2], "v": ["a", "b"]}))
    between = t.history(1)[0].timestamp + dt.timedelta(milliseconds=1)
    time.sleep(0.01)
    t.overwrite(pa.table({"k": [2, 3], "v": ["B", "c"]}))
    out = run("time_travel.py", tmp_path, uri, "--as-of", between.isoformat(), "--key", "k").splitlines()
    assert "rows added: 1  [3]" in out
    assert "rows removed: 1  [1]" in out
    assert "rows changed: 1  [2]" in out


def test_maintenance(tmp_path):
    lines = run("maintenance.py", tmp_path).splitlines()
    assert "after 12 small commits: version 11, 12 files, 12 rows" in lines
    assert "optimize -> version 12: 2 files, 12 rows" in lines
    assert "vacuum dry run, 7-day retention: 0 files would be deleted" in lines
    assert "vacuum dry run, zero retention: 12 files would be deleted" in lines
    assert "files still on storage: 14" in lines  # a dry run deletes nothing
    assert any(line.startswith("restore the optimized version -> version 14: 12 rows") for line in lines)


def test_duckdb_polars(tmp_path):
    out = run("duckdb_polars.py", tmp_path).splitlines()
    assert "table at version 1 with 13 rows" in out
    for module, line in [("duckdb", "duckdb: [('east', 260.0), ('north', 180.0), ('south', 220.0), ('west', 500.0)]"),
                         ("polars", "polars: [('east', 1), ('south', 1), ('west', 1)]"),
                         ("pandas", "pandas: [{'id': 12, 'amount': 500.0}]")]:
        try:
            __import__(module)
        except ImportError:
            assert f"{module}: skipped ({module} is not installed)" in out
        else:
            assert line in out


@pytest.mark.parametrize("script", ["time_travel.py", "maintenance.py", "duckdb_polars.py"])
def test_examples_have_a_docstring_that_says_how_to_run_them(script):
    assert f"python examples/{script}" in (EXAMPLES / script).read_text()


def test_cdc_upsert(tmp_path):
    pytest.importorskip("sqlglot")
    lines = run("cdc_upsert.py", tmp_path).splitlines()
    assert lines[:3] == ["batch 1: version 1, +3 ~0 -0", "batch 2: version 2, +1 ~1 -1",
                         "batch 2 again: version 2, skipped=True"]
    assert lines[3].startswith("now: [{'id': 1,") and "'id': 3" not in lines[3] and "'amount': 25.0" in lines[3]
    assert lines[4] == "after batch 1: [1, 2, 3]"
