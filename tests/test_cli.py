"""The ``lakehouse`` command line, run in-process through click's CliRunner on local and memory:// tables."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import lakehouse as lh
from lakehouse.cli import cli, main, parse_filter, parse_retention, parse_size, parse_storage_options

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _data(ids: list[int], days: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "day": pa.array(days, pa.int32()),
                     "v": pa.array([i / 2 for i in ids], pa.float64())})


@pytest.fixture(params=["local", "memory"])
def uri(request: pytest.FixtureRequest, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "t")
        return
    name = f"cli-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture
def table(uri) -> lh.Table:
    """Version 0: ids 1-3 (days 1, 1, 2); 1: id 4 (day 3); 2: id 1 deleted."""
    t = lh.write_table(uri, _data([1, 2, 3], [1, 1, 2]), partition_by=["day"])
    t.append(_data([4], [3]))
    t.delete([("id", "=", 1)])
    return t


def run(*args: Any, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.stderr, result.exception)
    return result


def run_json(*args: Any) -> Any:
    return json.loads(run(*args, "--output", "json").stdout)


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(r["id"] for r in rows)


# -- one test per command ---------------------------------------------------------------------------
def test_describe(table):
    doc = run_json("describe", table.uri)
    assert (doc["version"], doc["latest_version"], doc["rows"], doc["files"]) == (2, 2, 3, 3)
    assert doc["partition_by"] == ["day"]
    assert [c["name"] for c in doc["columns"]] == ["id", "day", "v"]
    assert doc["size_bytes"] == sum(table.files().column("size_bytes").to_pylist())
    assert dt.datetime.fromisoformat(doc["timestamp"]) == table.snapshot().timestamp
    assert doc["constraints"] == {}
    old = run_json("describe", table.uri, "--version", 0)
    assert (old["version"], old["rows"]) == (0, 3) and "constraints" not in old
    text = run("describe", table.uri).stdout
    assert table.uri in text and "partition_by" in text and "double" in text


def test_history(table):
    rows = run_json("history", table.uri)
    assert [r["version"] for r in rows] == [2, 1, 0]
    assert [r["operation"] for r in rows] == ["delete", "append", "write"]
    assert rows[2]["parameters"] == {"mode": "create"}  # an object, not a string
    assert rows[0]["rows_removed"] == 2 and rows[0]["rows_added"] == 1
    assert dt.datetime.fromisoformat(rows[0]["timestamp"]) == table.history()[0].timestamp
    assert [r["version"] for r in run_json("history", table.uri, "--limit", 1)] == [2]
    assert "append" in run("history", table.uri).stdout


def test_files_shows_what_pruning_keeps(table):
    doc = run_json("files", table.uri, "--filter", '[["day", "=", 1]]')
    assert (doc["files_total"], doc["files_kept"]) == (3, 1)
    assert doc["files"][0]["partition"] == {"day": 1}
    assert doc["files"][0]["stats"]["id"] == {"min": 2, "max": 2, "null_count": 0}
    assert run_json("files", table.uri)["files_kept"] == 3
    assert run_json("files", table.uri, "--version", 0)["files_total"] == 2
    by_stats = run_json("files", table.uri, "--filter", '[["id", ">", 3]]')
    assert [f["partition"] for f in by_stats["files"]] == [{"day": 3}]  # pruned by max.id
    either = run_json("files", table.uri, "--filter", '[[["day", "=", 1]], [["day", "=", 3]]]')
    assert either["files_kept"] == 2
    assert "pruning keeps 1 of 3 files" in run("files", table.uri, "--filter", '[["day", "=", 1]]').stdout


def test_schema(table):
    doc = run_json("schema", table.uri)
    assert doc["columns"] == [
        {"name": "id", "type": "int64", "nullable": True, "field_id": 1, "partition": False},
        {"name": "day", "type": "int32", "nullable": True, "field_id": 2, "partition": True},
        {"name": "v", "type": "double", "nullable": True, "field_id": 3, "partition": False},
    ]
    assert "int32" in run("schema", table.uri).stdout


def test_log_show(table):
    entry = run_json("log", "show", table.uri, 1)
    assert entry == table.inspect.log_entry(1)
    assert entry["commit"]["operation"] == "append" and entry["add"][0]["partition"] == [3]
    assert '"append"' in run("log", "show", table.uri, 1).stdout
    result = run("log", "show", table.uri, 7, code=1)
    assert "VersionNotFoundError" in result.stderr


def test_scan_columns_filter_limit_and_time_travel(table):
    assert _ids(run_json("scan", table.uri)) == [2, 3, 4]
    rows = run_json("scan", table.uri, "--columns", "id,v", "--filter", '[["day", "in", [1, 3]]]')
    assert _ids(rows) == [2, 4] and set(rows[0]) == {"id", "v"}
    assert set(run_json("scan", table.uri, "--columns", "v", "--columns", "id")[0]) == {"id", "v"}
    assert len(run_json("scan", table.uri, "--limit", 2)) == 2
    assert run_json("scan", table.uri, "--limit", 0) == []
    assert _ids(run_json("scan", table.uri, "--version", 0)) == [1, 2, 3]
    when = table.history()[1].timestamp.isoformat().replace("+00:00", "Z")
    assert _ids(run_json("scan", table.uri, "--as-of", when)) == [1, 2, 3, 4]
    text = run("scan", table.uri).stdout
    assert "3 rows of version 2" in text


def test_scan_formats(table, tmp_path):
    out = run("scan", table.uri, "--format", "csv", "--columns", "id").stdout
    assert sorted(int(r["id"]) for r in csv.DictReader(io.StringIO(out))) == [2, 3, 4]
    target = tmp_path / "rows.parquet"
    doc = run_json("scan", table.uri, "--format", "parquet", "--out", target)
    assert doc == {"version": 2, "rows": 3, "format": "parquet", "path": str(target)}
    assert pq.read_table(target).sort_by("id").equals(table.to_arrow().sort_by("id"))
    run("scan", table.uri, "--format", "csv", "--out", tmp_path / "rows.csv")
    assert (tmp_path / "rows.csv").read_text().splitlines()[0] == '"id","day","v"'
    assert "wrote 3 rows" in run("scan", table.uri, "--format", "json", "--out", tmp_path / "rows.json").stdout
    assert _ids(json.loads((tmp_path / "rows.json").read_text())) == [2, 3, 4]
    assert _ids(json.loads(run("scan", table.uri, "--format", "json").stdout)) == [2, 3, 4]
    assert "--out" in run("scan", table.uri, "--format", "parquet", code=2).stderr
    run("scan", table.uri, "--out", tmp_path / "x", code=2)  # a table cannot go to a file


def test_diff(table):
    doc = run_json("diff", table.uri, 1, 2)
    assert (doc["files_added"], doc["files_removed"], doc["rows_added"], doc["rows_removed"]) == (1, 1, 1, 2)
    assert doc["added"][0]["partition"] == {"day": 1} and doc["removed"][0]["num_rows"] == 2
    assert doc["bytes_added"] == doc["added"][0]["size_bytes"]
    assert run_json("diff", table.uri, 0, 1)["files_removed"] == 0
    assert "-1 files / -2 rows" in run("diff", table.uri, 1, 2).stdout


def test_vacuum_is_a_dry_run_by_default(table):
    assert run_json("vacuum", table.uri)["count"] == 0  # everything is younger than 7 days
    assert "RetentionError" in run("vacuum", table.uri, "--retention", "0", code=1).stderr
    dry = run_json("vacuum", table.uri, "--retention", "0", "--no-enforce-retention")
    assert dry["dry_run"] is True and dry["count"] == 1 and dry["retention_seconds"] == 0
    assert table.to_arrow(version=0).num_rows == 3  # nothing deleted
    done = run_json("vacuum", table.uri, "--retention", "0", "--no-enforce-retention", "--no-dry-run")
    assert done["dry_run"] is False and done["files"] == dry["files"]
    with pytest.raises(lh.VersionNotFoundError):
        table.to_arrow(version=0)
    assert "would delete 0 files" in run("vacuum", table.uri, "--retention", "30d").stdout
    assert run("vacuum", table.uri, "--retention", "7 days", code=2).exit_code == 2


@pytest.mark.parametrize("retention", ["99999999999999d", "1000000000d", "99999999999999999999w", "9" * 40 + "s"])
def test_an_absurd_retention_is_a_one_line_usage_error(table, retention):
    result = run("vacuum", table.uri, "--retention", retention, code=2)
    assert "Traceback" not in result.output and "--retention" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("size", ["9" * 400, "99999999999999999999TB", "0.5", "9223372036854775808"])
def test_an_absurd_target_file_size_is_a_one_line_usage_error(table, size):
    result = run("optimize", table.uri, "--target-file-size", size, code=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--target-file-size" in errors[0] and "Traceback" not in result.output
    assert table.refresh() == 2  # nothing committed


def test_optimize_refuses_a_target_size_the_log_cannot_record(table):
    with pytest.raises(lh.InvalidTableError, match="2\\*\\*63"):
        table.optimize(target_file_size=1 << 63)
    assert table.refresh() == 2


def test_a_short_retention_error_names_the_flag(table):
    err = run("vacuum", table.uri, "--retention", "1h", code=1).stderr
    assert "--no-enforce-retention" in err and "enforce_retention=False" not in err
    assert len(err.strip().splitlines()) == 1


def test_optimize(uri):
    t = lh.write_table(uri, _data([1], [1]), partition_by=["day"])
    for i in range(2, 5):
        t.append(_data([i], [1 if i < 4 else 2]))
    doc = run_json("optimize", uri, "--filter", '[["day", "=", 1]]', "--sort-by", "id", "--target-file-size", "64MiB")
    assert doc == {"version": 4, "files_before": 4, "files_after": 2}
    assert run_json("optimize", uri) == {"version": None, "files_before": 2, "files_after": 2}
    assert "nothing to optimize" in run("optimize", uri).stdout
    assert lh.Table.open(uri).history(1)[0].operation == "optimize"
    run("optimize", uri, "--target-file-size", "lots", code=2)
    assert "ColumnNotFoundError" in run("optimize", uri, "--sort-by", "nope", code=1).stderr


def test_checkpoint(table):
    assert run_json("checkpoint", table.uri) == {"version": 2}
    assert "checkpoint written at version 2" in run("checkpoint", table.uri).stdout


def test_restore(table):
    assert run_json("restore", table.uri, 0) == {"version": 3, "restored_version": 0}
    table.refresh()
    assert _ids(table.to_arrow().to_pylist()) == [1, 2, 3]
    when = table.history()[1].timestamp.isoformat()
    assert run_json("restore", table.uri, "--as-of", when) == {"version": 4, "restored_version": 2}
    assert "version 5 restores version 1" in run("restore", table.uri, 1).stdout
    run("restore", table.uri, code=2)
    run("restore", table.uri, 1, "--as-of", when, code=2)


# -- errors, options, documentation ------------------------------------------------------------------
def test_a_lakehouse_error_is_one_line_and_exit_1(tmp_path):
    result = run("describe", tmp_path / "nothing", code=1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: TableNotFoundError: ") and "nothing" in lines[0]
    assert result.stdout == ""
    verbose = run("-v", "describe", tmp_path / "nothing", code=1)
    assert "Traceback" in verbose.stderr and verbose.stderr.strip().splitlines()[-1] == lines[0]


def test_bad_filters(table):
    assert "--filter" in run("files", table.uri, "--filter", "[1", code=2).stderr
    run("scan", table.uri, "--filter", "{}", code=2)
    unknown = run("scan", table.uri, "--filter", '[["nope", "=", 1]]', code=1)
    assert "ColumnNotFoundError" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    assert "InvalidFilterError" in run("scan", table.uri, "--filter", '[["id", "~", 1]]', code=1).stderr


def test_filters_on_dates_timestamps_and_decimals_take_strings(tmp_path):
    uri = str(tmp_path / "typed")
    lh.write_table(uri, pa.table({
        "d": pa.array([dt.date(2024, 5, 1), dt.date(2024, 5, 2)]),
        "ts": pa.array([dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)] * 2, pa.timestamp("us", tz="UTC")),
        "x": pa.array([Decimal("1.50"), Decimal("2.25")], pa.decimal128(5, 2)),
        "b": [b"\x00", b"["],
    }), partition_by=["d"])
    assert run_json("files", uri, "--filter", '[["d", "=", "2024-05-02"]]')["files_kept"] == 1
    rows = run_json("scan", uri, "--filter", '[["x", ">", "2"], ["ts", "<=", "2024-05-01T12:00:00Z"]]')
    assert rows == [{"d": "2024-05-02", "ts": "2024-05-01T12:00:00+00:00", "x": "2.25", "b": {"$base64": "Ww=="}}]
    assert len(run_json("scan", uri, "--filter", '[["d", "in", ["2024-05-01", "2024-05-02"]]]')) == 2
    assert "InvalidFilterError" in run("scan", uri, "--filter", '[["d", "=", "not a date"]]', code=1).stderr
    assert "0x5b" in run("scan", uri).stdout  # bytes in a text table


def test_usage_errors_exit_2(table):
    run("scan", table.uri, "--as-of", "2024-05-01T00:00:00", code=2)  # no time zone
    run("scan", table.uri, "--version", 0, "--as-of", "2024-05-01T00:00:00Z", code=2)
    run("describe", table.uri, "--storage-option", "no-equals-sign", code=2)
    run("describe", table.uri, "--output", "yaml", code=2)
    run("nonsense", code=2)


def test_storage_options_reach_the_filesystem(tmp_path):
    lh.write_table(str(tmp_path / "t"), _data([1, 2], [1, 2]))
    opts = ["--storage-option", f"path={tmp_path}", "--storage-option", "target_protocol=file"]
    assert run_json("describe", "dir://t", *opts)["rows"] == 2  # the dir filesystem needs its root folder
    assert len(run_json("scan", "dir://t", *opts)) == 2


def test_parsers():
    # values stay text unless the option is known to be typed; KEY:=JSON for any other typed value
    assert parse_storage_options(["a=1", "b=true", "c=x=y", "d=", 'e={"k": [1]}', "f=null", "anon=true",
                                  'client_kwargs={"region_name": "x"}', "g:=1", 'h:={"k": null}']) == {
        "a": "1", "b": "true", "c": "x=y", "d": "", "e": '{"k": [1]}', "f": "null", "anon": True,
        "client_kwargs": {"region_name": "x"}, "g": 1, "h": {"k": None}}
    assert parse_filter('[["a", "is null"]]') == [("a", "is null")]
    assert parse_filter('[[["a", "=", 1]], [["b", "in", ["x"]]]]') == [[("a", "=", 1)], [("b", "in", ["x"])]]
    assert parse_retention("7d") == dt.timedelta(days=7)
    assert parse_retention("1h30m") == dt.timedelta(minutes=90)
    assert parse_retention("2w") == dt.timedelta(weeks=2)
    assert parse_size("1.5GB") == 1_500_000_000 and parse_size("2KiB") == 2048
    for bad in ("", "7", "d", "7x", "-1d"):
        with pytest.raises(click.BadParameter):
            parse_retention(bad)
    for bad in ("0", "x", "-5", "5 parsecs"):
        with pytest.raises(click.BadParameter):
            parse_size(bad)


def _commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out.update(_commands(command, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = command
    return out


EXPECTED = {"describe", "history", "files", "schema", "log show", "scan", "diff", "vacuum", "optimize",
            "checkpoint", "restore", "update", "delete", "merge"}


def test_every_command_exists_and_takes_output_and_storage_options():
    commands = _commands()
    assert set(commands) == EXPECTED
    for name, command in commands.items():
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        assert {"--output", "--storage-option"} <= options, name


def _doc_sections() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    parts = re.split(r"^### `lakehouse ([a-z ]+)`", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_reference_page_documents_every_command_and_option(name):
    sections = _doc_sections()
    assert name in sections, f"docs/cli.md has no section '### `lakehouse {name}`'"
    command = _commands()[name]
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--output", "--storage-option"):
                assert opt in sections[name], f"docs/cli.md does not document {opt} of 'lakehouse {name}'"
        for opt in getattr(param, "secondary_opts", []):
            assert opt in sections[name], f"docs/cli.md does not document {opt} of 'lakehouse {name}'"
    assert f"lakehouse {name} " in sections[name], f"docs/cli.md has no example of 'lakehouse {name}'"


def test_main_is_the_console_script(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and lh.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["describe", "/definitely/not/a/table"])
    assert info.value.code == 1
