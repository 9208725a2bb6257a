"""The transaction log: frozen commit actions and their explicit msgpack codec.

One entry per version, ``_lakehouse_log/<version:020d>.msgpack``: a checksummed envelope
``{"format": 1, "crc32": crc, "body": <msgpack bytes>}`` whose body holds one commit's actions (see
``docs/format.md``). Decoding validates every shape: a damaged or foreign file raises ``CorruptLogError``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pyarrow as pa

from .errors import CorruptLogError, InvalidArgumentError, UnsupportedFormatError
from .schema import check_mapping, check_partition_columns, max_field_id

__all__ = [
    "CHECKPOINT_POINTER",
    "DELETION_VECTORS_VERSION",
    "FORMAT_VERSION",
    "INT64_MAX",
    "LOG_DIR",
    "MAX_INLINE_VECTOR_BYTES",
    "MAX_VECTOR_BYTES",
    "VECTOR_DIR",
    "READER_VERSION",
    "WRITER_VERSION",
    "AddFile",
    "AppTransaction",
    "CommitInfo",
    "DeletionVectorDescriptor",
    "LogEntry",
    "Metadata",
    "Protocol",
    "RemoveFile",
    "checkpoint_name",
    "decode_entry",
    "decode_metadata",
    "encode_entry",
    "encode_metadata",
    "entry_name",
    "parse_log_name",
    "seal",
    "unseal",
    "validate_data_path",
    "validate_data_paths",
    "validate_vector_path",
]

FORMAT_VERSION = 1
"""Version of the envelope of log entries and checkpoints."""
READER_VERSION = 4
"""The highest ``min_reader_version`` this library can read (2: column mapping, 3: exact restores, 4: DVs)."""
WRITER_VERSION = 4
"""The highest ``min_writer_version`` this library can write (as :data:`READER_VERSION`; format.md §5.2)."""
DELETION_VECTORS_VERSION = 4
"""The reader and writer protocol version that introduces deletion vectors (format.md §5.2)."""
VECTOR_DIR = "_deletion_vectors"
"""The folder, under the table root, of deletion-vector files (format.md §3, §5.8)."""
MAX_INLINE_VECTOR_BYTES = 4096
"""A deletion vector whose serialized bytes are at most this long is inlined in the log (format §5.8)."""
MAX_VECTOR_BYTES = 1 << 28
"""The largest serialized deletion vector readers read (256 MiB; format §5.8, §15)."""
LOG_DIR = "_lakehouse_log"
CHECKPOINT_POINTER = f"{LOG_DIR}/_last_checkpoint"
_VECTOR_PATH = re.compile(r"_deletion_vectors/dv-[0-9a-f]{32}\.bin\Z")
_NAME = re.compile(r"^(\d{20})\.(msgpack|checkpoint\.arrow)$")
_UNPACK_LIMITS: dict[str, int] = {
    "max_str_len": 64 << 20, "max_bin_len": 1 << 30, "max_array_len": 1 << 26, "max_map_len": 1 << 24,
}


def entry_name(version: int) -> str:
    """Relative path of the log entry for ``version``.

    Args:
        version: the table version.

    Returns:
        The path, relative to the table root.

    Example:
        >>> entry_name(7)
        '_lakehouse_log/00000000000000000007.msgpack'
    """
    return f"{LOG_DIR}/{version:020d}.msgpack"


def checkpoint_name(version: int) -> str:
    """Relative path of the checkpoint at ``version``.

    Args:
        version: the table version.

    Returns:
        The path, relative to the table root.

    Example:
        >>> checkpoint_name(100)
        '_lakehouse_log/00000000000000000100.checkpoint.arrow'
    """
    return f"{LOG_DIR}/{version:020d}.checkpoint.arrow"


def parse_log_name(name: str) -> tuple[int, str] | None:
    """``(version, "entry" | "checkpoint")`` for a file name in the log folder, else None.

    Args:
        name: a file name in ``_lakehouse_log`` (no folder).

    Returns:
        The version and kind of the file, or None if ``name`` is neither an entry nor a checkpoint.

    Example:
        >>> parse_log_name("00000000000000000100.checkpoint.arrow")
        (100, 'checkpoint')
    """
    m = _NAME.match(name)
    if m is None:
        return None
    return int(m.group(1)), "entry" if m.group(2) == "msgpack" else "checkpoint"


# -- the actions -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Protocol:
    """The reader and writer versions a client needs to read or write the table.

    Attributes:
        min_reader_version: the lowest reader protocol version that can read the table.
        min_writer_version: the lowest writer protocol version that can write it.
    """

    min_reader_version: int = 1
    min_writer_version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Metadata:
    """Table metadata: identity, schema, partitioning and properties.

    Attributes:
        table_id: the table's unique id (fixed at creation).
        schema: the schema, with column-mapping field metadata (see ``lakehouse.schema``).
        partition_by: the partition columns, in order.
        properties: the table properties (strings).
        created_time: creation time, in milliseconds since the epoch.
        last_field_id: the highest field id ever given (ids are never reused).
        dropped_physical: the physical paths of dropped fields (never reused).
    """

    table_id: str
    schema: pa.Schema
    partition_by: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    created_time: int = 0
    last_field_id: int = 0
    dropped_physical: tuple[tuple[str, ...], ...] = ()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Metadata)
            and self.table_id == other.table_id
            and self.schema.equals(other.schema, check_metadata=True)
            and self.partition_by == other.partition_by
            and dict(self.properties) == dict(other.properties)
            and self.created_time == other.created_time
            and self.last_field_id == other.last_field_id
            and self.dropped_physical == other.dropped_physical
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletionVectorDescriptor:
    """Where a deletion vector's bytes are (format.md §5.8): inline, or a byte range of a vector file.

    Attributes:
        cardinality: the number of row positions it holds.
        inline: the serialized vector (at most :data:`MAX_INLINE_VECTOR_BYTES`), or None.
        path: the vector file (``_deletion_vectors/dv-<32 hex>.bin``) if not inlined.
        offset: where the vector's 4-byte size field starts in ``path``.
        size: the serialized vector's length in ``path``, in bytes.

    Example:
        >>> DeletionVectorDescriptor(cardinality=2, inline=b"...").is_inline
        True
    """

    cardinality: int
    inline: bytes | None = None
    path: str | None = None
    offset: int = 0
    size: int = 0

    @property
    def is_inline(self) -> bool:
        """True if the bytes are in the log itself."""
        return self.inline is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddFile:
    """A data file joining the table. Values are log-encoded (see ``lakehouse.schema``).

    Attributes:
        path: the file's path, relative to the table root.
        size_bytes: the file's size.
        num_rows: the file's row count (deleted rows included).
        modification_time: when the file was written, in milliseconds since the epoch.
        partition: the log-encoded partition values, in ``partition_by`` order.
        min: column -> log-encoded minimum value.
        max: column -> log-encoded maximum value.
        null_count: column -> null count (None if unknown).
        deletion_vector: the rows of the file that are deleted (format §5.8), None if none are.
        carried_rows: leading rows carried over unchanged from files the commit removes (§5.3), or None.
    """

    path: str
    size_bytes: int
    num_rows: int
    modification_time: int
    partition: tuple[Any, ...] = ()
    min: Mapping[str, Any] = field(default_factory=dict)
    max: Mapping[str, Any] = field(default_factory=dict)
    null_count: Mapping[str, int | None] = field(default_factory=dict)
    deletion_vector: DeletionVectorDescriptor | None = None
    carried_rows: int | None = None

    @property
    def num_deleted_rows(self) -> int:
        """The rows of the file its deletion vector deletes (0 without one)."""
        return 0 if self.deletion_vector is None else self.deletion_vector.cardinality


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveFile:
    """A data file leaving the table (still readable by older versions until vacuumed).

    Attributes:
        path: the file's path, relative to the table root.
        deletion_time: when it was removed, in milliseconds since the epoch.
        size_bytes: the file's size.
        num_rows: the file's row count.
        num_deleted_rows: its deletion vector's cardinality when removed (live rows: the difference).
        dropped_rows: the rows this commit dropped (change-feed lineage, format §5.4), or None.
    """

    path: str
    deletion_time: int
    size_bytes: int = 0
    num_rows: int = 0
    num_deleted_rows: int = 0
    dropped_rows: DeletionVectorDescriptor | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppTransaction:
    """An idempotent writer's progress marker: ``app_id`` has applied ``version``.

    Attributes:
        app_id: the writer's id.
        version: the writer's own version it has applied.
    """

    app_id: str
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitInfo:
    """Who committed what, when: one per log entry.

    Attributes:
        id: the commit's unique id.
        timestamp: commit time, in milliseconds since the epoch.
        operation: the operation's name (``append``, ``delete``, ...).
        parameters: the operation's parameters.
        read_version: the version the commit was based on, or None.
        blind_append: True if the commit only adds files without reading.
        lakehouse_version: the version of lakehouse that wrote it.
        data_change: False for a commit that only rearranges rows (optimize, folding DVs; format §5.6).
    """

    id: str
    timestamp: int
    operation: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    read_version: int | None = None
    blind_append: bool = False
    lakehouse_version: str = ""
    data_change: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    """All actions of one commit.

    Attributes:
        version: the table version it creates.
        commit: who committed what, when.
        protocol: a new protocol, or None.
        metadata: new metadata, or None.
        add: the files joining the table.
        remove: the files leaving it.
        txn: idempotent writers' progress markers.
    """

    version: int
    commit: CommitInfo
    protocol: Protocol | None = None
    metadata: Metadata | None = None
    add: tuple[AddFile, ...] = ()
    remove: tuple[RemoveFile, ...] = ()
    txn: tuple[AppTransaction, ...] = ()


# -- envelope ----------------------------------------------------------------------------------
def seal(body: bytes) -> bytes:
    """Wrap ``body`` in the checksummed envelope.

    Args:
        body: the bytes to wrap.

    Returns:
        The envelope's msgpack bytes.

    Example:
        >>> unseal(seal(b"abc"), path="x")
        b'abc'
    """
    return msgpack.packb({"format": FORMAT_VERSION, "crc32": zlib.crc32(body), "body": body})


def unseal(data: bytes, *, path: str) -> bytes:
    """Check the envelope and return its body; ``CorruptLogError`` naming ``path`` if damaged.

    Args:
        data: the file's bytes.
        path: the file's name, for errors.

    Returns:
        The body.

    Example:
        >>> unseal(seal(b"x"), path="x")
        b'x'
    """
    try:
        env = msgpack.unpackb(data, raw=False, strict_map_key=True, **_UNPACK_LIMITS)
    except Exception as exc:
        raise CorruptLogError(f"undecodable envelope ({exc})", path=path) from None
    if not isinstance(env, dict) or not isinstance(env.get("format"), int):
        raise CorruptLogError("not a lakehouse log file", path=path)
    if env["format"] < 1:
        raise CorruptLogError(f"invalid format number {env['format']}", path=path)
    if env["format"] > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"written in format {env['format']}; this lakehouse reads up to {FORMAT_VERSION}: upgrade lakehouse",
            path=path,
        )
    body, crc = env.get("body"), env.get("crc32")
    if not isinstance(body, bytes) or not isinstance(crc, int):
        raise CorruptLogError("envelope lacks body or checksum", path=path)
    if zlib.crc32(body) != crc:
        raise CorruptLogError("checksum mismatch", path=path)
    return body


# -- encode --------------------------------------------------------------------------------------
def encode_metadata(m: Metadata) -> dict[str, Any]:
    """Metadata as a msgpack-ready map (the schema as Arrow IPC bytes).

    Args:
        m: the metadata.

    Returns:
        A map of msgpack-ready values.

    Example:
        >>> encode_metadata(Metadata(table_id="t1", schema=pa.schema([])))["table_id"]
        't1'
    """
    return {
        "table_id": m.table_id,
        "schema": m.schema.serialize().to_pybytes(),
        "partition_by": list(m.partition_by),
        "properties": dict(m.properties),
        "created_time": m.created_time,
        **({"last_field_id": m.last_field_id} if m.last_field_id else {}),
        **({"dropped_physical": [list(p) for p in m.dropped_physical]} if m.dropped_physical else {}),
    }


def _encode_vector(d: DeletionVectorDescriptor) -> dict[str, Any]:
    if d.inline is not None:
        return {"inline": bytes(d.inline), "cardinality": d.cardinality}
    return {"path": d.path, "offset": d.offset, "size": d.size, "cardinality": d.cardinality}


def _encode_add(a: AddFile) -> dict[str, Any]:
    out = {
        "path": a.path, "size_bytes": a.size_bytes, "num_rows": a.num_rows,
        "modification_time": a.modification_time, "partition": list(a.partition),
        "min": dict(a.min), "max": dict(a.max), "null_count": dict(a.null_count),
    }
    if a.deletion_vector is not None:
        out["deletion_vector"] = _encode_vector(a.deletion_vector)
    if a.carried_rows is not None:
        out["carried_rows"] = a.carried_rows
    return out


def _encode_remove(r: RemoveFile) -> dict[str, Any]:
    out: dict[str, Any] = {"path": r.path, "deletion_time": r.deletion_time, "size_bytes": r.size_bytes,
                           "num_rows": r.num_rows}
    if r.num_deleted_rows:
        out["num_deleted_rows"] = r.num_deleted_rows
    if r.dropped_rows is not None:
        out["dropped_rows"] = _encode_vector(r.dropped_rows)
    return out


def encode_entry(entry: LogEntry) -> bytes:
    """Serialise a log entry to the bytes of its file.

    Args:
        entry: the log entry.

    Returns:
        The sealed bytes of its file.

    Example:
        >>> len(encode_entry(LogEntry(version=0, commit=CommitInfo(id="c", timestamp=0, operation="x")))) > 0
        True
    """
    c = entry.commit
    body: dict[str, Any] = {
        "version": entry.version,
        "commit": {
            "id": c.id, "timestamp": c.timestamp, "operation": c.operation,
            "parameters": dict(c.parameters), "read_version": c.read_version,
            "blind_append": c.blind_append, "lakehouse_version": c.lakehouse_version,
            **({} if c.data_change else {"data_change": False}),
        },
    }
    if entry.protocol is not None:
        body["protocol"] = {
            "min_reader_version": entry.protocol.min_reader_version,
            "min_writer_version": entry.protocol.min_writer_version,
        }
    if entry.metadata is not None:
        body["metadata"] = encode_metadata(entry.metadata)
    if entry.add:
        body["add"] = [_encode_add(a) for a in entry.add]
    if entry.remove:
        body["remove"] = [_encode_remove(r) for r in entry.remove]
    if entry.txn:
        body["txn"] = [{"app_id": t.app_id, "version": t.version} for t in entry.txn]
    return seal(msgpack.packb(body, use_bin_type=True))


# -- decode --------------------------------------------------------------------------------------
class _Bad(Exception):
    """Internal: shape violation, turned into CorruptLogError with the path."""


def _get(d: Mapping[str, Any], key: str, typ: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if key not in d:
        if optional:
            return None
        raise _Bad(f"missing field {key!r}")
    v = d[key]
    if optional and v is None:
        return None
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise _Bad(f"field {key!r} has type {type(v).__name__}")
    return v


INT64_MAX = (1 << 63) - 1
"""The largest count, size, version or timestamp the log holds (they are Arrow int64 columns)."""


def validate_data_path(path: str) -> str:
    """Return ``path`` if it is a safe relative data path (format §3), as readers and ``commit_files`` check.

    Args:
        path: the path to check.

    Returns:
        ``path``, unchanged.

    Raises:
        InvalidArgumentError: if empty, absolute, a URL, or with a backslash, control character or ``..``.

    Example:
        >>> validate_data_path("day=1/part-0.parquet")
        'day=1/part-0.parquet'
    """
    if not isinstance(path, str):
        raise InvalidArgumentError(f"data path {path!r} is not a string")
    if _BAD_PATH_RE.search(path) is None:  # the fast path: one scan
        return path
    if not path or path.startswith("/") or "://" in path or ":" in path.split("/", 1)[0]:
        raise InvalidArgumentError(f"data path {path!r} is not relative to the table root")
    if "\\" in path or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise InvalidArgumentError(f"data path {path!r} holds a backslash or a control character")
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        raise InvalidArgumentError(f"data path {path!r} escapes the table root or is not normalised")
    raise InvalidArgumentError(f"data path {path!r} is not a safe relative path")


# the rules of validate_data_path as one regular expression (RE2 and Python re read it alike), for
# single paths and for whole columns of paths
_BAD_PATH = r"^$|^/|://|^[^/]*:|\\|[\x00-\x1f\x7f]|(^|/)\.{0,2}($|/)"
_BAD_PATH_RE = re.compile(_BAD_PATH)


def validate_data_paths(paths: pa.Array | pa.ChunkedArray) -> None:
    """Raise ``InvalidArgumentError`` naming the first path :func:`validate_data_path` refuses (vectorised).

    Args:
        paths: a string array of data paths.

    Example:
        >>> validate_data_paths(pa.array(["a/b.parquet", "c.parquet"]))
    """
    import pyarrow.compute as pc

    bad = pc.match_substring_regex(paths, _BAD_PATH)
    if paths.null_count or pc.any(bad).as_py():
        if paths.null_count:
            raise InvalidArgumentError("a data path is null")
        first = pc.index(bad, True).as_py()
        validate_data_path(paths[first].as_py())
        raise InvalidArgumentError(f"data path {paths[first].as_py()!r} is not a safe relative path")


def _decode_metadata(d: Any) -> Metadata:
    if not isinstance(d, dict):
        raise _Bad("metadata is not a map")
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(_get(d, "schema", bytes)))
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise _Bad(f"unreadable schema ({exc})") from None
    parts = _get(d, "partition_by", list)
    props = _get(d, "properties", dict)
    if not all(isinstance(p, str) for p in parts) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in props.items()
    ):
        raise _Bad("partition_by and properties must hold strings")
    try:
        check_mapping(schema)
    except ValueError as exc:
        raise _Bad(f"invalid column mapping ({exc})") from None
    if len(set(schema.names)) != len(schema.names):
        raise _Bad(f"the schema repeats column names: {schema.names}")
    if parts:  # a partition column must exist, once, with a type that can partition (format §5.1)
        try:
            check_partition_columns(schema, parts)
        except ValueError as exc:
            raise _Bad(f"invalid partition_by ({exc})") from None
    last = _get(d, "last_field_id", int, optional=True) or 0
    dropped = _get(d, "dropped_physical", list, optional=True) or []
    if not all(isinstance(p, list) and p and all(isinstance(s, str) for s in p) for p in dropped):
        raise _Bad("dropped_physical must hold non-empty lists of strings")
    return Metadata(
        table_id=_get(d, "table_id", str), schema=schema, partition_by=tuple(parts),
        properties=props, created_time=_get(d, "created_time", int),
        last_field_id=max(last, max_field_id(schema)), dropped_physical=tuple(tuple(p) for p in dropped),
    )


def decode_metadata(d: Any) -> Metadata:
    """Inverse of :func:`encode_metadata`; ``CorruptLogError`` if ``d`` is not valid metadata.

    Args:
        d: the decoded msgpack map.

    Returns:
        The metadata.

    Example:
        >>> decode_metadata(encode_metadata(Metadata(table_id="t1", schema=pa.schema([])))).table_id
        't1'
    """
    try:
        return _decode_metadata(d)
    except _Bad as exc:
        raise CorruptLogError(str(exc)) from None


_ADD_FIELDS = (("path", str), ("size_bytes", int), ("num_rows", int), ("modification_time", int),
               ("partition", list), ("min", dict), ("max", dict), ("null_count", dict))


def _fields(d: Any, spec: tuple[tuple[str, type], ...], what: str) -> list[Any]:
    """The values of ``spec``'s keys in ``d``, type-checked (the hot path of opening a table)."""
    try:
        values = [d[k] for k, _ in spec]
    except (KeyError, TypeError, IndexError):
        raise _Bad(f"{what} lacks one of the fields {[k for k, _ in spec]}") from None
    for v, (k, t) in zip(values, spec):
        if type(v) is not t:
            raise _Bad(f"{what} field {k!r} has type {type(v).__name__}")
    return values


def _count(value: int, what: str, *, low: int = 0) -> int:
    """``value`` if it lies in ``low .. INT64_MAX`` (the range of the files table's int64 columns)."""
    if not low <= value <= INT64_MAX:
        raise _Bad(f"{what} {value} is outside {low}..{INT64_MAX}")
    return value


def _decode_add(d: Any) -> AddFile:
    path, size, rows, mtime, part, lo, hi, nulls = _fields(d, _ADD_FIELDS, "add")
    try:
        validate_data_path(path)
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    # the ranges of the counts (int64, non-negative, null counts within num_rows) are checked on the
    # whole files table at once (state.adds_to_table): per action they would double the decoding time
    vector = carried = None
    if len(d) > 8:  # the optional keys (format §5.3): absent from most actions
        vector = _decode_vector(d.get("deletion_vector"), rows, "add deletion_vector")
        carried = _get(d, "carried_rows", int, optional=True)
        if carried is not None and not 0 <= carried <= rows:
            raise _Bad(f"add carried_rows {carried} is outside 0..num_rows ({rows})")
    return AddFile(path=path, size_bytes=size, num_rows=rows, modification_time=mtime, partition=tuple(part),
                   min=lo, max=hi, null_count=nulls, deletion_vector=vector, carried_rows=carried)


def validate_vector_path(path: str) -> str:
    """Return ``path`` if it names a deletion-vector file, ``_deletion_vectors/dv-<32 hex>.bin`` (format §5.8).

    Args:
        path: the path to check.

    Returns:
        ``path``, unchanged.

    Example:
        >>> validate_vector_path("_deletion_vectors/dv-" + "0" * 32 + ".bin")[:21]
        '_deletion_vectors/dv-'
    """
    if not isinstance(path, str) or _VECTOR_PATH.match(path) is None:
        raise InvalidArgumentError(f"deletion vector path {path!r} is not named "
                                   f"{VECTOR_DIR}/dv-<32 hex digits>.bin (format §5.8)")
    return path


def _decode_vector(d: Any, num_rows: int, what: str) -> DeletionVectorDescriptor | None:
    """A deletion-vector descriptor (format §5.8), or None if ``d`` is None."""
    if d is None:
        return None
    if not isinstance(d, dict):
        raise _Bad(f"{what} is not a map")
    card = _get(d, "cardinality", int)
    if not 1 <= card <= num_rows:
        raise _Bad(f"{what} cardinality {card} is outside 1..num_rows ({num_rows})")
    inline, path = _get(d, "inline", bytes, optional=True), _get(d, "path", str, optional=True)
    if (inline is None) == (path is None):
        raise _Bad(f"{what} must have exactly one of 'inline' and 'path'")
    if inline is not None:
        if not 0 < len(inline) <= MAX_INLINE_VECTOR_BYTES:
            raise _Bad(f"{what} inline vector of {len(inline)} bytes is outside 1..{MAX_INLINE_VECTOR_BYTES}")
        return DeletionVectorDescriptor(cardinality=card, inline=inline)
    try:
        validate_vector_path(path)
    except ValueError as exc:
        raise _Bad(f"{what}: {exc}") from None
    offset, size = _get(d, "offset", int), _get(d, "size", int)
    if not 1 <= offset <= INT64_MAX or not 1 <= size <= MAX_VECTOR_BYTES:
        raise _Bad(f"{what} offset {offset} or size {size} is outside 1..{INT64_MAX} / 1..{MAX_VECTOR_BYTES}")
    return DeletionVectorDescriptor(cardinality=card, path=path, offset=offset, size=size)


def _decode_remove(d: Any) -> RemoveFile:
    if not isinstance(d, dict):
        raise _Bad("remove is not a map")
    path = _get(d, "path", str)
    try:
        validate_data_path(path)
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    rows = _count(_get(d, "num_rows", int), "remove num_rows")
    deleted = _count(_get(d, "num_deleted_rows", int, optional=True) or 0, "remove num_deleted_rows")
    if deleted > rows:
        raise _Bad(f"remove num_deleted_rows {deleted} is larger than its num_rows {rows}")
    return RemoveFile(path=path, deletion_time=_count(_get(d, "deletion_time", int), "remove deletion_time",
                                                      low=-INT64_MAX - 1),
                      size_bytes=_count(_get(d, "size_bytes", int), "remove size_bytes"), num_rows=rows,
                      num_deleted_rows=deleted,
                      dropped_rows=_decode_vector(d.get("dropped_rows"), rows, "remove dropped_rows"))


_COMMIT_FIELDS = (("id", str), ("timestamp", int), ("operation", str), ("parameters", dict),
                  ("blind_append", bool), ("lakehouse_version", str))


def _decode_commit(d: Any) -> CommitInfo:
    cid, ts, op, params, blind, lib = _fields(d, _COMMIT_FIELDS, "commit")
    _count(ts, "commit timestamp", low=-INT64_MAX - 1)
    change = _get(d, "data_change", bool, optional=True)
    return CommitInfo(id=cid, timestamp=ts, operation=op, parameters=params,
                      read_version=_get(d, "read_version", int, optional=True), blind_append=blind,
                      lakehouse_version=lib, data_change=True if change is None else change)


def _decode_protocol(d: Any) -> Protocol:
    if not isinstance(d, dict):
        raise _Bad("protocol is not a map")
    return Protocol(min_reader_version=_get(d, "min_reader_version", int),
                    min_writer_version=_get(d, "min_writer_version", int))


def _decode_body(body: dict[str, Any], version: int) -> LogEntry:
    v = _get(body, "version", int)
    if v != version:
        raise _Bad(f"holds version {v}, expected {version}")
    protocol = _decode_protocol(body["protocol"]) if "protocol" in body else None
    if protocol is not None and protocol.min_reader_version > READER_VERSION:
        raise UnsupportedFormatError(f"needs reader version {protocol.min_reader_version}; upgrade lakehouse")
    return LogEntry(
        version=v,
        commit=_decode_commit(body.get("commit")),
        protocol=protocol,
        metadata=_decode_metadata(body["metadata"]) if "metadata" in body else None,
        add=tuple(_decode_add(a) for a in _get(body, "add", list, optional=True) or ()),
        remove=tuple(_decode_remove(r) for r in _get(body, "remove", list, optional=True) or ()),
        txn=_decode_txns(_get(body, "txn", list, optional=True) or []),
    )


def _decode_txns(items: list[Any]) -> tuple[AppTransaction, ...]:
    txns = []
    for t in items:
        if not isinstance(t, dict):
            raise _Bad("txn is not a map")
        version = _count(_get(t, "version", int), "txn version", low=-INT64_MAX - 1)
        txns.append(AppTransaction(app_id=_get(t, "app_id", str), version=version))
    if len({t.app_id for t in txns}) != len(txns):
        raise _Bad("an app_id appears twice in txn")
    return tuple(txns)


def _check_action_set(entry: LogEntry) -> LogEntry:
    """Actions form a set (§4.2): no path added twice, or removed and re-added but as the same file (§5.8)."""
    added = {a.path: a for a in entry.add}
    if len(added) != len(entry.add):
        raise _Bad("a path is added twice")
    if entry.remove:
        removed = {r.path: r for r in entry.remove}
        for path in added.keys() & removed.keys():
            a, r = added[path], removed[path]
            if (a.size_bytes, a.num_rows) != (r.size_bytes, r.num_rows):
                raise _Bad(f"{path!r} is both added and removed, and the add is not the same file "
                           f"(size_bytes, num_rows {a.size_bytes}, {a.num_rows} vs {r.size_bytes}, {r.num_rows})")
    return entry


def decode_entry(data: bytes, *, path: str, version: int) -> LogEntry:
    """Parse and validate the bytes of a log entry file.

    Args:
        data: the file's bytes.
        path: the file's name, for errors.
        version: the version the entry must hold.

    Returns:
        The log entry.

    Raises:
        CorruptLogError: if the file is damaged, holds another version or needs a newer lakehouse.

    Example:
        >>> entry = LogEntry(version=3, commit=CommitInfo(id="c1", timestamp=1, operation="append"))
        >>> decode_entry(encode_entry(entry), path="x", version=3) == entry
        True
    """
    body = unseal(data, path=path)
    try:
        decoded = msgpack.unpackb(body, raw=False, strict_map_key=True, **_UNPACK_LIMITS)
        if not isinstance(decoded, dict):
            raise _Bad("body is not a map")
        return _check_action_set(_decode_body(decoded, version))
    except UnsupportedFormatError as exc:
        raise UnsupportedFormatError(str(exc), path=path) from None
    except (_Bad, TypeError, AttributeError) as exc:
        raise CorruptLogError(str(exc), path=path) from None
    except Exception as exc:
        raise CorruptLogError(f"undecodable body ({exc})", path=path) from None
