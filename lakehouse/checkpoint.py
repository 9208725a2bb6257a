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
from .state import DeferredFiles, TableState, files_schema
from .storage import Storage

__all__ = [
    "decode_checkpoint", "decode_pointer", "encode_checkpoint", "read_pointer", "write_checkpoint", "write_pointer",
]

MAGIC = b"LHCKPT1\n"
_STATE_KEY = b"lakehouse.state"


def encode_checkpoint(state: TableState) -> bytes:
    """The bytes of the checkpoint file for ``state``."""
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
    """Parse and verify a checkpoint file; ``CorruptLogError`` names ``path`` if it is damaged."""
    if not data.startswith(MAGIC[:6]) or len(data) < len(MAGIC) + 4:
        raise CorruptLogError("not a lakehouse checkpoint", path=path)
    if data[:8] != MAGIC:
        raise UnsupportedFormatError("checkpoint written by a newer format; upgrade lakehouse", path=path)
    (crc,) = struct.unpack("<I", data[8:12])
    payload = memoryview(data)[12:]
    if zlib.crc32(payload) != crc:
        raise CorruptLogError("checksum mismatch", path=path)
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
        if not reader.schema.remove_metadata().equals(files_schema(metadata)):
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
    except (pa.ArrowException, OSError) as exc:  # the checksum matched, so only a writer's bug gets here
        raise CorruptLogError(f"invalid checkpoint ({exc})", path=path) from None
    try:  # the same rule as for paths in log entries (format.md §3)
        validate_data_paths(files.column("path"))
    except ValueError as exc:
        raise CorruptLogError(f"invalid checkpoint ({exc})", path=path) from None
    return files


def write_checkpoint(storage: Storage, state: TableState) -> int:
    """Write the checkpoint of ``state`` (if absent) and point ``_last_checkpoint`` at it; returns its version."""
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
    """Point ``_last_checkpoint`` at the checkpoint of ``version`` (format §9: its version, file size
    and number of files)."""
    body = msgpack.packb({"version": version, "size_bytes": size_bytes, "num_files": num_files})
    storage.overwrite(CHECKPOINT_POINTER, seal(body))


def read_pointer(storage: Storage) -> int | None:
    """The version ``_last_checkpoint`` points at, or None if it is missing or unreadable (format §9).

    Raises:
        UnsupportedFormatError: the pointer is sealed in a newer envelope format (format §14): it is
            refused, never guessed at or treated as absent.
    """
    try:
        data = storage.read(CHECKPOINT_POINTER)
    except FileNotFoundError:
        return None
    return decode_pointer(data, path=storage.full_path(CHECKPOINT_POINTER))


def decode_pointer(data: bytes, *, path: str) -> int | None:
    """The version in the bytes of ``_last_checkpoint``, or None if they are damaged (see :func:`read_pointer`)."""
    try:
        body = msgpack.unpackb(unseal(data, path=path), raw=False)
        version = body["version"]
    except UnsupportedFormatError:
        raise
    except Exception:  # missing, undecodable or CRC-failing: a damaged hint is ignored (§9)
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) and version >= 0 else None
