"""Progress of long operations: small event values, and turning ``progress=`` into a callback.

Long operations (writes, ``optimize``, ``vacuum``, ``checkpoint``) take ``progress=``:

* ``None`` or ``False`` (the library's default): silent;
* ``True``: a progress bar on stderr, drawn by rich if it is installed, else by tqdm, else silent;
* a callable: called with a :class:`ProgressEvent` after each step, in the calling thread.

For each ``(operation, stage)`` the events' ``done`` never decreases and the last one has
``done == total``. ``total`` is None while it is not known yet (a streamed write does not know
how many files it will make). Stages and units: ``write``/``append``/``overwrite`` report
``("files", "files")`` and ``("bytes", "bytes")`` written; ``optimize`` ``("rewrite", "bins")``;
``vacuum`` ``("delete", "files")`` (0 of 0 on a dry run); ``checkpoint`` ``("write", "checkpoints")``.

Example:
    >>> events = []
    >>> report = progress_callback(events.append)
    >>> report(ProgressEvent("vacuum", "delete", 1, 2, "files")); report.close()
    >>> events
    [ProgressEvent(operation='vacuum', stage='delete', done=1, total=2, unit='files')]
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from .errors import ArgumentTypeError

__all__ = ["ProgressEvent", "ProgressLike", "Reporter", "progress_callback"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One step of a long operation: ``done`` of ``total`` (None: not known yet) ``unit`` in ``stage``.

    Attributes:
        operation: the operation reporting (``"append"``, ``"vacuum"``, ...).
        stage: its stage (``"files"``, ``"bytes"``, ``"delete"``, ...; see the module docstring).
        done: how many units are done; never decreases within a stage.
        total: how many there will be, or None while not known.
        unit: what is counted (``"files"``, ``"bytes"``, ``"bins"``, ``"checkpoints"``).

    Example:
        >>> ProgressEvent("optimize", "rewrite", 3, 4, "bins").total
        4
    """

    operation: str
    stage: str
    done: int
    total: int | None
    unit: str


ProgressLike: TypeAlias = "bool | Callable[[ProgressEvent], Any] | None"


class Reporter(Protocol):
    """What :func:`progress_callback` returns: call it with events, close it when the operation ends."""

    def __call__(self, event: ProgressEvent) -> None:
        """Report one event."""

    def close(self) -> None:
        """End the report (a progress bar is finished); called once, when the operation ends.

        Example:
            >>> report = progress_callback(lambda e: print(e.done, e.total))
            >>> report(ProgressEvent("vacuum", "delete", 0, 0, "files")); report.close()
            0 0
        """


class _Silent:
    def __call__(self, event: ProgressEvent) -> None:
        pass

    def close(self) -> None:
        pass


class _Calling:
    def __init__(self, callback: Callable[[ProgressEvent], Any]) -> None:
        self._callback = callback

    def __call__(self, event: ProgressEvent) -> None:
        self._callback(event)

    def close(self) -> None:
        pass


def _label(event: ProgressEvent) -> str:
    return f"{event.operation}: {event.stage}"


class _RichBar:
    """rich progress bars on stderr, one per ``(operation, stage)``; stopped by :meth:`close`."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[amount]}"),
                                  console=Console(stderr=True))
        self._tasks: dict[tuple[str, str], Any] = {}
        self._started = False

    def __call__(self, event: ProgressEvent) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        key = (event.operation, event.stage)
        amount = f"{event.done}" + (f"/{event.total}" if event.total is not None else "") + f" {event.unit}"
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(_label(event), total=event.total, amount=amount)
        self._progress.update(self._tasks[key], completed=event.done, total=event.total, amount=amount)

    def close(self) -> None:
        if self._started:
            self._progress.stop()
            self._started = False


class _TqdmBar:
    """tqdm bars on stderr, one per ``(operation, stage)``; closed by :meth:`close`."""

    def __init__(self) -> None:
        import tqdm

        self._tqdm = tqdm.tqdm
        self._bars: dict[tuple[str, str], Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        key = (event.operation, event.stage)
        bar = self._bars.get(key)
        if bar is None:
            bar = self._bars[key] = self._tqdm(desc=_label(event), total=event.total, unit=event.unit,
                                               unit_scale=event.unit == "bytes", file=sys.stderr)
        if event.total is not None and bar.total != event.total:
            bar.total = event.total
        bar.update(event.done - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def _bar() -> Reporter:
    with contextlib.suppress(ImportError):
        return _RichBar()
    with contextlib.suppress(ImportError):
        return _TqdmBar()
    return _Silent()


def progress_callback(progress: ProgressLike) -> Reporter:
    """Turn a ``progress=`` argument into a :class:`Reporter` (call it with events; ``close()`` at the end).

    Args:
        progress: None or False (silent), True (a progress bar on stderr) or a callable taking
            :class:`ProgressEvent` values.

    Returns:
        A reporter: call it with each event, and ``close()`` it when the operation ends.

    Raises:
        ArgumentTypeError: ``progress`` is neither None, a bool nor a callable (also a ``TypeError``).

    Example:
        >>> progress_callback(None)(ProgressEvent("checkpoint", "write", 1, 1, "checkpoints"))  # silent
        >>> seen = []
        >>> progress_callback(lambda e: seen.append(e.done))(ProgressEvent("vacuum", "delete", 2, 2, "files"))
        >>> seen
        [2]
    """
    if progress is None or progress is False:
        return _Silent()
    if progress is True:
        return _bar()
    if callable(progress):
        return _Calling(progress)
    raise ArgumentTypeError(f"progress must be None, a bool or a callable taking a ProgressEvent, got {progress!r}")
