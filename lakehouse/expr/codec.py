"""The canonical expression codec (``docs/format.md`` §16.2): an expression as text and back.

An expression is stored as JSON of its tree (columns, typed literals, compute-function calls and
the few option kinds a stored expression may use), with sorted keys and no white space, so equal
expressions give equal text. CHECK constraints are stored in this form in the table properties
(:mod:`lakehouse.constraints`), and a :class:`~lakehouse.FileTask`'s residual ``filter`` travels
in it to the worker that reads the file.

Example:
    >>> import pyarrow.compute as pc
    >>> text = encode_expression(pc.field("a") > 0)
    >>> text
    '{"expr":{"args":[{"field":["a"]},{"literal":0,"type":"int64"}],"call":"greater"},"format":1}'
    >>> decode_expression(text).equals(pc.field("a") > 0)
    True
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from lakehouse.errors import InvalidFilterError
from lakehouse.schema import decode_values, encode_values

from .bridge import Field, Literal, Node, parse_expression

__all__ = ["ENCODING_FORMAT", "decode_expression", "encode_expression"]

ENCODING_FORMAT = 1
"""Version of the expression encoding (the ``format`` key of the JSON document)."""

_SIMPLE_TYPES: dict[str, pa.DataType] = {
    "null": pa.null(), "bool": pa.bool_(),
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "float32": pa.float32(), "float64": pa.float64(),
    "string": pa.string(), "large_string": pa.large_string(), "binary": pa.binary(),
    "large_binary": pa.large_binary(), "date32": pa.date32(), "date64": pa.date64(),
}
_UNIT_TYPE = re.compile(r"(timestamp|time32|time64|duration)\[(s|ms|us|ns)(?:, tz=(.+))?\]\Z")
_DECIMAL_TYPE = re.compile(r"(decimal128|decimal256)\(([0-9]+), (-?[0-9]+)\)\Z")
_FIXED_BINARY = re.compile(r"fixed_size_binary\[([0-9]+)\]\Z")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_CAST_FLAGS = ("allow_int_overflow", "allow_time_truncate", "allow_time_overflow", "allow_decimal_truncate",
               "allow_float_truncate", "allow_invalid_utf8")


class _Bad(Exception):
    """The expression or its encoding has a shape the encoding does not cover."""


# -- types and values ----------------------------------------------------------------------------
def _type_name(t: pa.DataType) -> str:
    for name, simple in _SIMPLE_TYPES.items():
        if t.equals(simple):
            return name
    if pat.is_timestamp(t):
        return f"timestamp[{t.unit}, tz={t.tz}]" if t.tz else f"timestamp[{t.unit}]"
    if pat.is_time32(t) or pat.is_time64(t) or pat.is_duration(t):
        kind = "time32" if pat.is_time32(t) else "time64" if pat.is_time64(t) else "duration"
        return f"{kind}[{t.unit}]"
    if pat.is_decimal128(t) or pat.is_decimal256(t):
        return f"{'decimal128' if pat.is_decimal128(t) else 'decimal256'}({t.precision}, {t.scale})"
    if pat.is_fixed_size_binary(t):
        return f"fixed_size_binary[{t.byte_width}]"
    raise _Bad(f"values of type {t} cannot be stored in a constraint")


def _parse_type(name: Any) -> pa.DataType:
    if not isinstance(name, str):
        raise _Bad(f"a type must be a string, got {name!r}")
    if name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name]
    try:
        if m := _UNIT_TYPE.match(name):
            kind, unit, tz = m.groups()
            if kind == "timestamp":
                return pa.timestamp(unit, tz=tz)
            if tz is None:
                return {"time32": pa.time32, "time64": pa.time64, "duration": pa.duration}[kind](unit)
        elif m := _DECIMAL_TYPE.match(name):
            make = pa.decimal128 if m.group(1) == "decimal128" else pa.decimal256
            return make(int(m.group(2)), int(m.group(3)))
        elif m := _FIXED_BINARY.match(name):
            return pa.binary(int(m.group(1)))
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise _Bad(f"invalid type {name!r}: {exc}") from exc
    raise _Bad(f"unknown type {name!r}")


def _is_binary(t: pa.DataType) -> bool:
    return bool(pat.is_binary(t) or pat.is_large_binary(t) or pat.is_fixed_size_binary(t))


def _encode_array(arr: pa.Array) -> dict[str, Any]:
    t = arr.type
    name = _type_name(t)
    values = encode_values(arr)
    if _is_binary(t):
        values = [None if v is None else v.hex() for v in values]
    elif pat.is_floating(t):
        values = [v if v is None or math.isfinite(v) else ("NaN" if math.isnan(v) else
                                                            "Infinity" if v > 0 else "-Infinity") for v in values]
    return {"type": name, "values": values}


def _check_value(v: Any, t: pa.DataType) -> Any:
    """One JSON value of type ``t`` in the form ``decode_values`` takes; ``_Bad`` if it does not fit."""
    if v is None:
        return None
    ok: bool
    if pat.is_null(t):
        ok = False
    elif pat.is_boolean(t):
        ok = isinstance(v, bool)
    elif pat.is_floating(t):
        if isinstance(v, str) and v in _NON_FINITE:
            return _NON_FINITE[v]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif _is_binary(t):
        if isinstance(v, str) and re.fullmatch(r"(?:[0-9a-f]{2})*", v):
            return bytes.fromhex(v)
        ok = False
    elif pat.is_string(t) or pat.is_large_string(t) or pat.is_decimal(t):
        ok = isinstance(v, str)
    else:  # integers and the temporal types (their integer storage value)
        ok = isinstance(v, int) and not isinstance(v, bool)
    if not ok:
        raise _Bad(f"{v!r} is not a value of type {t}")
    return v


def _decode_array(d: Any) -> pa.Array:
    if not isinstance(d, dict) or set(d) != {"type", "values"} or not isinstance(d["values"], list):
        raise _Bad(f"expected {{'type': ..., 'values': [...]}}, got {d!r}")
    t = _parse_type(d["type"])
    values = [_check_value(v, t) for v in d["values"]]
    try:
        return decode_values(values, t)
    except (pa.ArrowException, TypeError, ValueError, ArithmeticError) as exc:
        raise _Bad(f"values {d['values']!r} do not fit type {t}: {exc}") from exc


# -- function options ----------------------------------------------------------------------------
def _encode_options(options: pa.StructScalar) -> dict[str, Any]:
    kind = options["_type_name"].as_py()
    if kind == b"SetLookupOptions":
        behaviour = options["null_matching_behavior"].as_py()
        if behaviour not in (0, 1):  # MATCH, SKIP: the only ones pyarrow's Python API can build
            raise _Bad(f"is_in with null_matching_behavior {behaviour} cannot be stored")
        return {"kind": "set_lookup", "value_set": _encode_array(options["value_set"].values),
                "skip_nulls": behaviour == 1}
    if kind == b"NullOptions":
        return {"kind": "null", "nan_is_null": bool(options["nan_is_null"].as_py())}
    if kind == b"CastOptions":
        out: dict[str, Any] = {"kind": "cast", "to_type": _type_name(options.type.field("to_type").type)}
        out.update((flag, bool(options[flag].as_py())) for flag in _CAST_FLAGS)
        return out
    if kind == b"MatchSubstringOptions":
        return {"kind": "match_substring", "pattern": options["pattern"].as_py(),
                "ignore_case": bool(options["ignore_case"].as_py())}
    name = kind.decode("utf-8", "replace") if isinstance(kind, bytes) else str(kind)
    raise _Bad(f"function options {name} cannot be stored in a constraint")


def _flag(d: Mapping[str, Any], key: str) -> bool:
    v = d.get(key)
    if not isinstance(v, bool):
        raise _Bad(f"options key {key!r} must be true or false, got {v!r}")
    return v


def _decode_options(d: Any) -> pc.FunctionOptions:
    kind = d.get("kind") if isinstance(d, dict) else None
    keys = {"set_lookup": {"kind", "value_set", "skip_nulls"}, "null": {"kind", "nan_is_null"},
            "cast": {"kind", "to_type", *_CAST_FLAGS}, "match_substring": {"kind", "pattern", "ignore_case"}}
    if not isinstance(kind, str) or kind not in keys or set(d) != keys[kind]:
        raise _Bad(f"unknown or malformed function options {d!r}")
    if kind == "set_lookup":
        return pc.SetLookupOptions(_decode_array(d["value_set"]), skip_nulls=_flag(d, "skip_nulls"))
    if kind == "null":
        return pc.NullOptions(nan_is_null=_flag(d, "nan_is_null"))
    if kind == "cast":
        return pc.CastOptions(_parse_type(d["to_type"]), **{f: _flag(d, f) for f in _CAST_FLAGS})
    if not isinstance(d["pattern"], str):
        raise _Bad(f"a pattern must be a string, got {d['pattern']!r}")
    return pc.MatchSubstringOptions(d["pattern"], ignore_case=_flag(d, "ignore_case"))


# -- expressions ---------------------------------------------------------------------------------
def _encode_node(node: Node) -> dict[str, Any]:
    if isinstance(node, Field):
        return {"field": list(node.path)}
    if isinstance(node, Literal):
        arr = _encode_array(pa.array([node.value], type=node.value.type))
        return {"literal": arr["values"][0], "type": arr["type"]}
    if node.name == "random":
        raise _Bad("random() is not deterministic")
    out: dict[str, Any] = {"call": node.name, "args": [_encode_node(a) for a in node.args]}
    if node.options is not None:
        out["options"] = _encode_options(node.options)
    return out


def _decode_node(d: Any) -> pc.Expression:
    if not isinstance(d, dict):
        raise _Bad(f"expected a node (a JSON object), got {d!r}")
    keys = set(d)
    if keys == {"field"}:
        path = d["field"]
        if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
            raise _Bad(f"a field is a non-empty list of names, got {path!r}")
        return pc.field(*path)
    if keys == {"literal", "type"}:
        return pc.scalar(_decode_array({"type": d["type"], "values": [d["literal"]]})[0])
    if keys in ({"call", "args"}, {"call", "args", "options"}):
        if not isinstance(d["call"], str) or not isinstance(d["args"], list) or d["call"] == "random":
            raise _Bad(f"malformed call {d!r}")
        options = _decode_options(d["options"]) if "options" in d else None
        try:
            pc.get_function(d["call"])  # an unknown function cannot be enforced: refuse now, not at write time
            return pc.Expression._call(d["call"], [_decode_node(a) for a in d["args"]], options)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise _Bad(f"cannot call {d['call']!r}: {exc}") from exc
    raise _Bad(f"unknown node {d!r}")


def encode_expression(expr: pc.Expression) -> str:
    """The canonical text of ``expr`` (``docs/format.md`` §16.2); decoding it gives an equal expression.

    Args:
        expr: the expression.

    Returns:
        Compact JSON with sorted keys: equal expressions give equal text.

    Raises:
        InvalidFilterError: the expression uses something the encoding cannot hold (a literal of a
            nested type, options other than is_in/is_null/cast/match_substring ones, ``random``).

    Example:
        >>> import pyarrow.compute as pc
        >>> encode_expression(pc.field("s").is_valid())
        '{"expr":{"args":[{"field":["s"]}],"call":"is_valid"},"format":1}'
    """
    try:
        doc = {"format": ENCODING_FORMAT, "expr": _encode_node(parse_expression(expr))}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        decoded = _decode(text)
        same = decoded.equals(expr) or str(decoded) == str(expr)  # NaN literals are never equal
    except (_Bad, RecursionError, pa.ArrowException, KeyError, TypeError, ValueError) as exc:
        raise InvalidFilterError(f"cannot store expression {expr} as a constraint: {exc}") from exc
    if not same:
        raise InvalidFilterError(f"cannot store expression {expr} as a constraint: it does not survive encoding")
    return text


def _decode(text: str) -> pc.Expression:
    doc = json.loads(text)
    if not isinstance(doc, dict) or set(doc) != {"format", "expr"}:
        raise _Bad("expected {'format': ..., 'expr': ...}")
    if doc["format"] != ENCODING_FORMAT or isinstance(doc["format"], bool):
        raise _Bad(f"encoding format {doc['format']!r} is not supported (this lakehouse reads {ENCODING_FORMAT})")
    return _decode_node(doc["expr"])


def decode_expression(text: str) -> pc.Expression:
    """The expression encoded by :func:`encode_expression`.

    Args:
        text: the canonical text.

    Returns:
        The expression (equal to the one encoded).

    Raises:
        InvalidFilterError: the text is not a valid encoding (or of an unsupported format version).

    Example:
        >>> decode_expression('{"expr":{"field":["flag"]},"format":1}')
        <pyarrow.compute.Expression flag>
    """
    try:
        return _decode(text)
    except (_Bad, RecursionError, ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise InvalidFilterError(f"invalid constraint encoding {text[:200]!r}: {exc}") from exc
