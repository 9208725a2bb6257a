"""Hypothesis strategies for the differential harness (``tests/test_differential.py``).

Random tables over every type the format supports (partition columns of every partition type,
data columns of every Arrow type lakehouse stores) with small, hostile value domains, and random
row filters drawn from the whole filter language, each rendered in every front end that can say it
(``pyarrow.compute`` expressions, DNF tuples, SQL text, Polars and DuckDB) together with the
*model* of each rendering: a plain ``pyarrow.compute`` expression whose evaluation on rows is the
documented meaning of that front end (SQL three-valued logic, DNF ``in`` lists where None matches
nulls, NaN matches NaN and -0.0 is 0.0, ...).

``KNOWN_BUGS`` names the defect classes that are being fixed elsewhere; while a name is in the set,
the generators (and the harness) avoid that class so the harness stays green. Empty it once the fixes
are merged: every name maps to an item of issue 13.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import strategies as st

__all__ = [
    "DATA_TYPES", "KNOWN_BUGS", "PART_TYPES", "Filt", "arrays_for", "filters", "literal", "table_schemas",
    "values_for",
]

# Defect classes being fixed elsewhere: while a name is here, the harness steers around that class
# (each use is marked with the name). Empty on main: every class the harness found is fixed.
KNOWN_BUGS: set[str] = set()  # every class the harness found is fixed on main
# LH_DIFF_KNOWN_BUGS="" (or a comma-separated subset) re-enables classes, to check a fix or hunt
if "LH_DIFF_KNOWN_BUGS" in os.environ:
    KNOWN_BUGS &= set(filter(None, os.environ["LH_DIFF_KNOWN_BUGS"].split(",")))

_TS_TZ = "America/New_York"
PART_TYPES: tuple[pa.DataType, ...] = (
    pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
    pa.string(), pa.large_string(), pa.binary(), pa.bool_(), pa.date32(), pa.timestamp("us"),
    pa.timestamp("us", tz="UTC"), pa.timestamp("ns"), pa.decimal128(5, 2),
)
DATA_TYPES: tuple[pa.DataType, ...] = (
    *PART_TYPES, pa.float32(), pa.float64(), pa.timestamp("ms", tz=_TS_TZ), pa.large_binary(),
    pa.list_(pa.int32()), pa.struct([("a", pa.int32()), ("b", pa.string())]),
)
PART_NAMES = ("p", "q", "p q", "p=1", "_u", "é")
DATA_NAMES = ("a", "b", "c", "d", "e", "f", "g", "h")

STRINGS = ("", "a", "ab", "b", "A", "a/b", "=", "%", "_", " ", "é", "a%", "x\x00y", "..")
BINARIES = (b"", b"a", b"ab", b"\x00", b"\xff", b"a/b")
FLOATS = (-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, math.nan, math.inf, -math.inf)
DECIMALS = tuple(decimal.Decimal(x) for x in ("-9.99", "-1.00", "0.00", "0.01", "1.25", "2.50", "9.99"))
_DATE0 = dt.date(2024, 3, 8)
_TS0 = dt.datetime(2024, 3, 10, 0, 0)  # a DST change in America/New_York at 02:00 local
_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _int_range(typ: pa.DataType) -> tuple[int, int]:
    bits = typ.bit_width
    if pa.types.is_unsigned_integer(typ):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _epoch_units(typ: pa.DataType, when: dt.datetime) -> int:
    return int((when - dt.datetime(1970, 1, 1)).total_seconds()) * _UNITS[typ.unit]


def values_for(typ: pa.DataType) -> st.SearchStrategy[Any]:
    """Non-null values of ``typ`` as Python objects ``pa.array(..., typ)`` accepts, from small domains
    (so that filters hit rows and files share values) plus the type's extremes and hostile values.
    Dates and timestamps are drawn as their Arrow storage integers (see :func:`arrays_for`)."""
    if pa.types.is_boolean(typ):
        return st.booleans()
    if pa.types.is_integer(typ):
        low, high = _int_range(typ)
        return st.one_of(st.integers(max(low, -3), 3), st.sampled_from([low, high]))
    if pa.types.is_floating(typ):
        return st.sampled_from(FLOATS)
    if pa.types.is_decimal(typ):
        return st.sampled_from(DECIMALS)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return st.sampled_from(STRINGS)
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return st.sampled_from(BINARIES)
    if pa.types.is_date(typ):
        base = (_DATE0 - dt.date(1970, 1, 1)).days
        return st.one_of(st.integers(base, base + 40), st.sampled_from([0, -1, 11016]))  # 1970, 1969, 2000-02-29
    if pa.types.is_timestamp(typ):
        hour = _UNITS[typ.unit] * 3600
        base = _epoch_units(typ, _TS0)
        hours = st.integers(0, 8).map(lambda h: base + h * hour)
        if typ.unit == "ns":  # values that differ below the microsecond
            return st.one_of(hours, st.integers(0, 3).map(lambda n: base + n))
        return hours
    if pa.types.is_list(typ):
        return st.lists(st.one_of(st.none(), st.integers(-2, 2)), max_size=3)
    if pa.types.is_struct(typ):
        return st.fixed_dictionaries({"a": st.one_of(st.none(), st.integers(-2, 2)),
                                      "b": st.one_of(st.none(), st.sampled_from(STRINGS[:4]))})
    raise NotImplementedError(f"no strategy for {typ}")


def _storage_type(typ: pa.DataType) -> pa.DataType:
    if pa.types.is_date32(typ):
        return pa.int32()
    if pa.types.is_timestamp(typ):
        return pa.int64()
    return typ


def arrays_for(typ: pa.DataType, values: list[Any]) -> pa.Array:
    """An array of ``typ`` from values drawn by :func:`values_for` (None = null)."""
    return pa.array(values, _storage_type(typ)).cast(typ)


def literal(typ: pa.DataType, value: Any) -> pa.Scalar:
    """A scalar of ``typ`` from a value drawn by :func:`values_for`."""
    return arrays_for(typ, [value])[0]


@st.composite
def table_schemas(draw: st.DrawFn, *, max_parts: int = 2, max_data: int = 4) -> tuple[pa.Schema, list[str]]:
    """A schema (``rid`` int64 row id first) and its partition columns (possibly none)."""
    parts = draw(st.lists(st.sampled_from(PART_NAMES), max_size=max_parts, unique=True))
    data = draw(st.lists(st.sampled_from(DATA_NAMES), min_size=1, max_size=max_data, unique=True))
    fields = [pa.field(n, draw(st.sampled_from(PART_TYPES))) for n in parts]
    fields += [pa.field(n, draw(st.sampled_from(DATA_TYPES))) for n in data]
    order = draw(st.permutations(fields))
    return pa.schema([pa.field("rid", pa.int64()), *order]), parts


# ------------------------------------------------------------------------------------ filters
_OPS = {"=": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal"}
_NULL = pa.scalar(None, pa.bool_())


@dataclass(frozen=True)
class Front:
    """One rendering of a filter and its model (a pyarrow expression evaluated on rows)."""

    value: Any
    model: pc.Expression


@dataclass(frozen=True)
class Filt:
    """A filter in every front end that can express it (``expr``, ``dnf``, ``sql``, ``polars``,
    ``duckdb``); ``tags`` name the features it uses (for ``KNOWN_BUGS`` and for readers that cannot
    take some of them); ``columns`` the top-level columns it names; ``simple`` is True when it uses
    only comparisons, ``in``, null tests and and/or/not with in-range literals."""

    fronts: dict[str, Front]
    columns: frozenset[str]
    tags: frozenset[str] = frozenset()
    simple: bool = True
    text: str = ""

    def __repr__(self) -> str:
        return f"Filt({self.text})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _kleene(op: str, a: pc.Expression, b: pc.Expression) -> pc.Expression:
    return a & b if op == "and" else a | b


def combine(op: str, parts: list[Filt]) -> Filt:
    """``and``/``or`` of filters, in the front ends all of them have (DNF: only shapes it can say)."""
    names = set.intersection(*(set(p.fronts) for p in parts))
    fronts: dict[str, Front] = {}
    for name in names:
        values = [p.fronts[name].value for p in parts]
        model = parts[0].fronts[name].model
        for p in parts[1:]:
            model = _kleene(op, model, p.fronts[name].model)
        if name == "expr":
            value = values[0]
            for v in values[1:]:
                value = _kleene(op, value, v)
        elif name in ("sql", "duckdb"):
            value = f" {op.upper()} ".join(f"({v})" for v in values)
        elif name == "polars":
            value = values[0]
            for v in values[1:]:
                value = (value & v) if op == "and" else (value | v)
        elif name == "dnf":
            # a DNF value is a list of conjunctions; AND needs every operand to be one conjunction
            if op == "and":
                if not all(len(v) == 1 for v in values):
                    continue
                value = [[t for v in values for t in v[0]]]
            else:
                value = [c for v in values for c in v]
        else:
            continue
        fronts[name] = Front(value, model)
    return Filt(fronts, frozenset().union(*(p.columns for p in parts)), frozenset().union(*(p.tags for p in parts)),
                all(p.simple for p in parts), f" {op} ".join(f"({p.text})" for p in parts))


def negate(f: Filt) -> Filt:
    """``not`` (Kleene) in the front ends that have it (not DNF; not Polars, whose ``is_in`` is
    two-valued)."""
    fronts: dict[str, Front] = {}
    for name, front in f.fronts.items():
        if name == "expr":
            fronts[name] = Front(~front.value, ~front.model)
        elif name in ("sql", "duckdb"):
            fronts[name] = Front(f"NOT ({front.value})", ~front.model)
    return Filt(fronts, f.columns, f.tags, f.simple, f"not ({f.text})")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(typ: pa.DataType, value: Any, tags: set[str]) -> str | None:
    """SQL text for a literal of ``typ`` (None: SQL cannot say it)."""
    if pa.types.is_boolean(typ):
        return "TRUE" if value else "FALSE"
    if pa.types.is_integer(typ):
        return str(value)
    if pa.types.is_floating(typ):
        return None if math.isnan(value) or math.isinf(value) else repr(float(value))
    if pa.types.is_decimal(typ):
        return str(value)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return None if "\x00" in value else "'" + value.replace("'", "''") + "'"
    if pa.types.is_date(typ):
        return f"DATE '{literal(typ, value).as_py().isoformat()}'"
    if pa.types.is_timestamp(typ):
        text = _iso(typ, value)
        if typ.unit == "ns" and value % 1000:
            tags.add("ts-ns-literal")
        return f"TIMESTAMP '{text.replace('T', ' ')}'"
    return None


def _iso(typ: pa.DataType, value: int) -> str:
    """ISO text of a timestamp storage value, with every digit of its unit (UTC offset if tz-aware)."""
    seconds, frac = divmod(value, _UNITS[typ.unit])
    when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[typ.unit]
    text = when.isoformat()
    if digits:
        text += "." + str(frac).rjust(digits, "0")
    return text + ("+00:00" if typ.tz else "")


def _dnf_value(typ: pa.DataType, value: Any, iso: bool) -> Any:
    """A Python value DNF takes for ``value`` (None: it cannot say it exactly)."""
    if pa.types.is_date(typ):
        day = literal(typ, value).as_py()
        return day.isoformat() if iso else day
    if pa.types.is_timestamp(typ):
        if typ.unit == "ns" and value % 1000:
            return None
        if iso:
            return _iso(typ, value)
        when = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=_to_us(typ, value))
        return when.replace(tzinfo=dt.timezone.utc) if typ.tz else when
    return value


def _to_us(typ: pa.DataType, value: int) -> int:
    return value * 1_000_000 // _UNITS[typ.unit]


def _polars_literal(typ: pa.DataType, value: Any, python: bool = False) -> Any:
    """A Polars literal for ``value`` (None: not rendered)."""
    import polars as pl

    if pa.types.is_date(typ):
        return pl.lit(literal(typ, value).as_py())
    if pa.types.is_timestamp(typ):
        if typ.unit == "s":  # Polars has no second unit (a date widened to timestamp[s])
            return None
        # typed as the column (Polars compares datetime[ns] with a datetime[us] literal in us), in the
        # column's zone (a UTC literal is not comparable with a New York column)
        if python and not (typ.unit == "ns" and value % 1000):  # a datetime literal, as users write
            lit = pl.lit(_dnf_value(typ, value, iso=False))
            return lit.dt.convert_time_zone(typ.tz) if typ.tz else lit.cast(pl.Datetime(typ.unit))
        lit = pl.lit(value, dtype=pl.Int64).cast(pl.Datetime(typ.unit))
        return lit.dt.replace_time_zone("UTC").dt.convert_time_zone(typ.tz) if typ.tz else lit
    return pl.lit(value)


def _orderable(typ: pa.DataType) -> bool:
    return not (pa.types.is_boolean(typ) or pa.types.is_list(typ) or pa.types.is_struct(typ))


def _scalar_type(typ: pa.DataType) -> bool:
    return not (pa.types.is_list(typ) or pa.types.is_struct(typ))


def _duckdb_ok(typ: pa.DataType) -> bool:
    """Types whose SQL comparisons DuckDB evaluates as lakehouse does (not floats: DuckDB orders NaN
    above everything and calls NaN = NaN true; not time-zone-aware or ns timestamps: literal typing)."""
    return not (pa.types.is_floating(typ) or pa.types.is_binary(typ) or pa.types.is_large_binary(typ)
                or (pa.types.is_timestamp(typ) and (typ.tz or typ.unit == "ns")))


def _polars_ok(typ: pa.DataType) -> bool:
    return pa.types.is_integer(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ) \
        or pa.types.is_boolean(typ) or pa.types.is_date(typ) or pa.types.is_timestamp(typ)


def _cmp_leaf(draw: st.DrawFn, name: str, typ: pa.DataType, iso: bool) -> Filt:
    ops = list(_OPS) if _orderable(typ) else ["=", "!="]
    op = draw(st.sampled_from(ops))
    tags: set[str] = set()
    simple = True
    if pa.types.is_integer(typ) and draw(st.integers(0, 9)) == 0:
        low, high = _int_range(typ)
        # out of the column's range (but representable by some Arrow integer type)
        value = draw(st.sampled_from([v for v in (low - 1, high + 1) if -(2**63) <= v < 2**64]))
        lit = pa.scalar(value) if value < 2**63 else pa.scalar(value, pa.uint64())
        tags.add("out-of-range")
        simple = False
    else:
        value = draw(values_for(typ))
        lit = literal(typ, value)
    if pa.types.is_floating(typ) and math.isnan(value):
        tags.add("nan")
    if pa.types.is_floating(typ) and value == 0:
        tags.add("float-zero")
    field = pc.field(name)
    model = pc.Expression._call(_OPS[op], [field, pc.scalar(lit)])
    if "out-of-range" in tags:  # decided mathematically (pyarrow cannot cast e.g. 2**64-1 to int64)
        below = value < _int_range(typ)[0]
        const = {"=": False, "!=": True, "<": not below, "<=": not below, ">": below, ">=": below}[op]
        model = pc.if_else(field.is_valid(), pc.scalar(const), _NULL)
    swap = draw(st.booleans())
    flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
    expr = pc.Expression._call(_OPS[flip], [pc.scalar(lit), field]) if swap else \
        pc.Expression._call(_OPS[op], [field, pc.scalar(lit)])
    fronts = {"expr": Front(expr, model)}
    dval = value if "out-of-range" in tags else _dnf_value(typ, value, iso)
    if dval is not None:
        fronts["dnf"] = Front([[(name, op, dval)]], model)
        if iso and (pa.types.is_date(typ) or pa.types.is_timestamp(typ)):
            tags.add("dnf-iso")
    sql_lit = str(value) if "out-of-range" in tags else _sql_literal(typ, value, tags)
    if sql_lit is not None:
        text = f"{sql_lit} {flip} {_quote(name)}" if swap else f"{_quote(name)} {op} {sql_lit}"
        fronts["sql"] = Front(text, model)
        if _duckdb_ok(typ):
            fronts["duckdb"] = Front(text, model)
    python = draw(st.booleans())
    lit_pl = _polars_literal(typ, value, python) if _polars_ok(typ) and "out-of-range" not in tags else None
    if lit_pl is not None:
        import polars as pl

        if pa.types.is_timestamp(typ) and typ.tz:
            tags.add("polars-tz")
        if pa.types.is_uint64(typ):
            tags.add("polars-u64")
        col = pl.col(name)
        pexpr = {"=": col == lit_pl, "!=": col != lit_pl, "<": col < lit_pl, "<=": col <= lit_pl,
                 ">": col > lit_pl, ">=": col >= lit_pl}[op]
        fronts["polars"] = Front(pexpr, model)
    return Filt(fronts, frozenset([name]), frozenset(tags), simple, f"{name} {op} {value!r}")


def _in_leaf(draw: st.DrawFn, name: str, typ: pa.DataType, iso: bool) -> Filt:
    values = draw(st.lists(st.one_of(st.none(), values_for(typ)), max_size=3))
    negate_ = draw(st.booleans())
    field = pc.field(name)
    present = [v for v in values if v is not None]
    tags: set[str] = set()
    floats = pa.types.is_floating(typ)
    if floats and any(math.isnan(v) for v in present):
        tags.add("nan")
    if floats and any(v == 0 for v in present):
        tags.add("float-zero")

    def hit(v: Any) -> pc.Expression:
        return field.is_nan() if floats and math.isnan(v) else field == pc.scalar(literal(typ, v))

    found: pc.Expression = pc.scalar(False)
    for v in present:
        found = found | hit(v)
    # DNF: None in the list matches nulls; `not in` is null for null rows unless None is listed
    if None in values:
        dnf_model = (found | field.is_null()) if not negate_ else (field.is_valid() & ~found)
    else:
        dnf_model = found if not negate_ else pc.if_else(field.is_valid(), ~found, _NULL)
    fronts: dict[str, Front] = {}
    dvals = [None if v is None else _dnf_value(typ, v, iso) for v in values]
    if all(d is not None for d, v in zip(dvals, values, strict=True) if v is not None):
        fronts["dnf"] = Front([[(name, "not in" if negate_ else "in", dvals)]], dnf_model)
    # SQL: Kleene OR of equalities (a NULL in the list makes a miss NULL)
    sql_lits = [None if v is None else _sql_literal(typ, v, tags) for v in values]
    if values and all(s is not None for s, v in zip(sql_lits, values, strict=True) if v is not None):
        sql_found = found if None not in values else found | pc.scalar(_NULL)
        sql_found = pc.if_else(field.is_valid(), sql_found, _NULL) if not present else sql_found
        text = f"{_quote(name)} {'NOT IN' if negate_ else 'IN'} ({', '.join(s or 'NULL' for s in sql_lits)})"
        model = ~sql_found if negate_ else sql_found
        fronts["sql"] = Front(text, model)
        if _duckdb_ok(typ):
            fronts["duckdb"] = Front(text, model)
    # expression: pyarrow's own is_in (its semantics are the model)
    skip = draw(st.booleans())
    expr = pc.is_in(field, value_set=arrays_for(typ, values), skip_nulls=skip)
    expr = ~expr if negate_ else expr
    fronts["expr"] = Front(expr, expr)
    if _polars_ok(typ) and not (pa.types.is_date(typ) or pa.types.is_timestamp(typ)) and not negate_ and present:
        import polars as pl

        fronts["polars"] = Front(pl.col(name).is_in(present), found)
        if pa.types.is_uint64(typ):
            tags.add("polars-u64")
    return Filt(fronts, frozenset([name]), frozenset(tags), True,
                f"{name} {'not in' if negate_ else 'in'} {values!r}")


def _null_leaf(draw: st.DrawFn, name: str, typ: pa.DataType) -> Filt:
    valid = draw(st.booleans())
    field = pc.field(name)
    model = field.is_valid() if valid else field.is_null()
    fronts = {"expr": Front(model, model),
              "dnf": Front([[(name, "is not null" if valid else "is null", None)]], model),
              "sql": Front(f"{_quote(name)} IS {'NOT ' if valid else ''}NULL", model),
              "duckdb": Front(f"{_quote(name)} IS {'NOT ' if valid else ''}NULL", model)}
    import polars as pl

    if not pa.types.is_floating(typ):  # polars counts NaN as valid too, but keep it simple
        fronts["polars"] = Front(pl.col(name).is_not_null() if valid else pl.col(name).is_null(), model)
    return Filt(fronts, frozenset([name]), frozenset(), True, f"{name} is {'not ' if valid else ''}null")


def _between_leaf(draw: st.DrawFn, name: str, typ: pa.DataType) -> Filt:
    lo, hi = draw(values_for(typ)), draw(values_for(typ))
    tags: set[str] = set()
    a, b = _sql_literal(typ, lo, tags), _sql_literal(typ, hi, tags)
    field = pc.field(name)
    model = (field >= pc.scalar(literal(typ, lo))) & (field <= pc.scalar(literal(typ, hi)))
    neg = draw(st.booleans())
    if neg:
        model = ~model
    fronts = {"expr": Front(model, model)}
    if a is not None and b is not None:
        text = f"{_quote(name)} {'NOT ' if neg else ''}BETWEEN {a} AND {b}"
        fronts["sql"] = Front(text, model)
        if _duckdb_ok(typ):
            fronts["duckdb"] = Front(text, model)
    if pa.types.is_floating(typ) and (math.isnan(lo) or math.isnan(hi)):
        tags.add("nan")
    return Filt(fronts, frozenset([name]), frozenset(tags), False, f"{name} between {lo!r} and {hi!r}")


_LIKE = ("a%", "%b", "_", "%", "", "a/%", "%=%", "é%", "%\\%%", "A%", "__")


def _string_leaf(draw: st.DrawFn, name: str, typ: pa.DataType) -> Filt:
    kind = draw(st.sampled_from(["like", "ilike", "starts", "ends", "substr", "length"]))
    field = pc.field(name)
    fronts: dict[str, Front] = {}
    if kind in ("like", "ilike"):
        pattern = draw(st.sampled_from(_LIKE))
        model = pc.match_like(field, pattern, ignore_case=kind == "ilike")
        neg = draw(st.booleans())
        model = ~model if neg else model
        fronts["expr"] = Front(model, model)
        text = f"{_quote(name)} {'NOT ' if neg else ''}{kind.upper()} '{pattern}'"
        fronts["sql"] = Front(text, model)
        if "\\" not in pattern and kind == "like":
            fronts["duckdb"] = Front(text, model)
        return Filt(fronts, frozenset([name]), frozenset({"like", "match"}), False, text)
    if kind == "length":
        n = draw(st.integers(0, 3))
        model = pc.utf8_length(field) > n
    else:
        pattern = draw(st.sampled_from(STRINGS[:8]))
        fn = {"starts": pc.starts_with, "ends": pc.ends_with, "substr": pc.match_substring}[kind]
        model = fn(field, pattern)
    fronts["expr"] = Front(model, model)
    tags = {"function"} if kind == "length" else {"function", "match"}
    return Filt(fronts, frozenset([name]), frozenset(tags), False, str(model))


def _temporal_leaf(draw: st.DrawFn, name: str, typ: pa.DataType) -> Filt:
    field = pc.field(name)
    kinds = ["year", "month", "day"] + (["hour"] if pa.types.is_timestamp(typ) else [])
    kind = draw(st.sampled_from(kinds))
    target = {"year": [1969, 1970, 2000, 2024], "month": [1, 2, 3], "day": [8, 9, 10, 11],
              "hour": [0, 1, 3, 5, 19]}[kind]
    n = draw(st.sampled_from(target))
    op = draw(st.sampled_from(["=", "<", ">="]))
    model = pc.Expression._call(_OPS[op], [getattr(pc, kind)(field), pc.scalar(n)])
    return Filt({"expr": Front(model, model)}, frozenset([name]), frozenset({"function"}), False, str(model))


def _nested_leaf(draw: st.DrawFn, name: str, typ: pa.DataType) -> Filt:
    if pa.types.is_list(typ):
        model = pc.list_value_length(pc.field(name)) > draw(st.integers(0, 2))
    else:
        child = draw(st.sampled_from(["a", "b"]))
        ref = pc.field(name, child)
        if draw(st.booleans()):
            model = ref.is_null()
        else:
            ctype = typ.field(child).type
            model = ref == pc.scalar(literal(ctype, draw(values_for(ctype))))
    return Filt({"expr": Front(model, model)}, frozenset([name]), frozenset({"nested"}), False, str(model))


def _bool_leaf(name: str) -> Filt:
    model = pc.field(name)
    import polars as pl

    return Filt({"expr": Front(model, model == pc.scalar(True)),
                 "dnf": Front([[(name, "=", True)]], model == pc.scalar(True)),
                 "sql": Front(_quote(name), model == pc.scalar(True)),
                 "duckdb": Front(_quote(name), model == pc.scalar(True)),
                 "polars": Front(pl.col(name), model == pc.scalar(True))},
                frozenset([name]), frozenset(), True, name)


@st.composite
def leaves(draw: st.DrawFn, schema: pa.Schema, *, iso: bool = False) -> Filt:
    """One predicate on one column of ``schema``."""
    f = draw(st.sampled_from(list(schema)))
    name, typ = f.name, f.type
    kinds = ["null"]
    if _scalar_type(typ):
        kinds += ["cmp", "cmp", "cmp", "in", "in"]
    if _orderable(typ) and _scalar_type(typ):
        kinds.append("between")
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        kinds += ["string", "string"]
    if pa.types.is_date(typ) or pa.types.is_timestamp(typ):
        kinds.append("temporal")
    if pa.types.is_list(typ) or pa.types.is_struct(typ):
        kinds += ["nested", "nested"]
    if pa.types.is_boolean(typ):
        kinds.append("bool")
    kind = draw(st.sampled_from(kinds))
    if kind == "cmp":
        return _cmp_leaf(draw, name, typ, iso)
    if kind == "in":
        return _in_leaf(draw, name, typ, iso)
    if kind == "between":
        return _between_leaf(draw, name, typ)
    if kind == "string":
        return _string_leaf(draw, name, typ)
    if kind == "temporal":
        return _temporal_leaf(draw, name, typ)
    if kind == "nested":
        return _nested_leaf(draw, name, typ)
    if kind == "bool":
        return _bool_leaf(name)
    return _null_leaf(draw, name, typ)


def _column_pair_leaf(draw: st.DrawFn, a: pa.Field, b: pa.Field) -> Filt:
    """``a op b`` for two columns of one type (expression and SQL)."""
    ops = list(_OPS) if _orderable(a.type) else ["=", "!="]
    op = draw(st.sampled_from(ops))
    model = pc.Expression._call(_OPS[op], [pc.field(a.name), pc.field(b.name)])
    text = f"{_quote(a.name)} {op} {_quote(b.name)}"
    fronts = {"expr": Front(model, model), "sql": Front(text, model)}
    if _duckdb_ok(a.type):
        fronts["duckdb"] = Front(text, model)
    tags = {"nan"} if pa.types.is_floating(a.type) else set()
    return Filt(fronts, frozenset([a.name, b.name]), frozenset(tags), False, text)


@st.composite
def filters(draw: st.DrawFn, schema: pa.Schema, *, max_depth: int = 2, iso: bool = False,
            accept: Callable[[Filt], bool] = lambda f: True) -> Filt:
    """A random filter over ``schema`` (not on ``rid``, the harness's row id, unless it is the only column)."""
    cols = pa.schema([f for f in schema if f.name != "rid"]) if len(schema) > 1 else schema

    pairs = [(a, b) for a in cols for b in cols if a.name < b.name and a.type == b.type and _scalar_type(a.type)]

    def build(depth: int) -> Filt:
        if depth <= 0 or draw(st.integers(0, 2)) == 0:
            if pairs and draw(st.integers(0, 5)) == 0:
                a, b = draw(st.sampled_from(pairs))
                return _column_pair_leaf(draw, a, b)
            return draw(leaves(cols, iso=iso))
        kind = draw(st.sampled_from(["and", "or", "not"]))
        if kind == "not":
            return negate(build(depth - 1))
        return combine(kind, [build(depth - 1), build(depth - 1)])

    found = build(max_depth)
    if not accept(found):
        return draw(leaves(cols, iso=iso).filter(accept))
    return found
