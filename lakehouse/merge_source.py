"""A merge's source read once, streaming, and held in key-range chunks within a memory budget.

:meth:`MergeSource.of` reads any Arrow-shaped source (a ``pyarrow.Table``, a ``RecordBatchReader``,
pandas, Polars, a DuckDB relation, anything with ``__arrow_c_stream__``) once and numbers its rows
in arrival order (an ``int64`` column, ``__row__`` by default). What it holds:

- **Fits in the budget** (the Arrow ``nbytes`` of everything read is at most ``budget``): one
  in-memory chunk, no temporary file; a ``pyarrow.Table`` is not copied (the row numbers are
  appended as a new column).
- **Larger**: the rows are spilled as Arrow IPC to a temporary folder on local disk (``tempfile``;
  never the table's filesystem), **range-partitioned on the key column**. The boundaries are
  quantiles of the keys of the first ``budget`` bytes read (the sample), and a key equal to a
  boundary gets a partition of its own (a frequent value is kept apart from its neighbours); a
  partition that still comes out larger than the budget is partitioned again on boundaries from
  every n-th of its keys (so keys arriving sorted are split evenly too), and adjacent small
  partitions are grouped, so a chunk holds about ``budget`` bytes. A chunk larger than the budget
  remains only when it holds one key value (skew). Keys are compared in their own type (a
  dictionary by its values). At most about ``budget`` bytes of source are held at a time.

Where rows go, so a merge can rely on it:

- Chunks partition the key range: every non-null key of chunk ``i`` is lower than every key of
  chunk ``i + 1`` (``chunk_bounds``), and equal keys are always in one chunk (``-0.0`` and ``0.0``
  too: floats are compared as numbers).
- **Null keys and NaN keys** (which never match in a merge) are in chunks of their own, after all
  the key-range chunks, with ``chunk_bounds`` ``(None, None)``; when nothing was spilled they are in
  the one chunk, whose bounds cover its other keys. With ``key=None`` chunks are arrival-order
  slices.
- Within a chunk rows are in arrival order (row numbers ascending). Columns keep their types, but
  view types (``string_view``, ``binary_view``, list views: Polars, DuckDB) become their large forms.

Example:
    >>> import pyarrow as pa
    >>> with MergeSource.of(pa.table({"id": [3, 1, 2]}), "id", budget=1 << 20) as src:
    ...     src.num_chunks, src.spilled, src.chunk(0).column("__row__").to_pylist()
    (1, False, [0, 1, 2])
"""

from __future__ import annotations

import math
import os
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arguments import check_int, check_str
from .errors import ColumnNotFoundError, InvalidArgumentError
from .localfs import make_scratch, remove_scratch
from .schema import to_reader

__all__ = ["MergeSource"]

_STREAMED_PARTS = 64  # key ranges of a stream of unknown size (a range too large is split again)
_MAX_PARTS = 128  # key ranges at most (twice as many spill files open at once: see _partition_ids)
_MAX_DEPTH = 6  # times a too large partition is partitioned again
_ROUTE_ROWS = 1 << 16  # small incoming batches are gathered up to this many rows before routing


# -- comparing keys ---------------------------------------------------------------------------------
def _comparable_type(t: pa.DataType) -> pa.DataType:
    """The type a key column is compared in: a dictionary's values, a view as its large form."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary_view(t):
        return pa.large_binary()
    return t


def _numeric_type(t: pa.DataType) -> pa.DataType | None:
    """The numpy-comparable integer type a temporal key is viewed as, ``t`` for numbers, else None."""
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return t
    if pa.types.is_temporal(t) and not pa.types.is_interval(t):
        return pa.int32() if t.bit_width == 32 else pa.int64()
    return None


def _comparable(col: pa.Array | pa.ChunkedArray, t: pa.DataType) -> pa.Array:
    """``col`` as one array of its comparable type ``t``."""
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return col if col.type.equals(t) else col.cast(t)


def _valid_mask(keys: pa.Array) -> np.ndarray:
    """True where a key takes part in the range (not null, not NaN)."""
    valid = pc.is_valid(keys)
    if pa.types.is_floating(keys.type):
        valid = pc.and_(valid, pc.invert(pc.is_nan(keys)))
    return np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)


def _to_numpy(keys: pa.Array, nt: pa.DataType) -> np.ndarray:
    if not keys.type.equals(nt):
        keys = keys.view(nt)
    return keys.to_numpy(zero_copy_only=False)


def _min_max(keys: pa.Array) -> tuple[pa.Scalar, pa.Scalar]:
    """The lowest and highest non-null key (null scalars if none); durations through their integers."""
    nt = _numeric_type(keys.type)
    if nt is not None and not nt.equals(keys.type) and pa.types.is_duration(keys.type):  # no min_max kernel
        low_high = pc.min_max(keys.view(nt))
        return low_high["min"].cast(keys.type), low_high["max"].cast(keys.type)
    low_high = pc.min_max(keys)
    return low_high["min"], low_high["max"]


def _boundaries(sample: pa.Array, parts: int) -> pa.Array:
    """Sorted distinct quantiles of the valid keys of ``sample``, cutting it into about ``parts``."""
    keys = sample.filter(pa.array(_valid_mask(sample)))
    if len(keys) == 0 or parts < 2:
        return pa.array([], type=keys.type)
    ordered = keys.take(pc.sort_indices(keys))
    picks = ordered.take(pa.array([len(ordered) * j // parts for j in range(1, parts)], pa.int64()))
    nt = _numeric_type(keys.type)
    if nt is not None:  # distinct as numbers: -0.0 and 0.0 are one boundary
        values = _to_numpy(picks, nt)
        keep = np.r_[True, values[1:] != values[:-1]]
        return picks.filter(pa.array(keep))
    return pc.unique(picks)  # sorted input: stays sorted


def _partition_ids(keys: pa.Array, bounds: pa.Array) -> np.ndarray:
    """Each key's region among the boundaries ``b``: ``< b[0]``, ``= b[0]``, ``(b[0], b[1])``, ``= b[1]``, ...

    A key below ``b[j]`` and above ``b[j - 1]`` is in region ``2 j``, a key equal to ``b[j]`` in
    ``2 j + 1`` (so a value frequent enough to be a boundary gets a region of its own), and null and
    NaN keys in the last, ``2 len(b) + 1``.
    """
    m = len(bounds)
    ids = np.full(len(keys), 2 * m + 1, dtype=np.int64)
    valid = _valid_mask(keys)
    values = keys.filter(pa.array(valid)) if not valid.all() else keys
    nt = _numeric_type(keys.type)
    if nt is not None:  # numbers: -0.0 and 0.0 are equal
        b, v = _to_numpy(bounds, nt), _to_numpy(values, nt)
        below = np.searchsorted(b, v, side="left")
        equal = b[np.minimum(below, m - 1)] == v if m else np.zeros(len(v), dtype=bool)
    else:  # any sortable type: sort keys and boundaries together, a boundary after equal keys
        n = len(values)
        both = pa.table({"k": pa.chunked_array([values, bounds], type=keys.type),
                         "b": np.r_[np.zeros(n, np.int8), np.ones(m, np.int8)]})
        order = pc.sort_indices(both, sort_keys=[("k", "ascending"), ("b", "ascending")]).to_numpy()
        is_bound = both.column("b").to_numpy()[order]
        below = np.empty(n, dtype=np.int64)
        below[order[is_bound == 0]] = np.cumsum(is_bound)[is_bound == 0]
        equal = np.zeros(n, dtype=bool)
        if m:
            at = bounds.take(pa.array(np.minimum(below, m - 1)))
            equal = np.asarray(pc.equal(values, at).to_numpy(zero_copy_only=False), dtype=bool)
    ids[valid] = 2 * below + equal
    return ids


def _no(t: pa.DataType) -> bool:
    return False


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch of these (``pa.concat_batches`` where pyarrow has it, >= 19)."""
    if hasattr(pa, "concat_batches"):
        return pa.concat_batches(batches)
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]  # pragma: no cover


def _plain_type(t: pa.DataType) -> pa.DataType:
    """``t`` with view types as their large forms (pyarrow cannot take or filter views yet)."""
    if pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary_view(t):
        return pa.large_binary()
    if getattr(pa.types, "is_list_view", _no)(t) or getattr(pa.types, "is_large_list_view", _no)(t):
        return pa.large_list(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in t])
    if pa.types.is_dictionary(t):  # Polars' Categorical: dictionary<string_view, uint32>
        return pa.dictionary(t.index_type, _plain_type(t.value_type), t.ordered)
    return t


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema], metadata=schema.metadata)


def _plain(data: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.RecordBatch | pa.Table:
    """``data`` with its view columns cast to ``schema`` (the others untouched, not copied)."""
    if data.schema.equals(schema):
        return data
    columns = [c if c.type.equals(f.type) else c.cast(f.type) for c, f in zip(data.columns, schema, strict=True)]
    return type(data).from_arrays(columns, schema=schema)


# -- spill files ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Batch:
    """One record batch of a spill file: its index, rows, size and first/last row numbers."""

    index: int
    num_rows: int
    nbytes: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class _Part:
    """A written partition: its file, batches, and the min/max of its valid keys (None: no key)."""

    path: str
    batches: tuple[_Batch, ...]
    low: pa.Scalar | None
    high: pa.Scalar | None

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.batches)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One chunk: batches of one or more spill files (several: rows re-sorted by row number)."""

    pieces: tuple[tuple[str, tuple[_Batch, ...]], ...]
    low: pa.Scalar | None
    high: pa.Scalar | None


def _has_dictionary(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return True
    return any(_has_dictionary(t.field(i).type) for i in range(t.num_fields))


def _read_batches(path: str, schema: pa.Schema, wanted: Iterable[int]) -> Iterator[pa.RecordBatch]:
    """The batches of a spill file with these (ascending) indices."""
    wanted = list(wanted)
    if not wanted:
        return
    with pa.OSFile(path, "rb") as f:
        if _has_dictionary(pa.struct(list(schema))):  # a stream: dictionaries may change between batches
            reader = pa.ipc.open_stream(f)
            pos = 0
            for i, batch in enumerate(reader):
                if i == wanted[pos]:
                    yield batch
                    pos += 1
                    if pos == len(wanted):
                        return
            return
        file_reader = pa.ipc.open_file(f)
        for i in wanted:
            yield file_reader.get_batch(i)


class _Spiller:
    """Writes batches into range partitions, one IPC file each, buffering within the budget."""

    def __init__(self, folder: str, schema: pa.Schema, key: str | None, bounds: pa.Array | None,
                 budget: int) -> None:
        self.folder, self.schema, self.key, self.bounds = folder, schema, key, bounds
        self.count = 1 if bounds is None else 2 * len(bounds) + 2  # the last one holds null and NaN keys
        self.key_type = None if key is None else _comparable_type(schema.field(key).type)
        self.threshold = max(1, budget // (2 * self.count))
        self.stream = _has_dictionary(pa.struct(list(schema)))
        self.buffers: list[list[pa.RecordBatch]] = [[] for _ in range(self.count)]
        self.sizes = [0] * self.count
        self.writers: list[Any] = [None] * self.count
        self.paths = [""] * self.count
        self.batches: list[list[_Batch]] = [[] for _ in range(self.count)]
        self.lows: list[list[pa.Scalar]] = [[] for _ in range(self.count)]
        self.highs: list[list[pa.Scalar]] = [[] for _ in range(self.count)]
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = self.pending_bytes = 0
        self.route_bytes = max(1, budget // 4)

    def add(self, batch: pa.RecordBatch) -> None:
        """Take a batch; small ones are gathered first (the per-batch cost is in routing, not rows)."""
        if batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= _ROUTE_ROWS or self.pending_bytes >= self.route_bytes:
            self._route_pending()

    def _route_pending(self) -> None:
        if self.pending:
            batch = self.pending[0] if len(self.pending) == 1 else _concat(self.pending)
            self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
            self._route(batch)

    def _route(self, batch: pa.RecordBatch) -> None:
        if self.bounds is None:
            self._buffer(0, batch)
            return
        assert self.key is not None and self.key_type is not None
        ids = _partition_ids(_comparable(batch.column(self.key), self.key_type), self.bounds)
        order = np.argsort(ids, kind="stable")  # stable: arrival order within a partition
        counts = np.bincount(ids, minlength=self.count)
        start = 0
        for part in np.flatnonzero(counts):
            stop = start + int(counts[part])
            self._buffer(int(part), batch.take(pa.array(order[start:stop])))  # compact: no shared buffers
            start = stop

    def _buffer(self, part: int, batch: pa.RecordBatch) -> None:
        self.buffers[part].append(batch)
        self.sizes[part] += batch.nbytes
        if self.sizes[part] >= self.threshold:
            self._flush(part)

    def _flush(self, part: int) -> None:
        pieces = self.buffers[part]
        if not pieces:
            return
        batch = pieces[0] if len(pieces) == 1 else _concat(pieces)
        self.buffers[part], self.sizes[part] = [], 0
        if self.writers[part] is None:
            path = self.paths[part] = os.path.join(self.folder, f"part-{uuid.uuid4().hex}.arrow")
            new = pa.ipc.new_stream if self.stream else pa.ipc.new_file
            self.writers[part] = new(path, self.schema)
        rows = batch.column(self.schema.names[-1])
        index = len(self.batches[part])
        self.writers[part].write_batch(batch)
        self.batches[part].append(_Batch(index, batch.num_rows, batch.nbytes, rows[0].as_py(), rows[-1].as_py()))
        if self.key is not None and part < self.count - 1:
            assert self.key_type is not None
            keys = _comparable(batch.column(self.key), self.key_type)
            low, high = _min_max(keys)
            self.lows[part].append(low)
            self.highs[part].append(high)

    def finish(self) -> list[_Part | None]:
        """Flush and close everything; the partitions in key order (None: empty), nulls last."""
        self._route_pending()
        for part in range(self.count):
            self._flush(part)
        self.close()
        out: list[_Part | None] = []
        for part in range(self.count):
            if not self.batches[part]:
                out.append(None)
                continue
            low = high = None
            if self.lows[part]:
                low = _min_max(pa.array(self.lows[part], type=self.key_type))[0]
                high = _min_max(pa.array(self.highs[part], type=self.key_type))[1]
            out.append(_Part(self.paths[part], tuple(self.batches[part]), low, high))
        return out

    def close(self) -> None:
        for i, writer in enumerate(self.writers):
            if writer is not None:
                self.writers[i] = None
                writer.close()


# -- reading the source -----------------------------------------------------------------------------
class _Numbered:
    """The source's batches with row numbers appended, and the schema they get."""

    def __init__(self, reader: pa.RecordBatchReader, row_column: str) -> None:
        self.reader, self.row_column, self.next_row = reader, row_column, 0
        self.plain = _plain_schema(reader.schema)
        self.schema = self.plain.append(pa.field(row_column, pa.int64(), nullable=False))

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = self.reader.read_next_batch()
            except StopIteration:
                return
            rows = pa.array(np.arange(self.next_row, self.next_row + batch.num_rows, dtype=np.int64))
            self.next_row += batch.num_rows
            batch = _plain(batch, self.plain)
            yield pa.RecordBatch.from_arrays([*batch.columns, rows], schema=self.schema)


def _take_sample(batches: Iterator[pa.RecordBatch], budget: int) -> tuple[list[pa.RecordBatch], bool]:
    """Batches until they pass ``budget`` bytes; True if that was all of them."""
    sample: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        sample.append(batch)
        size += batch.nbytes
        if size > budget:
            return sample, False
    return sample, True


def _spill(folder: str, schema: pa.Schema, key: str | None, sample: list[pa.RecordBatch],
           rest: Iterator[pa.RecordBatch], budget: int, parts: int,
           keys: pa.Array | None = None) -> list[_Part | None]:
    """Partition ``sample`` then ``rest`` into spill files (the sample's batches let go once written),
    on boundaries drawn from ``keys`` (default: the sample's keys)."""
    bounds = None
    if key is not None:
        key_type = _comparable_type(schema.field(key).type)
        if keys is None:
            keys = pa.concat_arrays([_comparable(b.column(key), key_type) for b in sample] or [pa.array([], key_type)])
        bounds = _boundaries(keys, parts)
        del keys
    spiller = _Spiller(folder, schema, key, bounds, budget)
    try:
        sample.reverse()  # pop from the end: each batch let go once written, in arrival order
        while sample:
            spiller.add(sample.pop())
        for batch in rest:
            spiller.add(batch)
        return spiller.finish()
    finally:
        spiller.close()


def _split_large(folder: str, schema: pa.Schema, key: str, part: _Part, budget: int,
                 depth: int) -> list[_Part]:
    """``part`` partitioned again (from a sample of all its keys) while larger than the budget and splittable."""
    if part.nbytes <= budget or depth >= _MAX_DEPTH or pc.equal(part.low, part.high).as_py():
        return [part]
    # boundaries from every n-th key of it all, not its first bytes: when keys arrive sorted (sequential
    # ids) those hold only its lowest keys, and each level peeled off one sample's worth
    step, key_type = max(1, math.ceil(part.nbytes / budget)), _comparable_type(schema.field(key).type)
    keys = pa.concat_arrays([_comparable(b.column(key), key_type)[::step] for b in _read_batches(
        part.path, schema, (b.index for b in part.batches))] or [pa.array([], key_type)])
    batches = _read_batches(part.path, schema, (b.index for b in part.batches))
    parts = min(_MAX_PARTS, max(2, 2 * math.ceil(part.nbytes / budget)))
    new = [p for p in _spill(folder, schema, key, [], batches, budget, parts, keys)[:-1] if p is not None]
    remove_scratch(part.path)
    if len(new) < 2:  # nothing split (the sample had one key value): keep it as it is
        return new
    return [q for p in new for q in _split_large(folder, schema, key, p, budget, depth + 1)]


def _group(parts: list[_Part], budget: int, by_key: bool) -> list[_Chunk]:
    """Chunks of about ``budget`` bytes: whole adjacent partitions (by key) or batch runs (by arrival)."""
    chunks: list[_Chunk] = []
    if by_key:
        run: list[_Part] = []
        for part in [*parts, None]:
            if run and (part is None or sum(p.nbytes for p in run) + part.nbytes > budget):
                chunks.append(_Chunk(tuple((p.path, p.batches) for p in run), run[0].low, run[-1].high))
                run = []
            if part is not None:
                run.append(part)
        return chunks
    for part in parts:
        group: list[_Batch] = []
        size = 0
        for batch in [*part.batches, None]:
            if group and (batch is None or size + batch.nbytes > budget):
                chunks.append(_Chunk(((part.path, tuple(group)),), None, None))
                group, size = [], 0
            if batch is not None:
                group.append(batch)
                size += batch.nbytes
    return chunks


# -- the public object ------------------------------------------------------------------------------
class MergeSource:
    """A merge's source, numbered and held in key-range chunks (in memory, or spilled to local disk).

    Build it with :meth:`of`; use it as a context manager or call :meth:`close` (also run when the
    object is garbage-collected) to remove its temporary files. It does not change after :meth:`of`.

    Attributes:
        schema: the source's schema (view types as their large forms) plus the row-number column
            (last, ``int64`` not null).
        num_rows: rows read.
        num_chunks: chunks (1 when nothing was spilled, an empty source too).
        spilled: whether the rows are in temporary files.
        key: the column chunks are partitioned on (None: arrival-order chunks).
        row_column: the name of the row-number column.

    Example:
        >>> import pyarrow as pa
        >>> table = pa.table({"id": list(range(1000))[::-1], "v": ["x"] * 1000})
        >>> with MergeSource.of(table, "id", budget=4096) as src:
        ...     src.spilled, src.num_rows, src.chunk_bounds(0)[0].as_py(), src.rows([5, 0]).column("id").to_pylist()
        (True, 1000, 0, [994, 999])
    """

    __slots__ = ("__weakref__", "_bounds", "_chunks", "_closed", "_finalizer", "_key", "_num_rows",
                 "_row_column", "_schema", "_table")

    def __init__(self, *, schema: pa.Schema, key: str | None, row_column: str, num_rows: int,
                 table: pa.Table | None = None, chunks: list[_Chunk] | None = None,
                 folder: str | None = None) -> None:
        self._schema, self._key, self._row_column, self._num_rows = schema, key, row_column, num_rows
        self._table = table
        self._chunks = tuple(chunks or ())
        self._closed = False
        self._finalizer = weakref.finalize(self, remove_scratch, folder) if folder else None
        self._bounds = self._memory_bounds() if table is not None else None

    @property
    def schema(self) -> pa.Schema:
        """The source's schema (view types as their large forms) plus the row-number column, last."""
        return self._schema

    @property
    def num_rows(self) -> int:
        """Rows read from the source."""
        return self._num_rows

    @property
    def num_chunks(self) -> int:
        """Chunks: 1 when nothing was spilled (an empty source too)."""
        return 1 if self._table is not None else len(self._chunks)

    @property
    def spilled(self) -> bool:
        """Whether the rows are in temporary files (else one in-memory chunk)."""
        return self._finalizer is not None

    @property
    def key(self) -> str | None:
        """The column chunks are partitioned on (None: arrival-order chunks)."""
        return self._key

    @property
    def row_column(self) -> str:
        """The name of the ``int64`` row-number column."""
        return self._row_column

    @classmethod
    def of(cls, source: Any, key: str | None, *, budget: int, row_column: str = "__row__") -> MergeSource:
        """Read an Arrow-shaped source once, streaming, into chunks of about ``budget`` bytes.

        Args:
            source: a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader``, or anything with
                ``__arrow_c_stream__`` (pandas, Polars, a DuckDB relation).
            key: the column to range-partition on when spilling (the first join key); None for
                arrival-order chunks.
            budget: bytes (Arrow ``nbytes``) of source held in memory at once; a source no larger is
                held in memory as one chunk.
            row_column: the name of the appended ``int64`` row-number column (0..n-1, arrival order).

        Returns:
            The source, its temporary files (if any) removed by :meth:`close`.

        Raises:
            InvalidDataError: ``source`` is not Arrow-shaped.
            ColumnNotFoundError: ``key`` is not a column of the source.
            InvalidArgumentError: ``budget`` is not positive, ``row_column`` is already a source
                column, or the key column's type cannot be sorted.

        Example:
            >>> import pyarrow as pa
            >>> reader = pa.RecordBatchReader.from_batches(
            ...     pa.schema([("k", pa.string())]), [pa.record_batch({"k": ["b", None, "a"] * 100})])
            >>> with MergeSource.of(reader, "k", budget=500) as src:
            ...     [src.chunk_bounds(i) for i in range(src.num_chunks)][-1]
            (None, None)
        """
        budget = check_int(budget, "budget", minimum=1)
        row_column = check_str(row_column, "row_column")
        if key is not None:
            key = check_str(key, "key")
        reader = to_reader(source)
        if key is not None and key not in reader.schema.names:
            raise ColumnNotFoundError(key, available=list(reader.schema.names))
        if row_column in reader.schema.names:
            raise InvalidArgumentError(f"row_column {row_column!r} is already a column of the merge source",
                                       argument="row_column")
        if key is not None:
            _check_sortable(key, reader.schema.field(key).type)
        if isinstance(source, pa.Table) and source.nbytes <= budget:  # as it is: no copy
            rows = pa.array(np.arange(source.num_rows, dtype=np.int64))
            table = _plain(source, _plain_schema(source.schema))
            table = table.append_column(pa.field(row_column, pa.int64(), nullable=False), rows)
            return cls(schema=table.schema, key=key, row_column=row_column, num_rows=table.num_rows, table=table)
        numbered = _Numbered(reader, row_column)
        batches = iter(numbered)
        sample, complete = _take_sample(batches, budget)
        if complete:
            table = pa.Table.from_batches(sample, schema=numbered.schema)
            return cls(schema=numbered.schema, key=key, row_column=row_column, num_rows=table.num_rows, table=table)
        parts = _STREAMED_PARTS
        if isinstance(source, pa.Table):
            parts = min(_MAX_PARTS, max(2, 4 * math.ceil(source.nbytes / budget)))
        folder = make_scratch("merge-source")
        try:
            chunks = _spill_chunks(folder, numbered.schema, key, sample, batches, budget, parts)
        except BaseException:
            remove_scratch(folder)
            raise
        return cls(schema=numbered.schema, key=key, row_column=row_column, num_rows=numbered.next_row,
                   chunks=chunks, folder=folder)

    # -- reading ------------------------------------------------------------------------------------
    def chunk(self, i: int) -> pa.Table:
        """The rows of chunk ``i`` (arrival order), read again from disk each time if spilled.

        Args:
            i: the chunk, ``0 <= i < num_chunks``.

        Returns:
            The chunk's rows, with the row-number column.

        Raises:
            InvalidArgumentError: ``i`` is out of range, or the source is closed.

        Example:
            >>> import pyarrow as pa
            >>> MergeSource.of(pa.table({"a": [7]}), None, budget=100).chunk(0).to_pylist()
            [{'a': 7, '__row__': 0}]
        """
        i = self._check_chunk(i)
        if self._table is not None:
            return self._table
        c = self._chunks[i]
        batches = [b for path, bs in c.pieces for b in _read_batches(path, self.schema, (x.index for x in bs))]
        table = pa.Table.from_batches(batches, schema=self.schema)
        if len(c.pieces) > 1:  # several partitions: back to arrival order
            table = table.take(pc.sort_indices(table.column(self.row_column)))
        return table

    def chunks(self) -> Iterator[pa.Table]:
        """The chunks in order, each read when reached.

        Yields:
            Each chunk's rows, as :meth:`chunk` returns them.

        Example:
            >>> import pyarrow as pa
            >>> [c.num_rows for c in MergeSource.of(pa.table({"a": [1, 2]}), "a", budget=100).chunks()]
            [2]
        """
        for i in range(self.num_chunks):
            yield self.chunk(i)

    def chunk_bounds(self, i: int) -> tuple[pa.Scalar | None, pa.Scalar | None]:
        """The lowest and highest key of chunk ``i``, nulls and NaN left out.

        Args:
            i: the chunk, ``0 <= i < num_chunks``.

        Returns:
            ``(min, max)`` as scalars of the key's type (a dictionary key: of its values' type), or
            ``(None, None)`` when there is no key or the chunk has no key but nulls and NaN.

        Raises:
            InvalidArgumentError: ``i`` is out of range, or the source is closed.

        Example:
            >>> import pyarrow as pa
            >>> low, high = MergeSource.of(pa.table({"a": [2, None, 1]}), "a", budget=100).chunk_bounds(0)
            >>> low.as_py(), high.as_py()
            (1, 2)
        """
        i = self._check_chunk(i)
        if self._bounds is not None:
            return self._bounds
        c = self._chunks[i]
        return self._key_scalar(c.low), self._key_scalar(c.high)

    def rows(self, row_numbers: Any) -> pa.Table:
        """The rows with these row numbers, in the order given (repeats allowed).

        Only the spilled batches that can hold them are read, each file once.

        Args:
            row_numbers: integer row numbers (a numpy array, list or pyarrow integer array).

        Returns:
            The rows, with the row-number column.

        Raises:
            InvalidArgumentError: a row number is out of range, or the source is closed.

        Example:
            >>> import pyarrow as pa
            >>> MergeSource.of(pa.table({"a": [5, 6, 7]}), "a", budget=100).rows([2, 0]).column("a").to_pylist()
            [7, 5]
        """
        wanted = self._check_rows(row_numbers)
        if self._table is not None:
            return self._table.take(pa.array(wanted))
        unique = np.unique(wanted)
        found: list[pa.RecordBatch] = []
        for c in self._chunks:
            for path, bs in c.pieces:
                hit = [b.index for b in bs if _any_between(unique, b.first, b.last)]
                for batch in _read_batches(path, self.schema, hit):
                    mask = np.isin(batch.column(self.row_column).to_numpy(), unique)
                    if mask.any():
                        found.append(batch.filter(pa.array(mask)))
        table = pa.Table.from_batches(found, schema=self.schema)
        table = table.take(pc.sort_indices(table.column(self.row_column)))
        position = np.searchsorted(table.column(self.row_column).to_numpy(), wanted)
        return table.take(pa.array(position))

    # -- lifetime -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Remove the temporary files (idempotent; also run at garbage collection and by ``with``).

        Example:
            >>> import pyarrow as pa
            >>> src = MergeSource.of(pa.table({"a": [1]}), "a", budget=100)
            >>> src.close(); src.close()
        """
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> MergeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("spilled" if self.spilled else "in memory")
        return f"MergeSource({self.num_rows} rows, {self.num_chunks} chunks on {self.key!r}, {state})"

    # -- helpers ------------------------------------------------------------------------------------
    def _check_chunk(self, i: int) -> int:
        if self._closed:
            raise InvalidArgumentError("the merge source is closed", argument="self")
        return check_int(i, "i", minimum=0, maximum=self.num_chunks - 1)

    def _check_rows(self, row_numbers: Any) -> np.ndarray:
        if self._closed:
            raise InvalidArgumentError("the merge source is closed", argument="self")
        if isinstance(row_numbers, (pa.Array, pa.ChunkedArray)):
            row_numbers = row_numbers.to_numpy(zero_copy_only=False)
        wanted = np.asarray(row_numbers)
        if wanted.size == 0:
            wanted = wanted.astype(np.int64)
        if wanted.ndim != 1 or not np.issubdtype(wanted.dtype, np.integer):
            raise InvalidArgumentError(f"row_numbers must be a 1-d array of integers, got {wanted.dtype} "
                                       f"of shape {wanted.shape}", argument="row_numbers")
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.num_rows):
            bad = wanted[(wanted < 0) | (wanted >= self.num_rows)][0]
            raise InvalidArgumentError(f"row number {int(bad)} is out of range (the source has {self.num_rows} rows)",
                                       argument="row_numbers")
        return wanted.astype(np.int64, copy=False)

    def _key_scalar(self, value: pa.Scalar | None) -> pa.Scalar | None:
        if value is None or not value.is_valid or self.key is None:
            return None
        t = self.schema.field(self.key).type
        t = t.value_type if pa.types.is_dictionary(t) else t
        return value if value.type.equals(t) else value.cast(t)

    def _memory_bounds(self) -> tuple[pa.Scalar | None, pa.Scalar | None]:
        if self.key is None or self._table is None:
            return None, None
        keys = _comparable(self._table.column(self.key), _comparable_type(self.schema.field(self.key).type))
        low, high = _min_max(keys.filter(pa.array(_valid_mask(keys))))
        return self._key_scalar(low), self._key_scalar(high)


def _any_between(sorted_values: np.ndarray, low: int, high: int) -> bool:
    i = np.searchsorted(sorted_values, low, side="left")
    return bool(i < len(sorted_values) and sorted_values[i] <= high)


def _check_sortable(key: str, t: pa.DataType) -> None:
    try:
        pc.sort_indices(pa.array([], type=_comparable_type(t)))
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        raise InvalidArgumentError(f"merge key column {key!r} ({t}) cannot be sorted, so it cannot be "
                                   f"range-partitioned", argument="key") from None


def _spill_chunks(folder: str, schema: pa.Schema, key: str | None, sample: list[pa.RecordBatch],
                  rest: Iterator[pa.RecordBatch], budget: int, parts: int) -> list[_Chunk]:
    """Spill everything and group it into chunks: key ranges in order, then null and NaN keys."""
    written = _spill(folder, schema, key, sample, rest, budget, parts if key is not None else 1)
    if key is None:
        return _group([p for p in written if p is not None], budget, by_key=False)
    ranges = [q for p in written[:-1] if p is not None for q in _split_large(folder, schema, key, p, budget, 0)]
    nulls = [written[-1]] if written[-1] is not None else []
    return _group(ranges, budget, by_key=True) + _group(nulls, budget, by_key=False)
