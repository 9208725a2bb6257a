"""The typed property getters (``lakehouse.properties``): one default per property, read the same way
everywhere; a value another writer set that breaks the rules gives the default and a ``PropertyWarning``.
CI runs a bounded hypothesis profile; ``LH_FUZZ=1`` (``make fuzz``) a long one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import warnings

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.commit import CommitRequest, commit
from lakehouse.properties import (
    DEFAULT_PROPERTIES,
    PROPERTY_SPECS,
    checkpoint_interval,
    int_property,
    log_min_retention,
    target_file_size,
    vacuum_min_retention,
)
from lakehouse.replay import load_state
from lakehouse.storage import Storage

PROFILE = settings(max_examples=500 if os.environ.get("LH_FUZZ") else 60, deadline=None)

GETTERS = {
    "target_file_size": target_file_size,
    "checkpoint_interval": checkpoint_interval,
    "vacuum_min_retention_seconds": lambda p: vacuum_min_retention(p) // dt.timedelta(seconds=1),
    "log_min_retention_seconds": lambda p: log_min_retention(p) // dt.timedelta(seconds=1),
}

raw_values = st.one_of(st.integers(-10, 2**64).map(str), st.text(max_size=25),
                       st.sampled_from(["", "0", "1", "1e3", "0x10", " 5", "5 ", "١٢", str(2**63 - 1), str(2**63)]))


def test_every_known_property_has_a_getter_and_one_default():
    assert set(GETTERS) == set(PROPERTY_SPECS)
    for name, getter in GETTERS.items():
        assert getter({}) == PROPERTY_SPECS[name].default == int_property({}, name)
    for name, text in DEFAULT_PROPERTIES.items():
        assert int(text) == PROPERTY_SPECS[name].default


@PROFILE
@given(name=st.sampled_from(sorted(GETTERS)), raw=raw_values)
def test_a_getter_reads_a_valid_value_and_defaults_with_a_warning_otherwise(name, raw):
    spec = PROPERTY_SPECS[name]
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 20 and spec.minimum <= int(raw) <= spec.maximum
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = GETTERS[name]({name: raw})
    assert value == (int(raw) if valid else spec.default)
    assert [w.category for w in caught] == ([] if valid else [lh.PropertyWarning])
    if not valid:
        assert name in str(caught[0].message)


def test_every_reader_of_a_bad_target_file_size_uses_the_same_default(table_uri):
    """The table's writes, its transactions, ``write_files`` and ``optimize`` all read one getter."""
    t = lh.write_table(table_uri, pa.table({"a": [1]}))
    storage = Storage.from_uri(table_uri)
    state = load_state(storage)
    meta = dataclasses.replace(state.metadata, properties={**state.metadata.properties, "target_file_size": "0"})
    commit(storage, state, CommitRequest(operation="set_properties", metadata=meta))  # a careless writer
    t.refresh()
    for write in (lambda: t.append(pa.table({"a": [2]})),
                  lambda: lh.write_files(table_uri, pa.table({"a": [3]})),
                  lambda: t.optimize()):
        with pytest.warns(lh.PropertyWarning, match="target_file_size.*134217728"):
            write()
    assert sorted(t.to_arrow().column("a").to_pylist()) == [1, 2]
