"""progress=: callbacks hear monotonic events ending with done == total; True draws a bar (rich)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pyarrow as pa
import pytest
from click.testing import CliRunner

import lakehouse as lh
from lakehouse.cli import cli
from lakehouse.progress import ProgressEvent, progress_callback

DATA = pa.table({"id": list(range(9)), "p": [0, 1, 2] * 3})


def _check(events: list[ProgressEvent], operation: str) -> dict[str, ProgressEvent]:
    """Every stage's events are monotonic and the last one has done == total; the last event per stage."""
    assert events, f"no events for {operation}"
    by_stage: dict[str, list[ProgressEvent]] = defaultdict(list)
    for e in events:
        assert e.operation == operation
        by_stage[e.stage].append(e)
    for stage, seq in by_stage.items():
        dones = [e.done for e in seq]
        assert dones == sorted(dones), (stage, dones)
        assert seq[-1].total is not None and seq[-1].done == seq[-1].total, (stage, seq[-1])
        assert all(e.total is None or e.done <= e.total for e in seq)
    return {stage: seq[-1] for stage, seq in by_stage.items()}


def test_writes_report_files_and_bytes(table_uri):
    events: list[ProgressEvent] = []
    t = lh.write_table(table_uri, DATA, partition_by=["p"], progress=events.append)
    last = _check(events, "write")
    assert last["files"].total == 3 and last["files"].unit == "files"
    assert last["bytes"].total == sum(t.files().column("size_bytes").to_pylist())
    for method in ("append", "overwrite"):
        events.clear()
        getattr(t, method)(DATA, progress=events.append)
        assert _check(events, method)["files"].total == 3
    events.clear()
    lh.write_table(table_uri, DATA, mode="append", progress=events.append)
    assert _check(events, "append")["files"].total == 3


def test_optimize_vacuum_checkpoint_report(table_uri):
    t = lh.write_table(table_uri, DATA, partition_by=["p"])
    t.append(DATA)
    events: list[ProgressEvent] = []
    assert t.optimize(progress=events.append) is not None
    assert _check(events, "optimize")["rewrite"] == ProgressEvent("optimize", "rewrite", 3, 3, "bins")
    events.clear()
    assert t.optimize(progress=events.append) is None  # nothing to do: 0 of 0
    assert _check(events, "optimize")["rewrite"].total == 0
    events.clear()
    dry = t.vacuum(retention=dt.timedelta(0), enforce_retention=False, progress=events.append)
    assert _check(events, "vacuum")["delete"].total == 0 and len(dry) == 6
    events.clear()
    deleted = t.vacuum(retention=dt.timedelta(0), enforce_retention=False, dry_run=False, progress=events.append)
    assert _check(events, "vacuum")["delete"].total == len(deleted) == 6
    assert [e.done for e in events] == list(range(7))
    events.clear()
    assert t.checkpoint(progress=events.append) == t.version
    assert events == [ProgressEvent("checkpoint", "write", 0, 1, "checkpoints"),
                      ProgressEvent("checkpoint", "write", 1, 1, "checkpoints")]


def test_progress_true_draws_a_rich_bar_on_stderr(tmp_path, capsys):
    pytest.importorskip("rich")
    uri = str(tmp_path / "t")
    t = lh.write_table(uri, DATA, partition_by=["p"], progress=True)
    t.append(DATA, progress=True)
    assert t.optimize(progress=True) is not None
    t.vacuum(retention=dt.timedelta(0), enforce_retention=False, dry_run=False, progress=True)
    t.checkpoint(progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "optimize" in err and "vacuum" in err and "checkpoint" in err


def test_silent_by_default_and_bad_values_refused(tmp_path, capsys):
    t = lh.write_table(str(tmp_path / "t"), DATA)
    t.append(DATA)
    t.optimize()
    assert capsys.readouterr() == ("", "")
    with pytest.raises(TypeError, match="progress"):
        progress_callback("yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        t.append(DATA, progress=1)  # type: ignore[arg-type]


def test_a_failing_write_closes_the_bar(tmp_path):
    events: list[ProgressEvent] = []
    t = lh.write_table(str(tmp_path / "t"), DATA)
    with pytest.raises(lh.SchemaMismatchError):
        t.append(pa.table({"other": [1]}), progress=events.append)
    assert events == []


def test_cli_shows_progress_unless_quiet_or_json(tmp_path):
    uri = str(tmp_path / "t")
    t = lh.write_table(uri, DATA, partition_by=["p"])
    t.append(DATA)
    run = CliRunner().invoke
    text = run(cli, ["optimize", uri])
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("version 2:") and "optimize" in text.stderr
    quiet = run(cli, ["vacuum", uri, "--retention", "0", "--no-enforce-retention", "--no-dry-run", "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == "" and "deleted 6 files" in quiet.stdout
    as_json = run(cli, ["checkpoint", uri, "--output", "json"])
    assert as_json.exit_code == 0 and as_json.stderr == ""
    shown = run(cli, ["checkpoint", uri])
    assert shown.exit_code == 0 and "checkpoint" in shown.stderr
