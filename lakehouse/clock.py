"""The one clock: the wall clock in milliseconds since the epoch, and exact conversions between those
milliseconds and aware UTC datetimes.

Commit timestamps (format §11.3), file modification and deletion times and retention cut-offs are
integers of milliseconds since 1970-01-01 UTC. Every conversion is integer arithmetic: going through
a float (``int(d.timestamp() * 1000)``, ``datetime.fromtimestamp(ms / 1000)``) lands 1 ms early for
some instants and microseconds off for far ones.

Example:
    >>> import datetime as dt
    >>> to_ms(dt.datetime(2038, 1, 19, 3, 14, 8, 2000, tzinfo=dt.timezone.utc))
    2147483648002
    >>> from_ms(2147483648002)
    datetime.datetime(2038, 1, 19, 3, 14, 8, 2000, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import datetime as dt
import time

from .errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["EPOCH", "from_ms", "ms_from_seconds", "now_ms", "to_ms"]

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
"""The instant milliseconds are counted from."""

_ONE_MS = dt.timedelta(milliseconds=1)


def now_ms() -> int:
    """The wall clock: milliseconds since the epoch, rounded down.

    Returns:
        The current time as an integer of milliseconds.

    Example:
        >>> now_ms() > 1_700_000_000_000
        True
    """
    return time.time_ns() // 1_000_000


def to_ms(instant: dt.datetime) -> int:
    """The milliseconds since the epoch of an aware datetime, rounded down (exactly, in any time zone).

    Args:
        instant: an aware datetime.

    Returns:
        The largest whole number of milliseconds at or before ``instant``.

    Raises:
        ArgumentTypeError: ``instant`` is not a datetime.
        InvalidArgumentError: ``instant`` is naive: it names no instant.

    Example:
        >>> import datetime as dt
        >>> to_ms(dt.datetime(1970, 1, 1, 0, 0, 0, 1999, tzinfo=dt.timezone.utc))
        1
    """
    if not isinstance(instant, dt.datetime):
        raise ArgumentTypeError(f"an instant must be a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidArgumentError("an instant must be an aware datetime (with a time zone), e.g. "
                                   "datetime.now(timezone.utc)")
    return (instant - EPOCH) // _ONE_MS


def from_ms(ms: int) -> dt.datetime:
    """The aware UTC datetime of ``ms`` milliseconds since the epoch, exactly.

    Args:
        ms: milliseconds since the epoch (negative before 1970).

    Returns:
        An aware datetime in UTC.

    Raises:
        OverflowError: the instant is outside the years 1..9999 a datetime can hold.

    Example:
        >>> from_ms(1)
        datetime.datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=datetime.timezone.utc)
    """
    return EPOCH + ms * _ONE_MS


def ms_from_seconds(seconds: float) -> int:
    """Milliseconds since the epoch of a time in seconds (e.g. a file's ``st_mtime``), rounded down
    after rounding to the microsecond: a float of seconds names its instant only to about that.

    Args:
        seconds: seconds since the epoch, an int or a float.

    Returns:
        Whole milliseconds.

    Example:
        >>> ms_from_seconds(1.003), int(1.003 * 1000)
        (1003, 1002)
    """
    if isinstance(seconds, int):
        return seconds * 1000
    return round(seconds * 1_000_000) // 1000
