"""Query a lakehouse table from DuckDB, Polars and pandas (each part skipped if the package is missing).

    python examples/duckdb_polars.py      # works on a table in a temporary folder

``pip install 'lakehouse-format[duckdb,polars,pandas]'`` for all three. The lazy readers
(``to_duckdb``, ``to_polars``) let the engine push filters down, so files whose partition values or
min/max statistics cannot match are never opened (see docs/ecosystem.md).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import pyarrow as pa

import lakehouse as lh


def available(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        print(f"{module}: skipped ({module} is not installed)")
        return False
    return True


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "sales")
        data = pa.table({
            "id": list(range(12)),
            "region": ["north", "south", "east"] * 4,
            "amount": [float(i * 10) for i in range(12)],
        })
        t = lh.write_table(uri, data, partition_by=["region"])
        t.append(pa.table({"id": [12], "region": ["west"], "amount": [500.0]}))
        print(f"table at version {t.version} with {t.to_arrow().num_rows} rows")

        if available("duckdb"):
            con = t.to_duckdb("sales")  # a new in-memory connection with the lazy dataset registered
            rows = con.sql("select region, sum(amount) from sales group by region order by region").fetchall()
            print(f"duckdb: {rows}")
            t.snapshot(version=0).to_duckdb("sales_v0", connection=con)  # time travel: any version
            print(f"duckdb, version 0: {con.sql('select count(*) from sales_v0').fetchall()[0][0]} rows")

        if available("polars"):
            import polars as pl

            top = (t.to_polars().filter(pl.col("amount") >= 100).group_by("region")
                   .agg(pl.len().alias("n")).sort("region").collect())
            print(f"polars: {top.rows()}")
            print(f"polars, eager: {pl.DataFrame(t).height} rows")

        if available("pandas"):
            df = t.to_pandas(filter=[("region", "=", "west")])
            print(f"pandas: {df[['id', 'amount']].to_dict('records')}")


if __name__ == "__main__":
    main()
