"""Filter values: converting a value a caller wrote in a filter to a scalar of its column's type.

Shared by the DNF tuples of :mod:`lakehouse.expr.dnf` and the SQL text of
:mod:`lakehouse.expr.sql`, so both read values the same way: numbers outside the column's type
keep their own type, dates and timestamps also take ISO 8601 text, timestamps keep nanoseconds,
and a naive value on a column with a time zone (or an aware one on a naive column) is refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidFilterError

__all__ = ["integer_bounds", "integer_comparison", "literal_for", "set_lookup", "timestamp_scalar"]

_ISO_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{1,9}))?)?"
                            r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?\Z")
_UTC = dt.timezone.utc


def _epoch_scalar(value: dt.datetime, nanos: int) -> pa.Scalar:
    """``value`` (its microseconds ignored) plus ``nanos`` below the second, as a timestamp scalar:
    unit ``us`` when that is exact, else ``ns``; zone UTC when ``value`` is aware, none when naive."""
    aware = value.tzinfo is not None
    epoch = dt.datetime(1970, 1, 1, tzinfo=_UTC if aware else None)
    seconds = (value.replace(microsecond=0) - epoch) // dt.timedelta(seconds=1)
    tz = "UTC" if aware else None
    if nanos % 1000 == 0:
        return pa.scalar(seconds * 1_000_000 + nanos // 1000, pa.timestamp("us", tz=tz))
    return pa.scalar(seconds * 1_000_000_000 + nanos, pa.timestamp("ns", tz=tz))


def timestamp_scalar(value: Any) -> pa.Scalar:
    """A timestamp scalar for ISO 8601 text, a ``datetime`` (pandas ``Timestamp`` too) or a
    ``numpy.datetime64``, keeping every digit down to nanoseconds (``datetime.fromisoformat`` keeps
    six). Text or a ``datetime`` that names an offset is an instant (zone UTC); one that does not is
    naive.

    Args:
        value: the timestamp as text, ``datetime``, ``numpy.datetime64`` or timestamp scalar.

    Returns:
        A ``timestamp[us]`` scalar when that is exact, else ``timestamp[ns]`` (zone UTC if aware).

    Raises:
        InvalidFilterError: ``value`` is none of these, or text that is not an ISO timestamp.

    Example:
        >>> timestamp_scalar("2024-01-01 00:00:00.000000001")
        <pyarrow.TimestampScalar: '2024-01-01T00:00:00.000000001'>
        >>> timestamp_scalar("2024-01-01T01:00+01:00").type
        TimestampType(timestamp[us, tz=UTC])
    """
    if isinstance(value, pa.Scalar) and pa.types.is_timestamp(value.type):
        return value
    if isinstance(value, str):
        found = _ISO_TIMESTAMP.match(value.strip())
        if found is None:
            raise InvalidFilterError(f"{value!r} is not an ISO 8601 timestamp")
        day, clock, fraction, zone = found.groups()
        zone = "+00:00" if zone in ("Z", "z") else zone or ""
        if zone and len(zone) == 3:
            zone += ":00"
        try:
            base = dt.datetime.fromisoformat(f"{day}T{clock or '00:00'}{zone}")
        except ValueError as exc:
            raise InvalidFilterError(f"{value!r} is not an ISO 8601 timestamp: {exc}") from None
        return _epoch_scalar(base, int((fraction or "").ljust(9, "0")))
    if isinstance(value, dt.datetime):
        return _epoch_scalar(value, value.microsecond * 1000 + int(getattr(value, "nanosecond", 0)))
    if isinstance(value, np.datetime64):
        return pa.scalar(value)
    raise InvalidFilterError(f"{value!r} is not a timestamp")


def _timestamp_literal(column: str, typ: pa.TimestampType, value: Any) -> pa.Scalar:
    """``value`` as a timestamp of ``typ`` when that is exact, else at its own finer unit (so that a
    comparison stays exact); a naive value on a column with a time zone, or the reverse, is refused."""
    if isinstance(value, pa.Scalar) and not pa.types.is_timestamp(value.type):
        value = value.as_py()
    if isinstance(value, int) and not isinstance(value, bool):
        return pa.scalar(value, typ)  # a raw count of the column's unit
    if type(value) is dt.date:
        value = dt.datetime.combine(value, dt.time(0))
    try:
        scalar = timestamp_scalar(value)
    except InvalidFilterError as exc:
        raise InvalidFilterError(f"cannot compare column {column!r} of type {typ} with {value!r}: {exc}") from None
    if (scalar.type.tz is None) != (typ.tz is None):
        have, want = ("naive", "has a time zone") if scalar.type.tz is None else ("has a time zone", "is naive")
        raise InvalidFilterError(
            f"the value {value!r} is {have} but column {column!r} ({typ}) {want}: give "
            + ("an aware datetime (or an ISO text with an offset such as +00:00 or Z)" if typ.tz else
               "a naive datetime") + "; a naive value is never guessed to be UTC")
    if typ.tz is not None and scalar.type.tz != typ.tz:
        scalar = scalar.cast(pa.timestamp(scalar.type.unit, tz=typ.tz))  # the same instant
    try:
        return scalar.cast(typ)
    except (pa.ArrowException, OverflowError):
        return scalar  # finer than the column's unit: compared at its own unit, which is exact


def _date_literal(column: str, typ: pa.DataType, value: Any, bad: InvalidFilterError) -> pa.Scalar:
    if isinstance(value, pa.Scalar):
        if pa.types.is_timestamp(value.type):
            value = value.cast(pa.timestamp("us", tz=value.type.tz)).as_py()
        else:
            value = value.as_py()
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise bad from None
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0) or value.tzinfo is not None:
            raise bad
        value = value.date()
    try:
        return pa.scalar(value, typ)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise bad from exc


def literal_for(column: str, typ: pa.DataType, value: Any) -> pa.Scalar:
    """Convert a filter value to a scalar of ``column``'s type ``typ``.

    Numbers outside ``typ`` keep their own type (an out-of-range literal compares as itself).
    Dates and timestamps also take ISO 8601 text; timestamps keep nanoseconds, and a naive value
    on a column with a time zone (or an aware value on a naive column) is refused.

    Args:
        column: the column's name (for error messages).
        typ: the column's type.
        value: the value the caller wrote.

    Returns:
        A scalar of ``typ`` where the value fits it exactly, else of the value's own type.

    Raises:
        InvalidFilterError: the value does not fit the column.

    Example:
        >>> literal_for("d", pa.date32(), "2024-01-01")
        <pyarrow.Date32Scalar: datetime.date(2024, 1, 1)>
    """
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    bad = InvalidFilterError(f"cannot compare column {column!r} of type {typ} with {value!r}")
    if pa.types.is_timestamp(typ) and value is not None and not isinstance(value, bool | np.bool_):
        return _timestamp_literal(column, typ, value)
    if pa.types.is_date(typ) and value is not None and not isinstance(value, bool | np.bool_):
        return _date_literal(column, typ, value, bad)
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    if value is None or (isinstance(value, bool | np.bool_) != pa.types.is_boolean(typ)):
        raise bad
    if pa.types.is_time(typ) and isinstance(value, str):
        try:
            value = dt.time.fromisoformat(value.strip())
        except ValueError:
            raise bad from None
    if pa.types.is_integer(typ) and isinstance(value, float) and not value.is_integer():
        return pa.scalar(value, pa.float64())
    if pa.types.is_decimal(typ) and isinstance(value, float):
        value = decimal.Decimal(repr(value))
    try:
        return pa.scalar(value, typ)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        numeric = pa.types.is_integer(typ) or pa.types.is_decimal(typ)
        if numeric and isinstance(value, int | decimal.Decimal):
            try:
                return pa.scalar(value)  # out of range for the column type: compare as is
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                pass
            if pa.types.is_integer(typ) and isinstance(value, int) and abs(value) < 10 ** 76:
                return pa.scalar(decimal.Decimal(value), pa.decimal256(76, 0))  # beyond every integer type
        raise bad from exc


def integer_bounds(typ: pa.DataType) -> tuple[int, int]:
    """The smallest and largest value of the integer type ``typ``.

    Args:
        typ: an integer type.

    Returns:
        ``(lowest, highest)``, both included.

    Example:
        >>> integer_bounds(pa.uint8())
        (0, 255)
    """
    bits = typ.bit_width
    if pa.types.is_signed_integer(typ):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def integer_comparison(op: str, typ: pa.DataType, value: int) -> pa.Scalar | bool:
    """How ``column <op> value`` reads for an integer column of type ``typ`` and a Python int ``value``.

    Arrow compares integers of different types in a common type (int64 for uint64 with a signed
    type), which fails or wraps for values outside it. Here the comparison is exact: a ``value``
    that ``typ`` holds becomes a scalar of ``typ``; one that it cannot hold decides the comparison
    for every non-null row (True or False), as mathematics does.

    Args:
        op: ``equal``, ``not_equal``, ``less``, ``less_equal``, ``greater`` or ``greater_equal``
            (the column on the left).
        typ: the column's integer type.
        value: the literal.

    Returns:
        A scalar of ``typ``, or the verdict for every non-null row when ``value`` is out of range.

    Example:
        >>> integer_comparison("not_equal", pa.uint64(), -1)
        True
        >>> integer_comparison("less", pa.int8(), 5)
        <pyarrow.Int8Scalar: 5>
    """
    low, high = integer_bounds(typ)
    if low <= value <= high:
        return pa.scalar(value, typ)
    above = value > high  # the literal is above every value of the column (else below every one)
    verdicts = {"equal": False, "not_equal": True, "less": above, "less_equal": above,
                "greater": not above, "greater_equal": not above}
    return verdicts[op]


def set_lookup(column: str, value_set: pa.Array) -> pc.Expression:
    """``column`` is one of ``value_set`` (never null); as with ``=``, -0.0 and 0.0 are the same value.

    pyarrow's ``is_in`` hashes floats by their bits, so ``-0.0`` would miss ``0.0``: add the twin zero.

    Args:
        column: the column name.
        value_set: the values, typed as the column.

    Returns:
        The ``is_in`` expression (nulls in ``value_set`` are skipped).

    Example:
        >>> pa.table({"f": [-0.0, 1.0]}).filter(set_lookup("f", pa.array([0.0]))).num_rows
        1
    """
    if pa.types.is_floating(value_set.type) and pc.any(pc.equal(value_set, 0)).as_py():
        value_set = pa.concat_arrays([value_set, pa.array([0.0, -0.0]).cast(value_set.type)])
    return pc.Expression._call("is_in", [pc.field(column)], pc.SetLookupOptions(value_set, skip_nulls=True))
