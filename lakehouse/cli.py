"""The ``lakehouse`` command line: look into a table and maintain it from a shell.

A thin shell over the public API (``lakehouse.Table`` and ``Table.inspect``); it needs the ``cli``
extra (``pip install 'lakehouse-format[cli]'``: click and rich). Every command takes a table URI,
``--output text|json`` (rich tables, or one plain JSON document) and repeatable
``--storage-option key=value`` (text, unless the option is known to take a flag, a number or a JSON
object; ``key:=JSON`` for any other typed value).
Filters are SQL-like text (``"day = 3 and id < 100"``; the ``sql`` extra) or JSON DNF lists, e.g.
``'[["day", "=", 3]]'`` (AND of the tuples) or ``'[[["day", "=", 3]], [["day", "=", 4]]]'`` (OR of
ANDs): a value starting with ``[`` is JSON. ``vacuum``, ``optimize`` and ``checkpoint`` show a
progress bar on stderr unless ``--quiet`` or ``--output json``. A ``LakehouseError`` (or a storage error)
prints one line to stderr and exits with 1; bad usage exits with 2; ``lakehouse -v`` shows the
traceback. The reference is ``docs/cli.md``.

Example:
    >>> import json, lakehouse as lh, pyarrow as pa
    >>> from click.testing import CliRunner
    >>> _ = lh.write_table("memory://doc-cli", pa.table({"a": [1, 2, 3]}))
    >>> result = CliRunner().invoke(cli, ["describe", "memory://doc-cli", "--output", "json"])
    >>> result.exit_code, json.loads(result.output)["rows"]
    (0, 3)
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import click
import pyarrow as pa
import pyarrow.compute as pc
from rich import box
from rich.console import Console
from rich.json import JSON
from rich.table import Table as RichTable
from rich.text import Text

import lakehouse as lh
from lakehouse.errors import redact_uri
from lakehouse.inspect import jsonable
from lakehouse.storage_options import option_from_text

__all__ = ["cli", "main", "parse_filter", "parse_retention", "parse_size", "parse_storage_options"]

_HANDLED: tuple[type[BaseException], ...] = (lh.LakehouseError, OSError, ImportError, ValueError, pa.ArrowException)
"""Errors shown as one line (exit 1). Anything else is a bug and keeps its traceback."""

_PIPE_WIDTH = 200
"""Console width for text output that does not go to a terminal."""

_SCAN_TABLE_ROWS = 100
"""Rows ``scan --format table`` shows when no ``--limit`` is given."""


# -- parsing the command line --------------------------------------------------------------------
def parse_storage_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as storage options. A value stays text (numeric-looking secrets such as
    ``1e5`` or ``NaN`` stay as written) unless the option is known to be typed
    (:data:`lakehouse.storage_options.TYPED_OPTIONS`: a flag takes exactly ``true`` or ``false``, a
    number its digits, ``client_kwargs`` and the like a JSON object). ``KEY:=JSON`` gives any option a
    JSON value.

    Args:
        pairs: the ``--storage-option`` values, ``KEY=VALUE`` or ``KEY:=JSON``.

    Returns:
        The storage options, option name -> value.

    Raises:
        click.BadParameter: a pair without ``=``, or a value that is not of its option's kind.

    Example:
        >>> parse_storage_options(["anon=true", "endpoint_url=http://127.0.0.1:9000", "retries=3"])
        {'anon': True, 'endpoint_url': 'http://127.0.0.1:9000', 'retries': 3}
        >>> parse_storage_options(["AWS_SECRET_ACCESS_KEY=1e5", "key=NaN", "AWS_ALLOW_HTTP=true", "x:=[1]"])
        {'AWS_SECRET_ACCESS_KEY': '1e5', 'key': 'NaN', 'AWS_ALLOW_HTTP': 'true', 'x': [1]}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        as_json = key.endswith(":")
        key = key.removesuffix(":").strip()
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE (or KEY:=JSON), got {pair!r}", param_hint="--storage-option")
        try:
            if as_json:
                try:
                    out[key] = json.loads(raw)
                except ValueError as exc:
                    raise click.BadParameter(f"{key}:= takes JSON ({exc})", param_hint="--storage-option") from None
            else:
                out[key] = option_from_text(key, raw)
        except lh.InvalidArgumentError as exc:
            raise click.BadParameter(str(exc), param_hint="--storage-option") from None
    return out


def _predicates(value: Any) -> Any:
    """JSON lists -> the DNF form: ``[column, op, value]`` lists become tuples."""
    if isinstance(value, list) and len(value) in (2, 3) and all(isinstance(v, str) for v in value[:2]):
        return tuple(value)
    if isinstance(value, list):
        return [_predicates(v) for v in value]
    return value


def parse_filter(text: str | None) -> Any:
    """A filter given as a JSON DNF list, as the DNF tuples the library takes (None for None); text
    not starting with ``[`` (or ``{``) is a SQL-like filter, passed on as the string.

    Args:
        text: the ``--filter`` value, or None.

    Returns:
        DNF tuples, the SQL-like text as given, or None.

    Raises:
        click.BadParameter: empty text, text that is not JSON, or JSON that is not a non-empty list.

    Example:
        >>> parse_filter('[["day", "=", 3], ["id", "in", [1, 2]]]')
        [('day', '=', 3), ('id', 'in', [1, 2])]
        >>> parse_filter("day = 3 and id in (1, 2)")
        'day = 3 and id in (1, 2)'
    """
    if text is None:
        return None
    if not text.lstrip().startswith(("[", "{")):  # JSON is a list (an object is a usage error)
        if not text.strip():
            raise click.BadParameter("empty filter", param_hint="--filter")
        return text
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc}); expected a list like '[[\"day\", \"=\", 3]]'",
                                 param_hint="--filter") from None
    if not isinstance(value, list) or not value:
        raise click.BadParameter("expected a non-empty JSON list like '[[\"day\", \"=\", 3]]'", param_hint="--filter")
    return _predicates(value)


def _typed(value: Any, typ: pa.DataType) -> Any:
    if isinstance(value, list):
        return [_typed(v, typ) for v in value]
    if not isinstance(value, str):
        return value
    try:
        return pa.array([value], pa.string()).cast(typ)[0].as_py()
    except (pa.ArrowException, ValueError):
        return value  # the library names the column and the value it cannot compare


def _typed_filter(filter_: Any, schema: pa.Schema) -> Any:
    """JSON has no dates, times or decimals: their text (``"2024-05-01"``) becomes the column's type."""
    if filter_ is None or isinstance(filter_, str):  # SQL text is typed by the library
        return filter_
    if isinstance(filter_, tuple):
        column = filter_[0]
        if len(filter_) == 3 and column in schema.names:
            typ = schema.field(column).type
            if pa.types.is_temporal(typ) or pa.types.is_decimal(typ):
                return (column, filter_[1], _typed(filter_[2], typ))
        return filter_
    if not isinstance(filter_, list):  # not DNF: the library refuses it with a typed error
        return filter_
    return [_typed_filter(f, schema) for f in filter_]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_retention(text: str) -> dt.timedelta:
    """A duration like ``7d``, ``12h``, ``1d12h``, ``30m``, ``90s``, ``2w`` or ``0``.

    Args:
        text: the ``--retention`` value.

    Returns:
        The duration.

    Raises:
        click.BadParameter: text that is not a duration, or one longer than a ``timedelta`` can be.

    Example:
        >>> parse_retention("1d12h"), parse_retention("0")
        (datetime.timedelta(days=1, seconds=43200), datetime.timedelta(0))
    """
    compact = text.strip().lower().replace(" ", "")
    if compact in ("0", "0s"):
        return dt.timedelta(0)
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise click.BadParameter(f"expected a duration like 7d, 12h, 1d12h, 30m or 90s, got {text!r}",
                                 param_hint="--retention")
    try:
        return sum((dt.timedelta(**{_UNITS[u]: float(n)}) for n, u in parts), dt.timedelta(0))
    except (OverflowError, ValueError):  # beyond timedelta's range, or float infinity
        raise click.BadParameter(f"{text!r} is longer than any retention can be (at most 999999999 days)",
                                 param_hint="--retention") from None


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)$")
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "t": 10**12, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(text: str) -> int:
    """A byte count: ``134217728``, ``128MiB``, ``100MB``, ``1.5GB``.

    Args:
        text: the ``--target-file-size`` value: digits, then an optional unit (``kb``, ``MB``,
            ``GiB``, ...; case does not matter).

    Returns:
        The size in bytes.

    Raises:
        click.BadParameter: text that is not a positive size, or one of ``2**63`` bytes or more.

    Example:
        >>> parse_size("128MiB"), parse_size("1kb"), parse_size("42")
        (134217728, 1000, 42)
    """
    found = _SIZE.match(text.strip().lower())
    if not found or found.group(2) not in _SIZE_UNITS or float(found.group(1)) <= 0:
        raise click.BadParameter(f"expected a positive size like 134217728, 128MiB or 100MB, got {text!r}",
                                 param_hint="--target-file-size")
    size = float(found.group(1)) * _SIZE_UNITS[found.group(2)]
    if not 1 <= size < 2**63:  # also infinity, for a number too long for a float
        raise click.BadParameter(f"{text!r} is out of range (at least 1 byte, below 2**63 bytes)",
                                 param_hint="--target-file-size")
    return int(size)


def _parse_as_of(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    raw = text.strip()
    try:
        when = dt.datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time like 2024-05-01T12:00:00Z, got {text!r}",
                                 param_hint="--as-of") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise click.BadParameter(f"{text!r} has no time zone: add Z (UTC) or an offset like +02:00",
                                 param_hint="--as-of")
    return when


def _split_names(values: Sequence[str]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


# -- output ----------------------------------------------------------------------------------------
def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [jsonable(r) for r in table.to_pylist()]


def _echo_json(doc: Any) -> None:
    click.echo(json.dumps(jsonable(doc), indent=2, ensure_ascii=False))


def _console() -> Console:
    # on a terminal rich fits its width; into a pipe or file, lines are long rather than folded (COLUMNS wins)
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    width = _PIPE_WIDTH if piped else None
    return Console(file=sys.stdout, markup=False, highlight=False, soft_wrap=False, width=width)


def _text(value: Any) -> Text:
    if value is None:
        return Text("null", style="dim")
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return Text(value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z")
    if isinstance(value, bytes):
        return Text("0x" + value.hex())
    if isinstance(value, Mapping):
        return Text(", ".join(f"{k}={jsonable(v)}" for k, v in value.items()))
    return Text(str(jsonable(value)))


def _size(n: int | None) -> str:
    if n is None:
        return "null"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


_WRAPPED_COLUMNS = frozenset({"path", "parameters", "partition"})
"""Columns whose cells wrap in text output; the others keep one line."""


def _print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                 caption: str | None = None) -> None:
    console = _console()
    if columns and rows:
        table = RichTable(title=title, box=box.SIMPLE_HEAD, title_justify="left")
        for c in columns:
            wide = c in _WRAPPED_COLUMNS
            table.add_column(c, overflow="fold", no_wrap=not wide, min_width=None if wide else len(c))
        for row in rows:
            table.add_row(*(_text(v) for v in row))
        console.print(table)
    if caption is not None:
        console.print(Text(caption))


def _print_pairs(title: str, pairs: Sequence[tuple[str, Any]]) -> None:
    grid = RichTable(title=title, show_header=False, box=None, title_justify="left")
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(key, _text(value))
    _console().print(grid)


# -- errors ---------------------------------------------------------------------------------------
class _Failed(click.ClickException):
    """A handled error: one line on stderr, exit code 1."""

    exit_code = 1

    def __init__(self, exc: BaseException) -> None:
        # any URL's user info masked: errors of the filesystem libraries may quote the URI
        super().__init__(redact_uri(" ".join(f"{type(exc).__name__}: {exc}".split())))


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _HANDLED as exc:
            if (ctx.obj or {}).get("verbose"):
                sys.stderr.write(redact_uri(traceback.format_exc()))
            raise _Failed(exc) from exc


# -- shared options -------------------------------------------------------------------------------
def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--output`` and ``--storage-option``, on every command."""
    f = click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
                     callback=lambda ctx, p, v: parse_storage_options(v),
                     help="A filesystem option (repeatable); the value is parsed as JSON when it is JSON.")(f)
    return click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
                        help="Rich tables for people, or one JSON document for programs.")(f)


def _pinned(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--version`` / ``--as-of``: which version to look at (latest if neither)."""
    f = click.option("--as-of", "as_of", metavar="TIME", callback=lambda ctx, p, v: _parse_as_of(v),
                     help="The version current at this ISO 8601 time (with a time zone, e.g. ...Z).")(f)
    return click.option("--version", "version", type=click.IntRange(min=0), help="The version to read.")(f)


def _filter_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--filter", "filter_", metavar="FILTER", callback=lambda ctx, p, v: parse_filter(v),
                        help='A SQL-like filter, e.g. "day = 3 and id < 100", or JSON DNF, e.g. '
                             '\'[["day", "=", 3]]\'.')(f)


def _quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar (none with --output json either).")(f)


def _progress(output: str, quiet: bool) -> bool:
    """Show a progress bar (on stderr) unless asked not to or writing JSON."""
    return not quiet and output != "json"


def _open(uri: str, storage_options: Mapping[str, Any], version: int | None = None,
          as_of: dt.datetime | None = None) -> lh.Table:
    """The table, pinned at ``--version`` / ``--as-of`` if given: then only what that version needs
    is read, so a damaged later log entry does not stop it (``Table.open(version=, as_of=)``)."""
    if version is not None and as_of is not None:
        raise click.UsageError("pass --version or --as-of, not both")
    return lh.Table.open(uri, version=version, as_of=as_of, storage_options=dict(storage_options) or None)


def _latest_version(uri: str, storage_options: Mapping[str, Any]) -> int | None:
    """The latest version, or None if the log past some version cannot be read."""
    try:
        return _open(uri, storage_options).version
    except lh.CorruptLogError:
        return None


def _file_rows(files: pa.Table) -> list[list[Any]]:
    cols = [files.column(c).to_pylist() for c in ("path", "partition", "num_rows", "size_bytes", "modification_time")]
    return [[path, part, rows, _size(size), mtime] for path, part, rows, size, mtime in zip(*cols)]


_FILE_COLUMNS = ("path", "partition", "rows", "size", "modified")


def _total(table: pa.Table, column: str) -> int:
    return int(pc.sum(table.column(column)).as_py() or 0) if table.num_rows else 0


# -- the commands ---------------------------------------------------------------------------------
@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show the traceback of an error.")
@click.version_option(lh.__version__, prog_name="lakehouse")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Inspect and maintain lakehouse tables. URI: a path or any fsspec URL (s3://, memory://, ...)."""
    ctx.obj = {"verbose": verbose}


@cli.command()
@click.argument("uri")
@_pinned
@_common
def describe(uri: str, version: int | None, as_of: dt.datetime | None, output: str,
             storage_options: dict[str, Any]) -> None:
    """The version, schema, partitioning, properties and size of a table."""
    table = _open(uri, storage_options, version, as_of)
    snap = table.snapshot()
    latest = table.version if version is None and as_of is None else _latest_version(uri, storage_options)
    files = table.inspect.files(version=snap.version)
    doc: dict[str, Any] = {
        "uri": redact_uri(table.uri), "version": snap.version, "latest_version": latest,
        "timestamp": snap.timestamp, "partition_by": snap.partition_by,
        "columns": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in snap.schema],
        "properties": snap.properties, "files": files.num_rows,
        "rows": _total(files, "num_rows") - _total(files, "num_deleted_rows"),  # live rows (format §5.8)
        "size_bytes": _total(files, "size_bytes"),
    }
    if snap.version == latest:
        doc["constraints"] = {name: str(expr) for name, expr in table.constraints.items()}
    if output == "json":
        return _echo_json(doc)
    _print_pairs(redact_uri(table.uri), [
        ("version", f"{snap.version} (latest {'unreadable' if latest is None else latest})"),
        ("committed", snap.timestamp),
        ("partition_by", ", ".join(snap.partition_by) or "-"), ("files", doc["files"]), ("rows", doc["rows"]),
        ("size", _size(doc["size_bytes"])),
        *((f"property {k}", v) for k, v in sorted(snap.properties.items())),
        *((f"constraint {k}", v) for k, v in doc.get("constraints", {}).items()),
    ])
    _print_table("columns", ("name", "type", "nullable"), [[f.name, str(f.type), f.nullable] for f in snap.schema])


@cli.command()
@click.argument("uri")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many commits (newest first).")
@_common
def history(uri: str, limit: int | None, output: str, storage_options: dict[str, Any]) -> None:
    """The commits of a table, newest first."""
    rows = _open(uri, storage_options).inspect.history(limit=limit).to_pylist()
    for r in rows:
        r["parameters"] = json.loads(r["parameters"])
    if output == "json":
        return _echo_json(rows)
    _print_table("history", ("version", "timestamp", "operation", "files +/-", "rows +/-", "parameters"),
                 [[r["version"], r["timestamp"], r["operation"], f"+{r['files_added']} -{r['files_removed']}",
                   f"+{r['rows_added']} -{r['rows_removed']}", r["parameters"]]
                  for r in rows])


@cli.command()
@click.argument("uri")
@_filter_option
@_pinned
@_common
def files(uri: str, filter_: Any, version: int | None, as_of: dt.datetime | None, output: str,
          storage_options: dict[str, Any]) -> None:
    """The live data files; with --filter, the ones pruning keeps (by partition values and min/max)."""
    table = _open(uri, storage_options, version, as_of)
    snap = table.snapshot()
    total = table.inspect.files(version=snap.version).num_rows
    filter_ = _typed_filter(filter_, snap.schema)
    kept = table.inspect.files(version=snap.version, filter=filter_) if filter_ is not None else None
    shown = kept if kept is not None else table.inspect.files(version=snap.version)
    if output == "json":
        return _echo_json({"version": snap.version, "files_total": total, "files_kept": shown.num_rows,
                           "files": _rows(shown)})
    caption = f"pruning keeps {shown.num_rows} of {total} files" if kept is not None else f"{total} files"
    _print_table(f"files of version {snap.version}", _FILE_COLUMNS, _file_rows(shown), caption=caption)


@cli.command()
@click.argument("uri")
@_pinned
@_common
def schema(uri: str, version: int | None, as_of: dt.datetime | None, output: str,
           storage_options: dict[str, Any]) -> None:
    """The columns of a table: name, type, nullability, field id, partition column or not."""
    snap = _open(uri, storage_options, version, as_of).snapshot()
    ids, parts = snap.field_ids, set(snap.partition_by)
    columns = [{"name": f.name, "type": str(f.type), "nullable": f.nullable, "field_id": ids.get(f.name),
                "partition": f.name in parts} for f in snap.schema]
    if output == "json":
        return _echo_json({"version": snap.version, "columns": columns})
    _print_table(f"schema of version {snap.version}", ("name", "type", "nullable", "field id", "partition"),
                 [list(c.values()) for c in columns])


@cli.group(cls=_Group)
def log() -> None:
    """Look at the transaction log."""


@log.command("show")
@click.argument("uri")
@click.argument("version", type=click.IntRange(min=0))
@_common
def log_show(uri: str, version: int, output: str, storage_options: dict[str, Any]) -> None:
    """The log entry of VERSION as stored (its msgpack body as JSON)."""
    entry = _open(uri, storage_options).inspect.log_entry(version)
    if output == "json":
        return _echo_json(entry)
    _console().print(JSON.from_data(jsonable(entry)))


def _take(reader: pa.RecordBatchReader, limit: int | None) -> tuple[pa.Table, bool]:
    """Up to ``limit`` rows of ``reader``, and whether rows were left unread."""
    batches, n = [], 0
    for batch in reader:
        if limit is not None and n + batch.num_rows > limit:
            batches.append(batch.slice(0, limit - n))
            return pa.Table.from_batches(batches, schema=reader.schema), True
        batches.append(batch)
        n += batch.num_rows
        if limit is not None and n == limit:
            more = any(b.num_rows for b in reader)
            return pa.Table.from_batches(batches, schema=reader.schema), more
    return pa.Table.from_batches(batches, schema=reader.schema), False


def _write_out(data: pa.Table, fmt: str, out: str | None) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(data, out)
    elif fmt == "csv":
        sink = io.BytesIO()
        pacsv.write_csv(data, sink)
        if out is None:
            click.echo(sink.getvalue().decode("utf-8"), nl=False)
        else:
            with open(out, "wb") as f:
                f.write(sink.getvalue())
    elif out is not None:  # json
        with open(out, "w", encoding="utf-8") as f:
            json.dump(_rows(data), f, ensure_ascii=False)
    else:
        _echo_json(_rows(data))


@cli.command()
@click.argument("uri")
@click.option("--columns", multiple=True, metavar="A,B", help="Columns to read (comma-separated or repeated).")
@_filter_option
@click.option("--limit", type=click.IntRange(min=0),
              help=f"At most this many rows (with --format table: {_SCAN_TABLE_ROWS} unless given).")
@_pinned
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              help="How to write the rows (default: table, or json with --output json).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write to this file (csv, json, parquet).")
@_common
def scan(uri: str, columns: tuple[str, ...], filter_: Any, limit: int | None, version: int | None,
         as_of: dt.datetime | None, fmt: str | None, out: str | None, output: str,
         storage_options: dict[str, Any]) -> None:
    """Read rows: projection, filter, limit, time travel; as a table, CSV, JSON or Parquet."""
    fmt = fmt or ("json" if output == "json" else "table")
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet needs --out FILE")
    if fmt == "table" and out is not None:
        raise click.UsageError("--out needs --format csv, json or parquet")
    snap = _open(uri, storage_options, version, as_of).snapshot()
    shown = limit if limit is not None or fmt != "table" else _SCAN_TABLE_ROWS
    reader = snap.to_batches(columns=_split_names(columns), filter=_typed_filter(filter_, snap.schema))
    data, more = _take(reader, shown)
    if fmt == "table" and output == "text":
        hint = f" (the first {shown}; see --limit)" if more and limit is None else ""
        caption = f"{data.num_rows} rows of version {snap.version}{hint}"
        _print_table(None, data.column_names, [list(r.values()) for r in data.to_pylist()], caption=caption)
        return
    if fmt in ("table", "json") and out is None:
        return _echo_json(_rows(data))
    _write_out(data, fmt, out)
    if out is not None:
        summary = {"version": snap.version, "rows": data.num_rows, "format": fmt, "path": out}
        if output == "json":
            return _echo_json(summary)
        click.echo(f"wrote {data.num_rows} rows to {out} ({fmt})")


@cli.command()
@click.argument("uri")
@click.argument("v1", type=click.IntRange(min=0))
@click.argument("v2", type=click.IntRange(min=0))
@_common
def diff(uri: str, v1: int, v2: int, output: str, storage_options: dict[str, Any]) -> None:
    """The data files (and their rows) V2 adds and removes compared with V1."""
    changes = _open(uri, storage_options).inspect.diff(v1, v2)
    added = changes.filter(pc.equal(changes.column("change"), "added"))
    removed = changes.filter(pc.equal(changes.column("change"), "removed"))
    doc = {"from_version": v1, "to_version": v2, "files_added": added.num_rows, "files_removed": removed.num_rows,
           "rows_added": _total(added, "num_rows"), "rows_removed": _total(removed, "num_rows"),
           "bytes_added": _total(added, "size_bytes"), "bytes_removed": _total(removed, "size_bytes")}
    if output == "json":
        return _echo_json({**doc, "added": _rows(added.drop_columns(["change"])),
                           "removed": _rows(removed.drop_columns(["change"]))})
    caption = (f"+{doc['files_added']} files / +{doc['rows_added']} rows, "
               f"-{doc['files_removed']} files / -{doc['rows_removed']} rows")
    rows = [[c, *r] for c, r in zip(changes.column("change").to_pylist(), _file_rows(changes))]
    _print_table(f"version {v1} -> {v2}", ("change", *_FILE_COLUMNS), rows, caption=caption)


@cli.command()
@click.argument("uri")
@click.option("--retention", default="7d", show_default=True, metavar="DURATION",
              callback=lambda ctx, p, v: parse_retention(v), help="Keep what versions this recent need (7d, 12h, ...).")
@click.option("--dry-run/--no-dry-run", default=True, show_default=True, help="Only list what would be deleted.")
@click.option("--enforce-retention/--no-enforce-retention", default=True, show_default=True,
              help="Refuse a retention below the table's minimum (property vacuum_min_retention_seconds).")
@_quiet_option
@_common
def vacuum(uri: str, retention: dt.timedelta, dry_run: bool, enforce_retention: bool, quiet: bool, output: str,
           storage_options: dict[str, Any]) -> None:
    """Delete files no version within the retention reads (a dry run unless --no-dry-run)."""
    try:
        paths = _open(uri, storage_options).vacuum(retention=retention, dry_run=dry_run,
                                                  enforce_retention=enforce_retention,
                                                  progress=_progress(output, quiet) and not dry_run)
    except lh.RetentionError as exc:  # name the flag, not the Python argument
        raise _Failed(lh.RetentionError(str(exc).replace("enforce_retention=False", "--no-enforce-retention"))) \
            from exc
    if output == "json":
        return _echo_json({"dry_run": dry_run, "retention_seconds": retention.total_seconds(),
                           "count": len(paths), "files": paths})
    verb = "would delete" if dry_run else "deleted"
    _print_table(None, ("path",), [[p] for p in paths], caption=f"{verb} {len(paths)} files")


@cli.command()
@click.argument("uri")
@click.option("--target-file-size", metavar="SIZE", callback=lambda ctx, p, v: None if v is None else parse_size(v),
              help="Bytes per file (134217728, 128MiB, 100MB); default: the table property target_file_size.")
@_filter_option
@click.option("--sort-by", multiple=True, metavar="A,B", help="Sort rewritten partitions by these columns.")
@_quiet_option
@_common
def optimize(uri: str, target_file_size: int | None, filter_: Any, sort_by: tuple[str, ...], quiet: bool,
             output: str, storage_options: dict[str, Any]) -> None:
    """Compact small files (optionally only where --filter may match, sorted by --sort-by)."""
    table = _open(uri, storage_options)
    before = table.inspect.files().num_rows
    version = table.optimize(target_file_size=target_file_size, filter=_typed_filter(filter_, table.schema),
                             sort_by=_split_names(sort_by), progress=_progress(output, quiet))
    after = table.inspect.files().num_rows
    doc = {"version": version, "files_before": before, "files_after": after}
    if output == "json":
        return _echo_json(doc)
    click.echo("nothing to optimize" if version is None else f"version {version}: {before} files -> {after} files")


@cli.command()
@click.argument("uri")
@_quiet_option
@_common
def checkpoint(uri: str, quiet: bool, output: str, storage_options: dict[str, Any]) -> None:
    """Write a checkpoint at the latest version."""
    version = _open(uri, storage_options).checkpoint(progress=_progress(output, quiet))
    if output == "json":
        return _echo_json({"version": version})
    click.echo(f"checkpoint written at version {version}")


@cli.command()
@click.argument("uri")
@click.argument("version", type=click.IntRange(min=0), required=False)
@click.option("--as-of", "as_of", metavar="TIME", callback=lambda ctx, p, v: _parse_as_of(v),
              help="Restore the version current at this ISO 8601 time (with a time zone).")
@_common
def restore(uri: str, version: int | None, as_of: dt.datetime | None, output: str,
            storage_options: dict[str, Any]) -> None:
    """Commit a new version equal to VERSION (or the version current at --as-of)."""
    if (version is None) == (as_of is None):
        raise click.UsageError("pass exactly one of VERSION or --as-of")
    table = _open(uri, storage_options)
    target = table.snapshot(version=version, as_of=as_of).version
    new = table.restore(target)
    if output == "json":
        return _echo_json({"version": new, "restored_version": target})
    click.echo(f"version {new} restores version {target}")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script ``lakehouse``.

    Args:
        argv: the arguments (``sys.argv[1:]`` if None).

    Raises:
        SystemExit: always, with the command's exit code (0 on success, 1 on a handled error, 2 on a
            usage error).

    Example:
        >>> try:
        ...     main(["--version"])  # doctest: +ELLIPSIS
        ... except SystemExit as e:
        ...     e.code
        lakehouse, version ...
        0
    """
    cli.main(args=list(argv) if argv is not None else None, prog_name="lakehouse")
    raise SystemExit(0)  # pragma: no cover - click.main exits itself

