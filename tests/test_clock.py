"""The clock helper (``lakehouse.clock``): milliseconds since the epoch and aware UTC datetimes convert
into each other exactly, for every instant a datetime can hold and in every time zone.

The old conversions went through floats: ``int(d.timestamp() * 1000)`` lands 1 ms early for some
instants (2038-01-19 03:14:08.002 UTC is one), and ``datetime.fromtimestamp(ms / 1000)`` is microseconds
off far from 1970. CI runs a bounded hypothesis profile; ``LH_FUZZ=1`` (``make fuzz``) a long one.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.clock import EPOCH, from_ms, ms_from_seconds, now_ms, to_ms

PROFILE = settings(max_examples=2000 if os.environ.get("LH_FUZZ") else 200, deadline=None)

UTC = dt.timezone.utc
MIN_MS = to_ms(dt.datetime.min.replace(tzinfo=UTC))
MAX_MS = to_ms(dt.datetime.max.replace(tzinfo=UTC))
OLD_ROUNDING_WRONG = dt.datetime(2038, 1, 19, 3, 14, 8, 2000, tzinfo=UTC)  # int(timestamp() * 1000) is 1 ms early

zones = st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8)),
                         dt.timezone(dt.timedelta(hours=14)), dt.timezone(dt.timedelta(hours=-12))])
instants = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))


def _exact_ms(instant: dt.datetime) -> int:
    """The floor, from integer microseconds (the definition, independent of the helper's code)."""
    delta = instant - EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) // 1000


@PROFILE
@given(naive=instants, zone=zones)
@example(naive=OLD_ROUNDING_WRONG.replace(tzinfo=None), zone=UTC)
def test_to_ms_is_the_exact_floor_in_every_zone(naive, zone):
    instant = naive.replace(tzinfo=UTC).astimezone(zone)
    ms = to_ms(instant)
    assert ms == _exact_ms(instant)
    assert from_ms(ms) <= instant < from_ms(ms) + dt.timedelta(milliseconds=1)
    assert to_ms(instant.astimezone(UTC)) == ms  # the same instant in UTC


@PROFILE
@given(ms=st.integers(MIN_MS, MAX_MS))
@example(ms=MAX_MS)
@example(ms=to_ms(OLD_ROUNDING_WRONG))
def test_ms_round_trip_exactly(ms):
    instant = from_ms(ms)
    assert instant.tzinfo is UTC and instant.microsecond % 1000 == 0
    assert to_ms(instant) == ms


def test_the_old_float_rounding_was_wrong_where_the_helper_is_right():
    """The instants the examples above pin: the float formulas disagree with the exact ones."""
    assert int(OLD_ROUNDING_WRONG.timestamp() * 1000) == to_ms(OLD_ROUNDING_WRONG) - 1
    assert dt.datetime.fromtimestamp(MAX_MS / 1000, tz=UTC) != from_ms(MAX_MS)
    assert from_ms(MAX_MS) == dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


@PROFILE
@given(us=st.integers(0, 2**51))  # up to the year 2041: floats hold the microsecond
def test_seconds_as_floats_round_to_the_microsecond_first(us):
    assert ms_from_seconds(us / 1_000_000) == us // 1000
    assert ms_from_seconds(us // 1_000_000) == (us // 1_000_000) * 1000


def test_now_ms_agrees_with_the_datetime_clock():
    before = now_ms()
    instant = dt.datetime.now(UTC)
    after = now_ms()
    assert before <= to_ms(instant) <= after
    assert abs(now_ms() - int(time.time() * 1000)) < 1000


def test_a_naive_or_foreign_instant_is_refused():
    with pytest.raises(lh.InvalidArgumentError):
        to_ms(dt.datetime(2024, 1, 1))
    with pytest.raises(lh.ArgumentTypeError):
        to_ms(dt.date(2024, 1, 1))  # type: ignore[arg-type]


def test_commit_timestamps_read_back_exactly(table_uri):
    """A commit's stored milliseconds, its history record and its snapshot's timestamp name one instant."""
    t = lh.write_table(table_uri, pa.table({"a": [1]}))
    commit = t.history()[0]
    assert t.snapshot().timestamp == commit.timestamp
    assert t.snapshot(as_of=commit.timestamp).version == 0
