"""Filter values: nanosecond timestamps, ISO text for dates and timestamps, one rule for naive
datetimes on zoned columns in every front end, NaN and signed zeros through pruning and planning."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.errors import InvalidFilterError

pd = pytest.importorskip("pandas")
UTC = dt.timezone.utc


def _uri() -> str:
    return f"memory://values-{uuid.uuid4().hex}"


# -- nanoseconds -----------------------------------------------------------------------------------
NS = pa.timestamp("ns")
ONE_NS = "1970-01-01 00:00:00.000000001"


@pytest.mark.parametrize("flt", [
    f"ts = TIMESTAMP '{ONE_NS}'", f"ts = '{ONE_NS}'", f"ts IN (TIMESTAMP '{ONE_NS}')",
    [("ts", "=", ONE_NS)], [("ts", "in", [ONE_NS])], [("ts", "=", pd.Timestamp(ONE_NS))],
    [("ts", "=", np.datetime64("1970-01-01T00:00:00.000000001"))],
])
@pytest.mark.parametrize("partitioned", [False, True])
def test_nanosecond_literals_delete_exactly_their_row(flt, partitioned):
    t = lh.write_table(_uri(), pa.table({"ts": pa.array([0, 1, 2], NS), "x": [0, 1, 2]}),
                       partition_by=["ts"] if partitioned else None)
    assert t.to_arrow(filter=flt).column("x").to_pylist() == [1]
    t.delete(flt)
    assert sorted(t.to_arrow().column("x").to_pylist()) == [0, 2]


@pytest.mark.parametrize("flt", [
    "ts > TIMESTAMP '1970-01-01 00:00:00.000001001'", [("ts", ">", "1970-01-01T00:00:00.000001001")],
])
def test_a_literal_finer_than_the_column_compares_exactly(flt):
    t = lh.write_table(_uri(), pa.table({"ts": pa.array([0, 1, 2], pa.timestamp("us")), "x": [0, 1, 2]}))
    assert t.to_arrow(filter=flt).column("x").to_pylist() == [2]


# -- ISO text (DNF, as deltalake users write it) ---------------------------------------------------
def test_dnf_takes_iso_text_for_dates_and_timestamps():
    data = pa.table({"day": [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
                     "ts": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC)],
                                    pa.timestamp("us", tz="UTC")), "x": [1, 2]})
    t = lh.write_table(_uri(), data, partition_by=["day"])
    assert t.to_arrow(filter=[("day", "=", "2024-01-01")]).column("x").to_pylist() == [1]
    assert t.to_arrow(filter=[("day", "in", ["2024-01-02"])]).column("x").to_pylist() == [2]
    assert t.to_arrow(filter=[("ts", ">", "2024-01-01T12:00:00Z")]).column("x").to_pylist() == [2]
    assert t.to_arrow(filter=[("ts", "<", "2024-01-01T12:00:00+11:00")]).column("x").to_pylist() == [1]
    t.delete([("day", "=", "2024-01-01")])
    assert t.to_arrow().column("x").to_pylist() == [2]
    with pytest.raises(InvalidFilterError, match="day"):
        t.to_arrow(filter=[("day", "=", "2024-02-30")])


# -- naive datetimes on zoned columns: refused the same way by every front end ----------------------
ZONED = pa.timestamp("us", tz="Europe/Paris")


@pytest.fixture
def zoned():
    data = pa.table({"ts": pa.array([dt.datetime(2024, 1, 1, h, tzinfo=UTC) for h in (0, 12)], ZONED),
                     "naive": pa.array([dt.datetime(2024, 1, 1, h) for h in (0, 12)], pa.timestamp("us")),
                     "x": [1, 2]})
    return lh.write_table(_uri(), data)


@pytest.mark.parametrize("flt", [
    [("ts", ">", dt.datetime(2024, 1, 1, 6))], [("ts", ">", "2024-01-01T06:00:00")], [("ts", ">", dt.date(2024, 1, 1))],
    [("ts", "in", [dt.datetime(2024, 1, 1)])], pc.field("ts") > dt.datetime(2024, 1, 1, 6),
    pc.field("ts") > pa.scalar(dt.datetime(2024, 1, 1, 6)), "ts > TIMESTAMP '2024-01-01 06:00:00'",
    "ts > '2024-01-01 06:00:00'", "ts IN ('2024-01-01 00:00:00')", "ts BETWEEN '2024-01-01' AND '2024-01-02'",
    # and the reverse: an instant on a naive column
    [("naive", ">", dt.datetime(2024, 1, 1, 6, tzinfo=UTC))], pc.field("naive") > dt.datetime(2024, 1, 1, tzinfo=UTC),
    "naive > TIMESTAMP '2024-01-01 06:00:00Z'",
])
@pytest.mark.parametrize("op", ["read", "delete", "plan"])
def test_a_naive_value_on_a_zoned_column_is_refused_by_every_front_end(zoned, flt, op):
    call = {"read": zoned.to_arrow, "delete": zoned.delete, "plan": zoned.snapshot().plan_files}[op]
    with pytest.raises(InvalidFilterError):
        call(filter=flt)
    assert zoned.version == 0


@pytest.mark.parametrize("flt", [
    [("ts", ">", dt.datetime(2024, 1, 1, 6, tzinfo=UTC))], [("ts", ">", "2024-01-01T07:00:00+01:00")],
    pc.field("ts") > pa.scalar(dt.datetime(2024, 1, 1, 6, tzinfo=UTC), ZONED),
    "ts > TIMESTAMP '2024-01-01 06:00:00Z'", "ts > '2024-01-01 07:00:00+01:00'",
    [("naive", ">", dt.datetime(2024, 1, 1, 6))], "naive > TIMESTAMP '2024-01-01 06:00:00'",
])
def test_an_instant_on_a_zoned_column_is_read_as_that_instant_everywhere(zoned, flt):
    assert zoned.to_arrow(filter=flt).column("x").to_pylist() == [2]


# -- NaN and signed zeros --------------------------------------------------------------------------
@pytest.mark.parametrize("flt", [
    [("f", "in", [float("nan")])], [("f", "in", [float("nan"), 0.0])], [("f", "not in", [float("nan")])],
    pc.field("f") == float("nan"), ~(pc.field("f") < float("nan")),
])
def test_nan_filters_plan_and_read_like_to_arrow(flt):
    t = lh.write_table(_uri(), pa.table({"f": [float("nan"), 1.0, -0.0, None]}))
    t.append(pa.table({"f": [float("nan")]}))
    expected = rows(t.to_arrow(filter=flt))
    tasks = t.snapshot().plan_files(filter=flt)
    assert rows(pa.concat_tables([lh.read_task(task) for task in tasks])) == expected


FLOATS = st.sampled_from([-0.0, 0.0, float("nan"), float("inf"), -float("inf"), 1.0, -1.0])
PROFILE = settings(max_examples=300 if os.environ.get("LH_FUZZ") else 40, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROFILE
@given(files=st.lists(st.lists(st.one_of(st.none(), FLOATS), min_size=1, max_size=4), min_size=1, max_size=4),
       typ=st.sampled_from([pa.float32(), pa.float64()]), op=st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in",
                                                                             "not in"]),
       values=st.lists(FLOATS, min_size=1, max_size=3), spelling=st.sampled_from(["dnf", "sql"]))
def test_float_pruning_keeps_every_file_with_a_matching_row(files, typ, op, values, spelling):
    """min/max pruning of floats with signed zeros, infinities and NaN never drops a matching file."""
    if spelling == "sql":
        if any(v != v or v in (float("inf"), -float("inf")) for v in values):
            return  # SQL text has no NaN or infinity literal
        lits = [repr(v) for v in values]
        flt = f"f {op.upper()} ({', '.join(lits)})" if op in ("in", "not in") else f"f {op} {lits[0]}"
    else:
        flt = [("f", op, values if op in ("in", "not in") else values[0])]
    t = lh.Table.create(_uri(), pa.schema([("f", typ), ("id", pa.int64())]))
    n = 0
    for values_ in files:
        t.append(pa.table({"f": pa.array(values_, typ), "id": list(range(n, n + len(values_)))}))
        n += len(values_)
    expected = t.to_arrow(filter=flt)
    everything = t.to_arrow()
    kept = {row["path"] for row in t.snapshot().files(filter=flt).to_pylist()}
    for task in t.snapshot().plan_files():
        if task.path not in kept:
            ids = set(lh.read_task(task).column("id").to_pylist())
            assert not ids & set(expected.column("id").to_pylist()), f"{flt} pruned a file with a match"
    # and the read agrees with a plain evaluation of the same rows
    model = [r for r, v in zip(everything.column("id").to_pylist(), everything.column("f").to_pylist())
             if v is not None and _holds(op, v, values)]
    assert sorted(expected.column("id").to_pylist()) == sorted(model), flt


def _holds(op: str, v: float, values: list[float]) -> bool:
    if op == "in":
        return any(v == w or (v != v and w != w) for w in values)
    if op == "not in":
        return not any(v == w or (v != v and w != w) for w in values)
    w = values[0]
    return {"=": v == w, "!=": v != w, "<": v < w, "<=": v <= w, ">": v > w, ">=": v >= w}[op]


@pytest.mark.parametrize("flt", [[("t", ">", "06:00:00")], "t > '06:00:00'", "t > TIME '06:00:00'",
                                 [("t", "in", ["12:00:00", "13:00"])], "t IN ('12:00:00')"])
def test_times_take_iso_text(flt):
    t = lh.write_table(_uri(), pa.table({"t": pa.array([dt.time(1), dt.time(12)], pa.time64("us")), "x": [1, 2]}))
    assert t.to_arrow(filter=flt).column("x").to_pylist() == [2]
