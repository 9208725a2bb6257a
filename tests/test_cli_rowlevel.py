"""``lakehouse update``, ``delete`` and ``merge`` on the command line, against the library's result."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import lakehouse as lh

click_testing = pytest.importorskip("click.testing")
pytest.importorskip("sqlglot")
from lakehouse.cli import cli  # noqa: E402


def _run(*args: str) -> tuple[int, str]:
    result = click_testing.CliRunner().invoke(cli, [*args, "--quiet"] if args[0] != "delete" else list(args))
    return result.exit_code, result.output


def _rows(uri: str) -> list[dict]:
    return lh.Table.open(uri).to_arrow().sort_by("id").to_pylist()


def test_update_delete_merge(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    lh.write_table(uri, pa.table({"id": [1, 2, 3, 4], "v": [1, 2, 3, 4], "s": ["a", "b", "c", "d"]}))
    assert _run("update", uri, "--set", "v=v * 10", "--set", "s='x'", "--filter", "id >= 3") == (0, "version 1\n")
    assert [r["v"] for r in _rows(uri)] == [1, 2, 30, 40] and _rows(uri)[3]["s"] == "x"
    assert _run("delete", uri, "--filter", '[["id", "=", 1]]') == (0, "version 2\n")
    assert _run("update", uri, "--set", "v=0", "--filter", "id = 99") == (0, "nothing changed\n")

    src = tmp_path / "src.parquet"
    pq.write_table(pa.table({"id": [2, 5], "v": [200, 500], "s": ["B", "E"]}), src)
    code, out = _run("merge", uri, str(src), "--on", "id", "--output", "json")
    assert code == 0 and json.loads(out) == {"version": 3, "num_inserted": 1, "num_updated": 1, "num_deleted": 0}
    assert [(r["id"], r["v"]) for r in _rows(uri)] == [(2, 200), (3, 30), (4, 40), (5, 500)]

    csv = tmp_path / "src.csv"
    pacsv.write_csv(pa.table({"id": [5, 6], "v": [5, 6], "s": ["e", "f"]}), csv)
    code, out = _run("merge", uri, str(csv), "--on", "id", "--no-insert", "--delete-not-in-source")
    assert code == 0 and out == "version 4: inserted 0, updated 1, deleted 3\n"
    assert [(r["id"], r["v"]) for r in _rows(uri)] == [(5, 5)]


def test_delete_needs_a_filter_and_errors_are_one_line(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    lh.write_table(uri, pa.table({"id": [1, 2], "v": [1, 2]}))
    code, out = _run("delete", uri)
    assert code == 2 and "--filter" in out
    code, out = _run("update", uri, "--set", "nope")
    assert code == 2 and "COLUMN=SQL" in out
    code, out = _run("update", uri, "--set", "missing=1")
    assert code == 1 and "missing" in out
    src = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"id": [1, 1], "v": [5, 6]}), src)
    code, out = _run("merge", uri, str(src), "--on", "id")
    assert code == 1 and "DuplicateMatchError" in out
    assert _rows(uri) == [{"id": 1, "v": 1}, {"id": 2, "v": 2}]
