"""Is this store safe for concurrent writers? Race several creators on scratch keys and see.

Example:
    >>> report = check_storage("memory://doc-probe")
    >>> report.safe, report.double_winners
    (True, 0)
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .arguments import check_int
from .errors import UnsafeStorageError
from .storage import Storage

__all__ = ["StorageReport", "check_storage"]

PROBE_DIR = "_lakehouse_probe"


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageReport:
    """What :func:`check_storage` found.

    Attributes:
        uri: the URI probed, with any ``user:password@`` masked.
        backend: the fsspec filesystem class (``"LocalFileSystem"``, ``"S3FileSystem"``, ...).
        rounds: how many rounds were raced.
        racers: how many creators raced in each round.
        double_winners: rounds in which more than one creator was told it won.
        no_winner: rounds in which every creator was refused.
        torn: rounds whose stored bytes were not exactly one creator's.
        error: why the probe could not run (e.g. the backend has no conditional create at all),
            or None.

    Example:
        >>> report = check_storage("memory://doc-probe-report", rounds=1, racers=2)
        >>> report.backend, report.rounds, report.racers, report.error
        ('MemoryFileSystem', 1, 2, None)
    """

    uri: str
    backend: str
    rounds: int
    racers: int
    double_winners: int
    no_winner: int
    torn: int
    error: str | None = None

    @property
    def safe(self) -> bool:
        """True if create-if-absent held in every round."""
        return self.error is None and self.double_winners == self.no_winner == self.torn == 0


def _round(storage: Storage, key: str, racers: int) -> tuple[int, bytes | None, list[bytes]]:
    payloads = [f"{uuid.uuid4().hex}:{i}:".encode() * 64 for i in range(racers)]
    winners: list[int] = []
    barrier = threading.Barrier(racers)

    def race(i: int) -> None:
        barrier.wait()
        try:
            storage.put_if_absent(key, payloads[i])
            winners.append(i)
        except FileExistsError:
            pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = storage.read(key)
    return len(winners), stored, [payloads[i] for i in winners]


def check_storage(uri: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None,
                  rounds: int = 20, racers: int = 8) -> StorageReport:
    """Race ``racers`` creators on a fresh scratch key, ``rounds`` times, under ``uri``; report.

    Scratch keys live in ``<uri>/_lakehouse_probe/`` and are deleted afterwards.

    Args:
        uri: a path or any fsspec URL (a table's, or the folder tables will go in).
        storage_options: options for the filesystem (see ``docs/howto-storage.md``).
        rounds: how many rounds to race (1 to 10000).
        racers: how many creators race in each round, one thread each (1 to 256).

    Returns:
        The report; ``report.safe`` is True if create-if-absent held in every round. A backend
        lakehouse refuses to commit on is reported (``error``), not raised.

    Raises:
        InvalidArgumentError: ``rounds`` or ``racers`` out of range (``ArgumentTypeError`` if not
            an int).

    Example:
        >>> check_storage("memory://doc-probe2", rounds=2).safe
        True
    """
    rounds = check_int(rounds, "rounds", minimum=1, maximum=10_000)
    racers = check_int(racers, "racers", minimum=1, maximum=256)
    storage = Storage.from_uri(uri, storage_options)
    backend = type(storage.fs).__name__
    base: dict[str, Any] = dict(uri=storage.display_uri, backend=backend, rounds=rounds, racers=racers)
    try:
        storage.check_atomic_create()
    except UnsafeStorageError as exc:
        return StorageReport(**base, double_winners=0, no_winner=0, torn=0, error=str(exc))
    double = none = torn = 0
    scratch = f"{PROBE_DIR}/{uuid.uuid4().hex}"
    try:
        for r in range(rounds):
            n, stored, won = _round(storage, f"{scratch}/{r:05d}", racers)
            double += n > 1
            none += n == 0
            torn += not (n >= 1 and stored in won)
    finally:
        for r in range(rounds):
            storage.delete(f"{scratch}/{r:05d}")
    return StorageReport(**base, double_winners=double, no_winner=none, torn=torn)
