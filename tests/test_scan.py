"""Every reader reaches the data files through one place: ``lakehouse.scan.TableDataset.scanner``.

Row-level work that must happen for every reader (a data file's deletion vector, once they exist)
is meant to live there and nowhere else (see the ``lakehouse.scan`` module docstring). This test
pins that: each public read path, run on a real table, calls ``TableDataset.scanner`` (recorded by
a wrapper that delegates to it unchanged) and returns the right rows. A new reader that bypasses
the dataset (``Scanner.from_fragment``, a plain ``FileSystemDataset``, ``pq.read_table``) fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import lakehouse as lh
from lakehouse import scan

ROWS = [1, 2, 3, 4, 5, 6]


def _table(uri: str) -> lh.Table:
    t = lh.write_table(uri, pa.table({"a": ROWS[:3], "p": [1, 1, 2]}), partition_by=["p"])
    t.append(pa.table({"a": ROWS[3:], "p": [2, 3, 3]}))
    return t


def _dask(t: lh.Table) -> list[int]:
    dask = pytest.importorskip("dask")
    from lakehouse.dask import read_dask

    with dask.config.set(scheduler="synchronous"):
        return sorted(read_dask(t.uri, columns=["a"]).compute()["a"].tolist())


def _duckdb(t: lh.Table) -> list[int]:
    pytest.importorskip("duckdb")
    return sorted(r[0] for r in t.to_duckdb("t").sql("select a from t").fetchall())


def _polars(t: lh.Table) -> list[int]:
    pytest.importorskip("polars")
    return sorted(t.to_polars().collect()["a"].to_list())


def _pandas(t: lh.Table) -> list[int]:
    pytest.importorskip("pandas")
    return sorted(t.snapshot().to_pandas(columns=["a"])["a"].tolist())


READERS: dict[str, Callable[[lh.Table], list[int]]] = {
    "to_arrow": lambda t: sorted(t.to_arrow().column("a").to_pylist()),
    "to_batches": lambda t: sorted(t.to_batches(columns=["a"]).read_all().column("a").to_pylist()),
    "capsule": lambda t: sorted(pa.table(t.snapshot()).column("a").to_pylist()),
    "to_pyarrow_dataset": lambda t: sorted(t.to_pyarrow_dataset().to_table().column("a").to_pylist()),
    "read_task": lambda t: sorted(v for task in t.plan_files() for v in lh.read_task(task).column("a").to_pylist()),
    "to_pandas": _pandas,
    "to_polars": _polars,
    "to_duckdb": _duckdb,
    "read_dask": _dask,
}


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The filters of every ``TableDataset.scanner`` call (the method itself still runs)."""
    seen: list[Any] = []
    original = scan.TableDataset.scanner

    def recorded(self: scan.TableDataset, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("filter"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(scan.TableDataset, "scanner", recorded)
    return seen


@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_scans_through_table_dataset(reader: str, scans: list[Any], tmp_path) -> None:
    t = _table(str(tmp_path / "t"))
    before = len(scans)
    assert READERS[reader](t) == ROWS
    assert len(scans) > before, f"{reader} read the data files without TableDataset.scanner"


@pytest.mark.parametrize("kind", ["delete", "optimize", "optimize sorted"])
def test_every_rewrite_scans_through_table_dataset(kind: str, scans: list[Any]) -> None:
    t = _table(f"memory://scan-{uuid.uuid4().hex}")
    before = len(scans)
    if kind == "delete":
        t.delete([("a", "=", 2)])  # a partial file: its kept rows are read and rewritten
        expected = [r for r in ROWS if r != 2]
    else:
        t.optimize(sort_by=["a"] if kind == "optimize sorted" else None)
        expected = ROWS
    assert len(scans) > before, f"{kind} read the data files without TableDataset.scanner"
    assert sorted(t.to_arrow().column("a").to_pylist()) == expected


def test_table_and_snapshot_to_pandas_take_the_same_arguments(tmp_path) -> None:
    """One ``to_pandas`` signature: ``Table``'s is ``Snapshot``'s plus ``version`` / ``as_of`` (as for
    ``to_arrow``), and every call that worked before still returns the same rows."""
    import inspect

    pytest.importorskip("pandas")
    snap = inspect.signature(lh.Snapshot.to_pandas).parameters
    table = inspect.signature(lh.Table.to_pandas).parameters
    assert list(snap) == ["self", "columns", "filter"]
    assert list(table) == [*snap, "version", "as_of"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in table.items() if n != "self")
    t = _table(str(tmp_path / "t"))
    s = t.snapshot()
    for kwargs in ({}, {"columns": ["a"]}, {"filter": [("a", ">", 2)]}, {"columns": ["a"], "filter": "a > 2"}):
        expected = t.to_arrow(**kwargs).to_pandas()
        assert t.to_pandas(**kwargs).equals(expected)
        assert s.to_pandas(**kwargs).equals(expected)
    assert len(t.to_pandas(version=0)) == 3
    with pytest.raises(TypeError):
        s.to_pandas(version=0)  # type: ignore[call-arg]
