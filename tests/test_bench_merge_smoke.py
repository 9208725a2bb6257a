"""Smoke test of benchmarks/bench_merge.py (issue 16's benchmark) at a tiny size.

It runs the script end to end (every case in its own child process, as the real run does) and
checks that every lakehouse figure is a number, or ``n/a`` for an API this lakehouse does not have
yet, never an error, a timeout or a wrong result. Peers run only when importable (the bench extra).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lakehouse

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_merge.py"


def _run(tmp_path: Path, *args: str, timeout: str = "120", repeat: str = "1") -> dict:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rows", "3000", "--repeat", repeat, "--timeout", timeout,
                           "--workdir", str(tmp_path), "--out", str(out), *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| target (issue 16) |" in proc.stdout
    assert (out / "merge.md").read_text().strip() == proc.stdout.strip()
    return json.loads((out / "merge.json").read_text())


def _values(result: dict, engine: str) -> dict[str, object]:
    return {f"{f['case']}: {f['metric']}": f["values"][engine] for f in result["figures"] if engine in f["values"]}


def test_lakehouse_cases_run_and_are_right(tmp_path: Path) -> None:
    # every kind of lakehouse case once (each child process costs ~1 s of imports)
    result = _run(tmp_path, "--engines", "lakehouse,lakehouse-merge", "--only", "upsert,update,delete_1,read")
    assert not [n for n in result["notes"].values() if "WRONG" in n], result["notes"]
    for engine, upsert_api in (("lakehouse", "upsert"), ("lakehouse-merge", "merge")):
        values = _values(result, engine)
        assert values, engine
        for name, v in values.items():
            api = upsert_api if name.startswith("upsert") else "update" if name.startswith("update") else None
            if api is not None and not hasattr(lakehouse.Table, api):
                assert v == "n/a", (engine, name, v)  # not built yet: reported, not faked
            else:
                assert isinstance(v, float), (engine, name, v)
    values = _values(result, "lakehouse")
    assert isinstance(values["read: full read after 1% deleted"], float)
    assert isinstance(values["read: raw pq.read_table of the compacted lakehouse files"], float)
    assert {c for c, _, _ in result["targets"]}  # the targets table is filled in
    assert not list(tmp_path.glob("lh-merge-*")), "the work folder is removed"


def test_a_child_over_the_timeout_is_recorded_not_waited_for(tmp_path: Path) -> None:
    result = _run(tmp_path, "--engines", "lakehouse", "--only", "delete_1", timeout="0.001", repeat="2")
    (fig,) = [f for f in result["figures"] if f["metric"] == "delete 1 row (id =)"]
    assert fig["values"]["lakehouse"] == "timeout >0.001 s"
    assert len(fig["samples"]["lakehouse"]) == 1  # not repeated after a timeout
    assert "timeout >0.001 s" in (tmp_path / "out" / "merge.md").read_text()


@pytest.mark.skipif(importlib.util.find_spec("deltalake") is None, reason="deltalake not installed (bench extra)")
def test_deltalake_side_runs(tmp_path: Path) -> None:
    result = _run(tmp_path, "--engines", "deltalake", "--only", "upsert,delete_1")
    values = _values(result, "deltalake")
    assert all(isinstance(v, float) for v in values.values()), values
    assert not result["notes"], result["notes"]


@pytest.mark.skipif(importlib.util.find_spec("pyiceberg") is None, reason="pyiceberg not installed (bench extra)")
def test_pyiceberg_side_runs(tmp_path: Path) -> None:
    result = _run(tmp_path, "--engines", "pyiceberg", "--only", "upsert")
    values = _values(result, "pyiceberg")
    assert all(isinstance(v, float) for v in values.values()), values
    assert not result["notes"], result["notes"]
