"""Deletion-vector codec speed: encode, decode and keep-masks over a 10M-row data file.

Run: ``PYTHONPATH=. python benchmarks/deletion_vectors.py`` (best of 5 runs each, milliseconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from lakehouse.deletion_vector import DeletionVector, from_iceberg_blob, to_iceberg_blob

ROWS = 10_000_000


def best_ms(fn: Callable[[], object], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> None:
    rng = np.random.default_rng(7)
    cases = {
        "100k random": rng.choice(ROWS, 100_000, replace=False),
        "1M random": rng.choice(ROWS, 1_000_000, replace=False),
        "1M in one run": np.arange(2_000_000, 3_000_000),
        "1 row": np.array([4_242_424]),
    }
    print(f"| deleted positions (of {ROWS:,} rows) | bytes | from_positions | encode | decode | "
          "iceberg blob round trip | mask (numpy) | mask (arrow) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, positions in cases.items():
        dv = DeletionVector.from_positions(positions)
        data = dv.to_bytes()
        assert DeletionVector.from_bytes(data, num_rows=ROWS) == dv
        row = [
            best_ms(lambda p=positions: DeletionVector.from_positions(p)),
            best_ms(dv.to_bytes),
            best_ms(lambda d=data: DeletionVector.from_bytes(d, num_rows=ROWS)),
            best_ms(lambda v=dv: from_iceberg_blob(to_iceberg_blob(v), num_rows=ROWS)),
            best_ms(lambda v=dv: v.mask(ROWS)),
            best_ms(lambda v=dv: v.mask(ROWS, arrow=True)),
        ]
        print(f"| {label} | {len(data):,} | " + " | ".join(f"{ms:.2f}" for ms in row) + " |")


if __name__ == "__main__":
    main()
