"""The narrow table handle (``lakehouse.handle``) and the one place that builds a ``Transaction``.

``Alter``, ``Inspect`` and ``Transaction`` see a table only through a ``TableHandle``; the facade's
public behaviour through them is unchanged (reprs, pinned handles, the idempotent writer's check,
which both ways of creating a table now share).
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest

import lakehouse as lh
from lakehouse.handle import TableHandle

PACKAGE = Path(__file__).resolve().parent.parent / "lakehouse"

BAD_APP_TRANSACTIONS = [
    (("etl", -1), lh.InvalidArgumentError),
    (("", 1), lh.InvalidArgumentError),
    (("etl", "5"), lh.ArgumentTypeError),
    (("etl", 1.5), lh.ArgumentTypeError),
    (("etl", True), lh.ArgumentTypeError),
    ((b"etl", 1), lh.ArgumentTypeError),
    ("etl", lh.ArgumentTypeError),
    (("etl", 1, 2), lh.ArgumentTypeError),
]


def test_one_place_builds_a_transaction():
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node.func, "id", getattr(node.func, "attr", None)) if isinstance(node, ast.Call) else None
            if name == "Transaction":
                sites.append(f"{path.name}:{node.lineno}")
    assert len(sites) == 1, sites


@pytest.mark.parametrize(("bad", "error"), BAD_APP_TRANSACTIONS, ids=[repr(b) for b, _ in BAD_APP_TRANSACTIONS])
def test_a_bad_app_transaction_is_refused_alike_when_creating_and_appending(bad, error):
    """Creating a table with data used to store ``("etl", -1)``, ``"5"`` or ``1.5`` as they came."""
    fs = fsspec.filesystem("memory")
    new = f"memory://handles-new-{abs(hash(repr(bad)))}"
    with pytest.raises(error):
        lh.write_table(new, pa.table({"a": [1]}), app_transaction=bad)
    assert not fs.exists(new.removeprefix("memory://")) or not fs.find(new.removeprefix("memory://"))
    existing = lh.write_table(f"memory://handles-old-{abs(hash(repr(bad)))}", pa.table({"a": [1]}))
    for write in (lambda: lh.write_table(existing.uri, pa.table({"a": [2]}), mode="append", app_transaction=bad),
                  lambda: existing.append(pa.table({"a": [2]}), app_transaction=bad)):
        with pytest.raises(error):
            write()
    assert existing.refresh() == 0 and len(fs.find(existing.uri.removeprefix("memory://"))) == 2


def test_alter_inspect_and_transaction_see_the_table_through_its_handle(table_uri):
    t = lh.write_table(table_uri, pa.table({"a": [1]}))
    for part in (t.alter, t.inspect):
        assert isinstance(part._handle, TableHandle)
        assert repr(part) == f"{type(part).__name__}({t!r})"
    with t.transaction() as tx:
        tx.append(pa.table({"a": [2]}))
    assert repr(t.inspect).endswith("version=1))")  # the handle follows the table
    assert t.alter.set_properties({"owner": "ops"}) == 2 and t.version == 2
    assert t.inspect.history().column("version").to_pylist() == [2, 1, 0]


def test_a_pinned_table_inspects_and_reads_its_own_version(table_uri):
    t = lh.write_table(table_uri, pa.table({"a": [1]}))
    t.append(pa.table({"a": [2]}))
    pinned = lh.Table.open(table_uri, version=0)
    assert pinned.inspect.history().column("version").to_pylist() == [0]
    assert [c.version for c in pinned.history()] == [0]
    assert pinned.inspect.files().num_rows == 1 and pinned.inspect.files(version=1).num_rows == 2
    when = t.history()[0].timestamp
    assert pinned.inspect.files(as_of=when).num_rows == 2 and pinned.version == 0
    with pytest.raises(lh.InvalidArgumentError):
        pinned.inspect.files(version=0, as_of=dt.datetime.now(dt.timezone.utc))
    with pytest.raises(lh.InvalidArgumentError):
        pinned.inspect.history(limit=-1)
    assert pinned.alter.set_properties({"owner": "ops"}) == 2  # alter moves a pinned handle to the latest
    assert pinned.version == 2 and pinned.inspect.history().num_rows == 3
