"""Handles pinned to a version (``Table.open(uri, version=, as_of=)``) and every reader's
``version=`` / ``as_of=`` (issue 13, items 6 and 19).

A pinned handle reads only what its version needs, so a damaged later log entry does not make older
versions unreachable; versions at or past the damage still fail with typed errors.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from helpers import assert_same_rows, fs_and_root, log_entry_path, make_data, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.cli import cli

UTC = dt.timezone.utc


def _history(uri: str, versions: int, *,
             checkpoint_at: int | None = None) -> tuple[lh.Table, dict[int, pa.Table], dict[int, dt.datetime]]:
    """A table with versions 0..versions-1 (appends, a delete, an overwrite); each version's rows
    and commit time, read before anything is damaged."""
    t = lh.write_table(uri, make_data(range(0, 10), part=[i % 3 for i in range(10)]), partition_by=["part"])
    ops = [
        lambda: t.append(make_data(range(10, 15), part=1)),
        lambda: t.delete(pc.field("id") < 3),
        lambda: t.overwrite(make_data(range(100, 104), part=2), filter=pc.field("part") == 2),
        lambda: t.append(make_data(range(20, 25), part=0)),
        lambda: t.delete(pc.field("part") == 1),
    ]
    for op in ops[: versions - 1]:
        op()
        if t.version == checkpoint_at:
            t.checkpoint()
    assert t.version == versions - 1
    data = {v: t.to_arrow(version=v) for v in range(versions)}
    times = {c.version: c.timestamp for c in t.history()}
    return t, data, times


def _damage(uri: str, version: int) -> None:
    """Overwrite the log entry of ``version`` with garbage (as a torn or tampered write would)."""
    fs, _ = fs_and_root(uri)
    fs.pipe_file(log_entry_path(uri, version), b"\x00garbage, not a log entry\xff" * 3)


def _as_of_version(times: dict[int, dt.datetime], when: dt.datetime) -> int:
    return max(v for v, ts in times.items() if ts <= when)


# -- item 6: a damaged entry leaves older versions readable --------------------------------------
def test_damaged_latest_entry_leaves_older_versions_readable(table_uri):
    _, data, times = _history(table_uri, 5)
    _damage(table_uri, 4)
    with pytest.raises(lh.CorruptLogError):
        lh.Table.open(table_uri)
    for v in range(4):
        t = lh.Table.open(table_uri, version=v)
        assert t.version == v
        assert_same_rows(t.to_arrow(), data[v])
        assert_same_rows(t.to_batches().read_all(), data[v])
    with pytest.raises(lh.CorruptLogError):
        lh.Table.open(table_uri, version=4)
    # as_of decodes only the entries it bisects: any time before version 4's commit is answered
    for v in range(4):
        t = lh.Table.open(table_uri, as_of=times[v])
        assert t.version == _as_of_version(times, times[v])
        assert_same_rows(t.to_arrow(), data[t.version])
    with pytest.raises(lh.CorruptLogError):  # a time after version 3's needs version 4's timestamp
        lh.Table.open(table_uri, as_of=dt.datetime(2200, 1, 1, tzinfo=UTC))


def test_damaged_middle_entry_and_checkpoint_after_it(table_uri):
    _, data, _ = _history(table_uri, 6, checkpoint_at=3)
    _damage(table_uri, 2)
    for v in (0, 1):
        assert_same_rows(lh.Table.open(table_uri, version=v).to_arrow(), data[v])
    with pytest.raises(lh.CorruptLogError) as info:
        lh.Table.open(table_uri, version=2)
    assert info.value.path and info.value.path.endswith(f"{2:020d}.msgpack")
    for v in (3, 4, 5):  # the checkpoint at 3 covers the damaged entry
        assert_same_rows(lh.Table.open(table_uri, version=v).to_arrow(), data[v])
    assert lh.Table.open(table_uri).version == 5


def test_version_beyond_latest_is_typed(table_uri):
    t, _, _ = _history(table_uri, 3)
    t.checkpoint()  # the reader then starts from the pointer: the message must still name the latest
    for bad in (3, 34):
        with pytest.raises(lh.VersionNotFoundError, match=rf"version {bad} does not exist \(latest is 2\)"):
            lh.Table.open(table_uri, version=bad)
        with pytest.raises(lh.VersionNotFoundError, match=rf"version {bad} does not exist \(latest is 2\)"):
            t.to_arrow(version=bad)
    with pytest.raises(lh.VersionNotFoundError):
        lh.Table.open(table_uri, version=-1)
    with pytest.raises(lh.VersionNotFoundError, match="no version of the table existed"):
        lh.Table.open(table_uri, as_of=dt.datetime(2000, 1, 1, tzinfo=UTC))


def test_bad_version_arguments_are_typed(tmp_path):
    uri = str(tmp_path / "t")
    t, _, times = _history(uri, 2)
    with pytest.raises(lh.LakehouseError, match="not both") as info:
        lh.Table.open(uri, version=0, as_of=times[0])
    assert isinstance(info.value, ValueError)
    with pytest.raises(lh.LakehouseError, match="aware"):
        lh.Table.open(uri, as_of=dt.datetime(2030, 1, 1))
    with pytest.raises(lh.LakehouseError) as type_info:
        lh.Table.open(uri, version="1")  # type: ignore[arg-type]
    assert isinstance(type_info.value, TypeError)
    with pytest.raises(lh.TableNotFoundError):
        lh.Table.open(str(tmp_path / "nothing"), version=0)
    with pytest.raises(lh.TableNotFoundError):
        lh.Table.open(str(tmp_path / "nothing"), as_of=times[0])
    for reader in ("to_arrow", "to_batches", "to_pyarrow_dataset", "files", "plan_files", "to_pandas",
                   "to_polars", "snapshot"):
        with pytest.raises(lh.InvalidArgumentError, match="not both"):
            getattr(t, reader)(version=0, as_of=times[0])
        with pytest.raises(lh.ArgumentTypeError):
            getattr(t, reader)(version=1.0)
    with pytest.raises(lh.InvalidArgumentError, match="not both"):
        t.to_duckdb("x", version=0, as_of=times[0])


# -- a pinned handle: reads stay, refresh moves it, writes use it as their read version ----------
def test_pinned_handle_reads_its_version_until_refresh(table_uri):
    t, data, _ = _history(table_uri, 3)
    pinned = lh.Table.open(table_uri, version=1)
    t.append(make_data(range(50, 52), part=0))  # another writer moves on
    assert pinned.version == 1
    assert_same_rows(pinned.to_arrow(), data[1])
    assert_same_rows(pa.table(pinned), data[1])
    assert pinned.snapshot().version == 1
    assert [c.version for c in pinned.history()] == [1, 0]  # its history ends at its version
    copy = pickle.loads(pickle.dumps(pinned))
    assert copy.version == 1 and [c.version for c in copy.history()] == [1, 0]
    assert pinned.refresh() == 3
    assert_same_rows(pinned.to_arrow(), t.to_arrow())
    assert pinned.history(1)[0].version == 3


def test_pinned_handle_writes_decide_on_their_version(table_uri):
    t, _, _ = _history(table_uri, 2)  # version 1 appended ids 10..14 in part 1
    pinned = lh.Table.open(table_uri, version=0)
    stale = lh.Table.open(table_uri, version=0)
    stale._pinned = False  # what an ordinary handle last refreshed at 0 is
    t.append(make_data(range(30, 33), part=1))  # version 2 adds rows the delete below matches
    # a delete decided on version 0 cannot know of version 2's rows: a conflict, nothing written
    with pytest.raises(lh.CommitConflictError):
        pinned.delete(pc.field("part") == 1)
    assert lh.Table.open(table_uri).version == 2
    # the same delete from an ordinary handle refreshes first and succeeds
    assert stale.delete(pc.field("part") == 1) == 3
    # an append from a pinned handle is rebased onto the latest, like any blind append
    pinned2 = lh.Table.open(table_uri, version=0)
    before = lh.Table.open(table_uri).to_arrow()
    assert pinned2.append(make_data([99], part=0)) == 4
    assert pinned2.version == 4
    assert_same_rows(pinned2.to_arrow(), pa.concat_tables([before, make_data([99], part=0)]))
    # a delete that matches nothing added since its version rebases
    pinned3 = lh.Table.open(table_uri, version=3)
    assert pinned3.delete(pc.field("id") == 5) == 5
    assert 5 not in lh.Table.open(table_uri).to_arrow().column("id").to_pylist()
    assert 99 in lh.Table.open(table_uri).to_arrow().column("id").to_pylist()


def test_maintenance_on_a_pinned_handle_acts_on_the_latest(tmp_path):
    uri = str(tmp_path / "t")
    _history(uri, 3)
    pinned = lh.Table.open(uri, version=0)
    assert pinned.checkpoint() == 2
    assert pinned.version == 2


# -- item 19: every reader at every version agrees with to_arrow(version=) -------------------------
def _arrow(result: pa.Table | pa.RecordBatchReader) -> pa.Table:
    """DuckDB's ``.arrow()`` gives a table or (newer releases) a reader."""
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def _readers_at(t: lh.Table, **at) -> dict[str, pa.Table]:
    import duckdb

    tasks = t.plan_files(**at)
    out = {
        "to_batches": t.to_batches(**at).read_all(),
        "to_pyarrow_dataset": t.to_pyarrow_dataset(**at).to_table(),
        "to_pandas": pa.Table.from_pandas(t.to_pandas(**at), preserve_index=False),
        "to_polars": t.to_polars(**at).collect().to_arrow(),
        "to_duckdb": _arrow(t.to_duckdb("v", duckdb.connect(), **at).sql("select * from v").arrow()),
        "plan_files": pa.concat_tables([lh.read_task(task) for task in tasks]) if tasks else None,
        "snapshot": t.snapshot(**at).to_arrow(),
    }
    return out


def _same(actual: pa.Table | None, expected: pa.Table) -> None:
    if actual is None:
        assert expected.num_rows == 0
        return
    assert actual.column_names == expected.column_names
    assert actual.num_rows == expected.num_rows
    got = actual.cast(expected.schema) if not actual.schema.equals(expected.schema) else actual
    assert rows(got) == rows(expected)


def test_every_reader_reads_every_version(table_uri):
    pytest.importorskip("polars")
    pytest.importorskip("duckdb")
    pytest.importorskip("pandas")
    t, data, times = _history(table_uri, 6)
    for v in range(6):
        expected = t.to_arrow(version=v)
        assert_same_rows(expected, data[v])
        for name, got in _readers_at(t, version=v).items():
            try:
                _same(got, expected)
            except AssertionError as exc:
                raise AssertionError(f"{name} at version {v}") from exc
        assert sum(t.files(version=v).column("num_rows").to_pylist()) >= expected.num_rows
        at = _as_of_version(times, times[v])
        for name, got in _readers_at(t, as_of=times[v]).items():
            try:
                _same(got, data[at])
            except AssertionError as exc:
                raise AssertionError(f"{name} as of version {v}'s time") from exc
    # a pinned handle's readers without version= read its version
    pinned = lh.Table.open(table_uri, version=2)
    for name, got in _readers_at(pinned).items():
        try:
            _same(got, data[2])
        except AssertionError as exc:
            raise AssertionError(f"{name} on a handle pinned at 2") from exc


# -- the CLI opens pinned --------------------------------------------------------------------------
def test_cli_reads_an_old_version_past_a_damaged_entry(tmp_path):
    uri = str(tmp_path / "t")
    _, data, times = _history(uri, 4)
    _damage(uri, 3)
    runner = CliRunner()
    result = runner.invoke(cli, ["scan", uri, "--version", "1", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert result.output.count('"id"') == data[1].num_rows
    result = runner.invoke(cli, ["describe", uri, "--as-of", times[2].isoformat(), "-o", "json"])
    assert result.exit_code == 0, result.output
    assert '"version": 2' in result.output and '"latest_version": null' in result.output
    for command in ("schema", "files"):
        result = runner.invoke(cli, [command, uri, "--version", "0"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["scan", uri, "--version", "3"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    result = runner.invoke(cli, ["scan", uri])
    assert result.exit_code == 1 and "Traceback" not in result.output


# -- the class: any damaged entry, with or without a checkpoint after it ------------------------------
_FUZZ = settings(max_examples=300 if os.environ.get("LH_FUZZ") else 20, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(0, n - 1), st.one_of(st.none(), st.integers(0, n - 1)))))
def test_any_damaged_entry_leaves_exactly_the_versions_that_do_not_need_it(case):
    """Version ``v`` is readable iff it does not need the damaged entry ``d``: ``v < d``, or a
    checkpoint ``c`` with ``d <= c <= v`` covers it; by time, exactly the same except at ``d``'s own
    commit time, which needs ``d``'s timestamp."""
    n, damaged, checkpoint_at = case
    uri = f"memory://pinned-fuzz-{uuid.uuid4().hex}"
    t = lh.write_table(uri, pa.table({"v": [0]}))
    for v in range(1, n):
        if v - 1 == checkpoint_at:
            t.checkpoint()
        t.append(pa.table({"v": [v]}))
    if checkpoint_at == n - 1:
        t.checkpoint()
    times = {c.version: c.timestamp for c in t.history()}
    _damage(uri, damaged)
    try:
        for v in range(n):
            readable = v < damaged or (checkpoint_at is not None and damaged <= checkpoint_at <= v)
            for how in ({"version": v}, {"as_of": times[v]}):
                if readable and not ("as_of" in how and v == damaged):
                    opened = lh.Table.open(uri, **how)
                    assert opened.version == v
                    assert sorted(opened.to_arrow().column("v").to_pylist()) == list(range(v + 1))
                else:
                    with pytest.raises(lh.CorruptLogError):
                        lh.Table.open(uri, **how)
        latest_readable = checkpoint_at is not None and checkpoint_at >= damaged
        if latest_readable:
            assert lh.Table.open(uri).version == n - 1
        else:
            with pytest.raises(lh.CorruptLogError):
                lh.Table.open(uri)
        with pytest.raises(lh.VersionNotFoundError, match=f"does not exist \\(latest is {n - 1}\\)"):
            lh.Table.open(uri, version=n)
    finally:
        fs, root = fs_and_root(uri)
        fs.rm(root, recursive=True)
