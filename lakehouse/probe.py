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
    """What :func:`check_storage` found."""

    uri: str
    """The URI probed, with any ``user:password@`` masked."""
    backend: str
    rounds: int
    racers: int
    double_winners: int
    """Rounds in which more than one creator was told it won."""
    no_winner: int
    """Rounds in which every creator was refused."""
    torn: int
    """Rounds whose stored bytes were not exactly one creator's."""
    error: str | None = None
    """Why the probe could not run (e.g. the backend has no conditional create at all)."""

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
