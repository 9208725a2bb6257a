"""Parsing the ``lakehouse`` command line's arguments: storage options, filters, durations, sizes,
times and column lists (the ``cli`` extra: click).

Example:
    >>> parse_filter("day = 3")
    'day = 3'
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any

import click
import pyarrow as pa

from lakehouse.errors import InvalidArgumentError
from lakehouse.storage_options import option_from_text

__all__ = ["parse_as_of", "parse_filter", "parse_retention", "parse_size", "parse_storage_options", "split_names",
           "typed_filter"]


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
        except InvalidArgumentError as exc:
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


def typed_filter(filter_: Any, schema: pa.Schema) -> Any:
    """JSON has no dates, times or decimals: their text (``"2024-05-01"``) becomes the column's type.

    Args:
        filter_: a parsed ``--filter`` (DNF tuples, SQL text or None).
        schema: the table's schema.

    Returns:
        The filter with date, time, timestamp and decimal values typed; SQL text and None as given.

    Example:
        >>> import pyarrow as pa
        >>> typed_filter([("d", ">", "2024-05-01")], pa.schema([("d", pa.date32())]))
        [('d', '>', datetime.date(2024, 5, 1))]
    """
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
    return [typed_filter(f, schema) for f in filter_]


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


def parse_as_of(text: str | None) -> dt.datetime | None:
    """An ``--as-of`` value: an ISO 8601 time with a time zone (``Z`` for UTC), or None.

    Args:
        text: the option's value, or None.

    Returns:
        An aware datetime, or None.

    Raises:
        click.BadParameter: not ISO 8601, or without a time zone.

    Example:
        >>> parse_as_of("2024-05-01T12:00:00Z").isoformat()
        '2024-05-01T12:00:00+00:00'
    """
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


def split_names(values: Sequence[str]) -> list[str] | None:
    """Column names from repeated, comma-separated option values (None if there are none).

    Args:
        values: the option's values, e.g. ``("a,b", "c")``.

    Returns:
        The names in order, or None.

    Example:
        >>> split_names(("a, b", "c"))
        ['a', 'b', 'c']
    """
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


