"""Checkpoints: the whole state at one version in one checksummed Arrow IPC file.

A checkpoint file is ``b"LHCKPT1\\n"``, the little-endian crc32 of the payload, then the payload:
an Arrow IPC file holding the files table, whose schema metadata ``lakehouse.state`` is the msgpack
of the rest of the state. ``_last_checkpoint`` points at the newest checkpoint (a hint only).

Example:
    >>> import pyarrow as pa
    >>> from lakehouse.log import CommitInfo, LogEntry, Metadata, Protocol
    >>> meta = Metadata(table_id="t", schema=pa.schema([("a", pa.int64())]))
    >>> s = TableState.initial([LogEntry(version=0, protocol=Protocol(), metadata=meta,
    ...                         commit=CommitInfo(id="c", timestamp=1, operation="create"))])
    >>> decode_checkpoint(encode_checkpoint(s), path="x").version
    0
"""

from __future__ import annotations

import struct
import zlib

import msgpack
import pyarrow as pa

from .errors import CorruptLogError, UnsupportedFormatError
from .log import (
    CHECKPOINT_POINTER,
    DELETION_VECTORS_VERSION,
    FORMAT_VERSION,
    READER_VERSION,
    Protocol,
    checkpoint_name,
    decode_metadata,
    encode_metadata,
    seal,
    unseal,
    validate_data_paths,
)
from .state import (
    DeferredFiles,
    TableState,
    check_vectors,
    files_schema,
    with_vector_columns,
    without_vector_columns,
)
from .storage import MAX_READ_POINTER_BYTES, Storage

__all__ = [
    "MAX_DECODED_BYTES_FLOOR", "MAX_DECODED_RATIO", "decode_checkpoint", "decode_pointer", "decoded_size",
    "encode_checkpoint", "read_pointer", "write_checkpoint", "write_pointer",
]

MAGIC = b"LHCKPT1\n"
_STATE_KEY = b"lakehouse.state"
#: format §9: the record batches of a checkpoint decode to at most max(floor, ratio x file size) bytes.
#: LZ4 frames cannot expand more than ~255x, so no checkpoint lakehouse writes is ever refused.
MAX_DECODED_BYTES_FLOOR = 64 * 1024 * 1024
MAX_DECODED_RATIO = 256


def encode_checkpoint(state: TableState) -> bytes:
    """The bytes of the checkpoint file for ``state``.

    Args:
        state: the table state at one version.

    Returns:
        The magic, the crc32 of the payload, and the Arrow IPC payload (see the module docstring).

    Example:
        >>> import lakehouse as lh
        >>> t = lh.write_table("memory://doc-ckpt-encode", pa.table({"a": [1]}))
        >>> encode_checkpoint(t.snapshot().state)[:8]
        b'LHCKPT1\\n'
    """
    info = {
        "format": FORMAT_VERSION,
        "version": state.version,
        "timestamp": state.timestamp,
        "protocol": {"min_reader_version": state.protocol.min_reader_version,
                     "min_writer_version": state.protocol.min_writer_version},
        "metadata": encode_metadata(state.metadata),
        "txn": dict(state.app_versions),
    }
    files = state.files
    if state.protocol.min_reader_version < DELETION_VECTORS_VERSION:  # format §9: no file can have a vector,
        files = without_vector_columns(files)  # and readers of protocol 1-3 know the files table without them
    if files.column(0).num_chunks > 64:  # many tiny chunks (one per commit) make slow IPC batches
        files = files.combine_chunks()
    table = files.replace_schema_metadata({_STATE_KEY: msgpack.packb(info, use_bin_type=True)})
    sink = pa.BufferOutputStream()
    # lz4 decompresses several times faster than zstd: opening a 1M-file table is bound by it
    options = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=True)
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=1 << 17)
    payload = sink.getvalue()
    return b"".join([MAGIC, struct.pack("<I", zlib.crc32(payload)), memoryview(payload)])  # one copy


def decode_checkpoint(data: bytes, *, path: str, version: int | None = None) -> TableState:
    """Parse and verify a checkpoint file.

    Args:
        data: the file's bytes.
        path: the file's name, for errors.
        version: the version the checkpoint must hold (None: any).

    Returns:
        The table state it holds.

    Raises:
        CorruptLogError: the file is damaged, too large once decoded, or holds another version; it names ``path``.
        UnsupportedFormatError: it was written in a newer format.

    Example:
        >>> import lakehouse as lh
        >>> t = lh.write_table("memory://doc-ckpt-decode", pa.table({"a": [1, 2]}))
        >>> decode_checkpoint(encode_checkpoint(t.snapshot().state), path="x", version=0).files.num_rows
        1
    """
    if not data.startswith(MAGIC[:6]) or len(data) < len(MAGIC) + 4:
        raise CorruptLogError("not a lakehouse checkpoint", path=path)
    if data[:8] != MAGIC:
        raise UnsupportedFormatError("checkpoint written by a newer format; upgrade lakehouse", path=path)
    (crc,) = struct.unpack("<I", data[8:12])
    payload = memoryview(data)[12:]
    if zlib.crc32(payload) != crc:
        raise CorruptLogError("checksum mismatch", path=path)
    try:  # before Arrow allocates anything: what the record batches decode to, from their metadata
        decoded = decoded_size(payload)
    except CorruptLogError as exc:
        raise CorruptLogError(f"invalid checkpoint ({exc})", path=path) from None
    limit = max(MAX_DECODED_BYTES_FLOOR, MAX_DECODED_RATIO * len(data))
    if decoded > limit:
        raise CorruptLogError(f"invalid checkpoint: its record batches decode to {decoded} bytes, more than the "
                              f"{limit} allowed for a {len(data)}-byte file (format §9)", path=path)
    try:
        # the footer, schema and state are read now; the record batches (the files) on first use
        reader = pa.ipc.open_file(pa.py_buffer(payload), options=pa.ipc.IpcReadOptions(use_threads=True))
        info = msgpack.unpackb(reader.schema.metadata[_STATE_KEY], raw=False)
        if info["format"] > FORMAT_VERSION:
            raise UnsupportedFormatError(f"format {info['format']}; upgrade lakehouse", path=path)
        protocol = Protocol(**info["protocol"])
        if protocol.min_reader_version > READER_VERSION:
            raise UnsupportedFormatError(f"needs reader version {protocol.min_reader_version}", path=path)
        metadata = decode_metadata(info["metadata"])
        expected = files_schema(metadata)
        found = reader.schema.remove_metadata()
        if not (found.equals(expected) or (
                protocol.min_reader_version < DELETION_VECTORS_VERSION
                and found.equals(without_vector_columns(expected.empty_table()).schema))):
            raise CorruptLogError("files table does not match the table metadata")
        txn = {str(k): int(v) for k, v in info["txn"].items()}
        if version is not None and info["version"] != version:
            raise CorruptLogError(f"holds version {info['version']}, expected {version}")
        state = TableState(version=int(info["version"]), timestamp=int(info["timestamp"]), protocol=protocol,
                           metadata=metadata, files_source=DeferredFiles(lambda: _read_files(reader, path)),
                           app_versions=txn)
    except UnsupportedFormatError:
        raise
    except Exception as exc:
        raise CorruptLogError(f"invalid checkpoint ({exc})", path=path) from None
    return state


def _read_files(reader: pa.ipc.RecordBatchFileReader, path: str) -> pa.Table:
    try:
        files = reader.read_all().replace_schema_metadata(None)
        # a crafted file can carry a valid checksum: offsets that point outside their buffers pass
        # Arrow's cheap checks and crash the first kernel that reads them, so check every value first
        files.validate(full=True)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptLogError(f"invalid checkpoint ({exc})", path=path) from None
    try:  # the same rule as for paths in log entries (format.md §3), and for deletion vectors (§8)
        validate_data_paths(files.column("path"))
        files = with_vector_columns(files)
        check_vectors(files)
    except ValueError as exc:
        raise CorruptLogError(f"invalid checkpoint ({exc})", path=path) from None
    return files


def decoded_size(payload: bytes | memoryview) -> int:
    """The bytes the record batches (and dictionary batches) of an Arrow IPC file take once decoded.

    They are read from the file's footer and message metadata without decompressing anything: a
    compressed buffer starts with its uncompressed length (Arrow IPC format), which is what Arrow
    allocates before it decompresses; so this bounds the memory a reader needs (format §9).

    Args:
        payload: the Arrow IPC file.

    Returns:
        The decoded size of its batches, in bytes.

    Raises:
        CorruptLogError: the footer or a batch's metadata is malformed (without ``.path``).

    Example:
        >>> sink = pa.BufferOutputStream()
        >>> t = pa.table({"a": pa.array([1, 2, 3], pa.int64())})
        >>> with pa.ipc.new_file(sink, t.schema) as w:
        ...     w.write_table(t)
        >>> decoded_size(sink.getvalue().to_pybytes())
        24
    """
    buf = memoryview(payload)
    n = len(buf)
    if n < 18 or bytes(buf[:6]) != b"ARROW1" or bytes(buf[-6:]) != b"ARROW1":
        raise CorruptLogError("not an Arrow IPC file")
    (footer_len,) = struct.unpack_from("<i", buf, n - 10)
    if footer_len <= 0 or footer_len > n - 18:
        raise CorruptLogError("bad footer length")
    footer = _Flat(buf[n - 10 - footer_len:n - 10])
    root = footer.root()
    total = 0
    for field in (2, 3):  # dictionaries, recordBatches: [Block {offset: long, metaDataLength: int, body: long}]
        vec = footer.vector(root, field, 24)
        if vec is None:
            continue
        start, count = vec
        for i in range(count):
            offset, meta_len, body_len = struct.unpack_from("<qi4xq", footer.buf, start + 24 * i)
            total += _message_size(buf, offset, meta_len, body_len)
    return total


def _message_size(buf: memoryview, offset: int, meta_len: int, body_len: int) -> int:
    """The decoded size of the buffers of the batch message at ``offset`` (see :func:`decoded_size`)."""
    if offset < 0 or meta_len < 8 or body_len < 0 or offset + meta_len + body_len > len(buf):
        raise CorruptLogError("a batch lies outside the file")
    (first,) = struct.unpack_from("<I", buf, offset)
    skip = 8 if first == 0xFFFFFFFF else 4  # continuation marker, then the flatbuffer's length
    message = _Flat(buf[offset + skip:offset + meta_len])
    root = message.root()
    header_type = message.scalar(root, 1, "<B", 0)
    header = message.table(root, 2)
    if header is None or header_type not in (2, 3):  # DictionaryBatch, RecordBatch
        raise CorruptLogError(f"message type {header_type} where a batch belongs")
    if header_type == 2:  # DictionaryBatch {id, data: RecordBatch, isDelta}
        header = message.table(header, 1)
        if header is None:
            raise CorruptLogError("dictionary batch without data")
    body = offset + meta_len
    compressed = message.table(header, 3) is not None  # RecordBatch.compression
    vec = message.vector(header, 2, 16)  # RecordBatch.buffers: [Buffer {offset: long, length: long}]
    if vec is None:
        return 0
    start, count = vec
    total = 0
    for i in range(count):
        b_off, b_len = struct.unpack_from("<qq", message.buf, start + 16 * i)
        if b_off < 0 or b_len < 0 or b_off + b_len > body_len:
            raise CorruptLogError("a buffer lies outside its batch")
        if not compressed or b_len == 0:
            total += b_len
            continue
        if b_len < 8:
            raise CorruptLogError("a compressed buffer without its length")
        (size,) = struct.unpack_from("<q", buf, body + b_off)
        if size < -1:
            raise CorruptLogError("negative uncompressed length")
        total += b_len - 8 if size == -1 else size  # -1: stored uncompressed
    return total


class _Flat:
    """Just enough of a bounds-checked FlatBuffers reader for Arrow's footer and message headers."""

    __slots__ = ("buf",)

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf

    def _u(self, fmt: str, pos: int) -> int:
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise CorruptLogError("flatbuffer offset out of range")
        return int(struct.unpack_from(fmt, self.buf, pos)[0])

    def root(self) -> int:
        return self._u("<I", 0)

    def _field(self, table: int, index: int) -> int | None:
        vtable = table - self._u("<i", table)
        vt_size = self._u("<H", vtable)
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        rel = self._u("<H", vtable + slot)
        return table + rel if rel else None

    def scalar(self, table: int, index: int, fmt: str, default: int) -> int:
        pos = self._field(table, index)
        return default if pos is None else self._u(fmt, pos)

    def table(self, table: int, index: int) -> int | None:
        pos = self._field(table, index)
        return None if pos is None else pos + self._u("<I", pos)

    def vector(self, table: int, index: int, item_size: int) -> tuple[int, int] | None:
        """(position of the first item, count) of a vector of structs, checked to lie in the buffer."""
        pos = self.table(table, index)
        if pos is None:
            return None
        count = self._u("<I", pos)
        if pos + 4 + count * item_size > len(self.buf):
            raise CorruptLogError("flatbuffer vector out of range")
        return pos + 4, count


def write_checkpoint(storage: Storage, state: TableState) -> int:
    """Write the checkpoint of ``state`` (if absent) and point ``_last_checkpoint`` at it.

    A checkpoint's content is determined by its version, so racing writers write the same file; the
    pointer only moves forward (or away from a checkpoint that does not exist).

    Args:
        storage: the table's storage.
        state: the table state at one version.

    Returns:
        The checkpoint's version.

    Example:
        >>> import lakehouse as lh
        >>> from lakehouse.storage import Storage
        >>> t = lh.write_table("memory://doc-ckpt-write", pa.table({"a": [1]}))
        >>> storage = Storage.from_uri(t.uri)
        >>> write_checkpoint(storage, t.snapshot().state), read_pointer(storage)
        (0, 0)
    """
    # A checkpoint's content is determined by its version, so racing writers write the same state;
    # ``overwrite`` publishes the whole file atomically (rename on disk, one object on stores).
    data = encode_checkpoint(state)
    storage.overwrite(checkpoint_name(state.version), data)
    pointer = read_pointer(storage)
    if pointer is None or pointer < state.version or (
        pointer > state.version and not storage.exists(checkpoint_name(pointer))  # a bogus pointer
    ):
        write_pointer(storage, state.version, size_bytes=len(data), num_files=state.files.num_rows)
    return state.version


def write_pointer(storage: Storage, version: int, *, size_bytes: int, num_files: int) -> None:
    """Point ``_last_checkpoint`` at the checkpoint of ``version`` (format §9).

    Args:
        storage: the table's storage.
        version: the checkpoint's version.
        size_bytes: the checkpoint file's size.
        num_files: the number of files it lists.

    Example:
        >>> from lakehouse.storage import Storage
        >>> storage = Storage.from_uri("memory://doc-ckpt-pointer")
        >>> write_pointer(storage, 7, size_bytes=100, num_files=1)
        >>> read_pointer(storage)
        7
    """
    body = msgpack.packb({"version": version, "size_bytes": size_bytes, "num_files": num_files})
    storage.overwrite(CHECKPOINT_POINTER, seal(body))


def read_pointer(storage: Storage) -> int | None:
    """The version ``_last_checkpoint`` points at.

    Args:
        storage: the table's storage.

    Returns:
        The version, or None if the pointer is missing, unreadable, damaged, larger than
        ``MAX_READ_POINTER_BYTES`` or not a regular file (format §9): it is only a hint.

    Raises:
        UnsupportedFormatError: the pointer is sealed in a newer envelope format (format §14): it is
            refused, never guessed at or treated as absent.

    Example:
        >>> from lakehouse.storage import Storage
        >>> read_pointer(Storage.from_uri("memory://doc-ckpt-nopointer")) is None
        True
    """
    try:
        data = storage.read(CHECKPOINT_POINTER, max_bytes=MAX_READ_POINTER_BYTES)
    except (FileNotFoundError, PermissionError):
        return None
    except CorruptLogError:  # oversized, or not a regular file (a FIFO, a folder): a hint we cannot use
        return None
    return decode_pointer(data, path=storage.full_path(CHECKPOINT_POINTER))


def decode_pointer(data: bytes, *, path: str) -> int | None:
    """The version in the bytes of ``_last_checkpoint`` (see :func:`read_pointer`).

    Args:
        data: the pointer file's bytes.
        path: its name, for errors.

    Returns:
        The version, or None if the bytes are damaged.

    Raises:
        UnsupportedFormatError: the pointer is sealed in a newer envelope format.

    Example:
        >>> decode_pointer(b"garbage", path="_last_checkpoint") is None
        True
    """
    try:
        body = msgpack.unpackb(unseal(data, path=path), raw=False)
        version = body["version"]
    except UnsupportedFormatError:
        raise
    except Exception:  # missing, undecodable or CRC-failing: a damaged hint is ignored (§9)
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) and version >= 0 else None
