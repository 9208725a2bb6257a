"""Checks of public arguments, at the edge of the library: each returns the argument in its one
canonical form or raises :class:`~lakehouse.errors.ArgumentTypeError` (a wrong type) or
:class:`~lakehouse.errors.InvalidArgumentError` (a wrong value), naming the argument.

They exist so that a bad argument never reaches Python, pyarrow or fsspec as a raw ``TypeError``,
``KeyError``, ``OverflowError`` or ``ArrowInvalid`` deep inside; they check the shape of an
argument only (its meaning, such as whether a column exists, is the caller's business).

Example:
    >>> check_int(3, "version")
    3
    >>> check_int("3", "version")
    Traceback (most recent call last):
    ...
    lakehouse.errors.ArgumentTypeError: version must be an int, got str
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["check_app_transaction", "check_choice", "check_int", "check_mapping", "check_names", "check_optional_int",
           "check_str", "check_uri"]

INT64_MAX = 2**63 - 1
_NAME_MAX = 255
"""Longest file or folder name (bytes) most filesystems allow."""


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_int(value: Any, argument: str, *, minimum: int | None = None, maximum: int = INT64_MAX) -> int:
    """``value`` as an ``int`` (not a bool) within ``[minimum, maximum]``.

    Args:
        value: the argument's value.
        argument: the argument's name, for errors.
        minimum: the lowest value allowed (None: no bound).
        maximum: the highest value allowed (default: the int64 maximum).

    Returns:
        ``value`` as an ``int``.

    Raises:
        ArgumentTypeError: ``value`` is not an int (or is a bool).
        InvalidArgumentError: ``value`` is out of range.

    Example:
        >>> check_int(-1, "limit", minimum=0)
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidArgumentError: limit must be at least 0, got -1
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{argument} must be an int, got {_type_name(value)}", argument=argument)
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{argument} must be at least {minimum}, got {value}", argument=argument)
    if value > maximum:
        raise InvalidArgumentError(f"{argument} must be at most {maximum}, got {value}", argument=argument)
    return int(value)


def check_optional_int(value: Any, argument: str, *, minimum: int | None = None,
                       maximum: int = INT64_MAX) -> int | None:
    """None, or ``value`` checked as by :func:`check_int`.

    Args:
        value: the argument's value, or None.
        argument: the argument's name, for errors.
        minimum: the lowest value allowed (None: no bound).
        maximum: the highest value allowed (default: the int64 maximum).

    Returns:
        None or ``value`` as an ``int``.

    Raises:
        ArgumentTypeError: ``value`` is neither None nor an int.
        InvalidArgumentError: ``value`` is out of range.

    Example:
        >>> check_optional_int(None, "limit"), check_optional_int(5, "limit", minimum=0)
        (None, 5)
    """
    return None if value is None else check_int(value, argument, minimum=minimum, maximum=maximum)


def check_str(value: Any, argument: str, *, empty: bool = False) -> str:
    """``value`` as a ``str`` (non-empty unless ``empty``).

    Args:
        value: the argument's value.
        argument: the argument's name, for errors.
        empty: whether the empty string is allowed.

    Returns:
        ``value``.

    Raises:
        ArgumentTypeError: ``value`` is not a str.
        InvalidArgumentError: ``value`` is empty and ``empty`` is False.

    Example:
        >>> check_str("etl", "app_id")
        'etl'
        >>> check_str("", "app_id")
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidArgumentError: app_id must not be empty
    """
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{argument} must be a str, got {_type_name(value)}", argument=argument)
    if not value and not empty:
        raise InvalidArgumentError(f"{argument} must not be empty", argument=argument)
    return value


def check_choice(value: Any, argument: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``.

    ``value`` is compared only once it is known to be a str, so that objects with an odd ``__eq__``
    cannot get in the way.

    Args:
        value: the argument's value.
        argument: the argument's name, for errors.
        choices: the allowed strings.

    Returns:
        ``value``.

    Raises:
        InvalidArgumentError: ``value`` is not one of ``choices`` (the message lists them).

    Example:
        >>> check_choice("merge", "schema_mode", ("strict", "merge"))
        'merge'
    """
    if not isinstance(value, str) or value not in choices:
        shown = " or ".join(repr(c) for c in choices)
        raise InvalidArgumentError(f"{argument} must be {shown}, not {value!r}", argument=argument)
    return value


def check_names(value: Any, argument: str) -> list[str] | None:
    """None, or a list of strings from a sequence (or other iterable) of strings.

    Args:
        value: the argument's value: None or an iterable of str. A single ``str`` is refused (it would
            be read as its characters).
        argument: the argument's name, for errors.

    Returns:
        None or the names, as a new list.

    Raises:
        ArgumentTypeError: ``value`` is a str, bytes, a mapping or not iterable, or holds a non-str.

    Example:
        >>> check_names(("a", "b"), "columns")
        ['a', 'b']
    """
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        raise ArgumentTypeError(f"{argument} must be a list of names, got {_type_name(value)}", argument=argument)
    names = list(value)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ArgumentTypeError(f"{argument} must hold only str names, got {bad[0]!r}", argument=argument)
    return names


def check_mapping(value: Any, argument: str) -> dict[str, Any] | None:
    """None, or a ``dict`` copy of a mapping whose keys are all ``str``.

    Args:
        value: the argument's value, or None.
        argument: the argument's name, for errors.

    Returns:
        None or a new ``dict``.

    Raises:
        ArgumentTypeError: ``value`` is not a mapping, or has a key that is not a str.

    Example:
        >>> check_mapping({"a": 1}, "properties"), check_mapping(None, "properties")
        ({'a': 1}, None)
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ArgumentTypeError(f"{argument} must be a mapping, got {_type_name(value)}", argument=argument)
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ArgumentTypeError(f"{argument} keys must be str, got {bad[0]!r}", argument=argument)
    return dict(value)


def check_app_transaction(value: Any) -> tuple[str, int] | None:
    """None, or an idempotent writer's ``(app_id, version)``: a non-empty str and an int >= 0.

    Args:
        value: the ``app_transaction`` argument: None or a pair.

    Returns:
        None or the pair as a tuple.

    Raises:
        ArgumentTypeError: ``value`` is not a pair, or its parts have the wrong types.
        InvalidArgumentError: the app id is empty or the version negative.

    Example:
        >>> check_app_transaction(["etl", 5])
        ('etl', 5)
    """
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence) or len(value) != 2:
        raise ArgumentTypeError(f"app_transaction must be a pair (app_id, version), got {value!r}"[:300],
                                argument="app_transaction")
    return (check_str(value[0], "app_transaction's app_id"),
            check_int(value[1], "app_transaction's version", minimum=0))


def check_uri(value: Any) -> str:
    """A table URI (a path, ``os.PathLike`` or fsspec URL) as a ``str``.

    Args:
        value: the ``uri`` argument.

    Returns:
        The URI as a ``str``.

    Raises:
        ArgumentTypeError: ``value`` is neither a str nor ``os.PathLike``.
        InvalidArgumentError: it is empty, holds a NUL character, or (a local path) has a folder name
            longer than filesystems allow.

    Example:
        >>> check_uri("memory://t")
        'memory://t'
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ArgumentTypeError(f"uri must be a str or os.PathLike, got {_type_name(value)}", argument="uri")
    if not value:
        raise InvalidArgumentError("uri must not be empty", argument="uri")
    if "\x00" in value:
        raise InvalidArgumentError(f"uri must not contain a NUL character: {value[:100]!r}", argument="uri")
    if "://" not in value and any(len(seg.encode("utf-8", "surrogatepass")) > _NAME_MAX
                                  for seg in value.replace("\\", "/").split("/")):
        raise InvalidArgumentError(f"uri has a folder name longer than {_NAME_MAX} bytes: {value[:100]!r}...",
                                   argument="uri")
    return value
