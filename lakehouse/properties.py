"""Table properties: the ones lakehouse reads, their defaults, and validating values when set.

Properties are strings (``docs/format.md`` §16). Unknown names are kept as they are; the known
ones (:data:`PROPERTY_SPECS`: kind, default and largest value) are checked when they are set: when a
table is created and by ``Table.alter.set_properties``. A value another writer set that breaks those
rules (written by an older or foreign writer) is never trusted when read: the typed getters
(:func:`target_file_size`, :func:`checkpoint_interval`, :func:`vacuum_min_retention`,
:func:`log_min_retention`, :func:`delete_mode`, and :func:`int_property` under them) return the
default and warn with :class:`PropertyWarning`. Names starting
with ``constraint.`` hold CHECK constraints (§16.1) and are written only by
``Table.alter.add_constraint``.

Example:
    >>> check_properties({"checkpoint_interval": 10, "owner": "me"}, defaults=False)
    {'checkpoint_interval': '10', 'owner': 'me'}
    >>> check_property("target_file_size", "lots")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidTableError: property 'target_file_size' must be a positive integer ..., got 'lots'
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidTableError

__all__ = [
    "CHOICE_PROPERTIES",
    "CONSTRAINT_PREFIX",
    "DEFAULT_PROPERTIES",
    "KNOWN_PROPERTIES",
    "PROPERTY_SPECS",
    "PropertySpec",
    "PropertyWarning",
    "check_properties",
    "check_property",
    "checkpoint_interval",
    "delete_mode",
    "int_property",
    "log_min_retention",
    "target_file_size",
    "vacuum_min_retention",
]

CONSTRAINT_PREFIX = "constraint."
"""Properties named ``constraint.<name>`` hold the encoded CHECK constraint ``<name>``."""


class PropertyWarning(UserWarning):
    """A table property holds a value lakehouse refuses to use (set by another writer); the default
    is used instead."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PropertySpec:
    """A known integer property: its default, and the range of values it accepts.

    Attributes:
        default: the value used when the property is not set (or set to a bad value).
        minimum: the smallest value accepted.
        maximum: the largest value accepted.

    Example:
        >>> PROPERTY_SPECS["checkpoint_interval"].default, PROPERTY_SPECS["checkpoint_interval"].kind
        (100, 'positive')
    """

    default: int
    minimum: int
    maximum: int

    @property
    def kind(self) -> str:
        """``"positive"`` or ``"non-negative"`` (as the error messages and format §16 say)."""
        return "positive" if self.minimum > 0 else "non-negative"


_INT64_MAX = (1 << 63) - 1
_RETENTION_MAX = 10**10  # seconds, about 317 years: any datetime arithmetic with it stays in range
_WEEK = 7 * 24 * 3600

PROPERTY_SPECS: Mapping[str, PropertySpec] = {
    "checkpoint_interval": PropertySpec(default=100, minimum=1, maximum=_INT64_MAX),
    "target_file_size": PropertySpec(default=128 << 20, minimum=1, maximum=_INT64_MAX),
    "vacuum_min_retention_seconds": PropertySpec(default=_WEEK, minimum=0, maximum=_RETENTION_MAX),
    "log_min_retention_seconds": PropertySpec(default=_WEEK, minimum=0, maximum=_RETENTION_MAX),
}
"""Every plain property lakehouse reads (all documented in ``docs/format.md`` §16, which a test checks)."""

CHOICE_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "delete_mode": ("merge-on-read", "copy-on-write"),
}
"""Every property lakehouse reads that takes one of a few words: its values, the default first
(documented in ``docs/format.md`` §16)."""

KNOWN_PROPERTIES: Mapping[str, str] = {
    **{name: spec.kind for name, spec in PROPERTY_SPECS.items()},
    **{name: "one of " + ", ".join(values) for name, values in CHOICE_PROPERTIES.items()},
}
"""Every plain property lakehouse reads, with the kind of value it must hold."""

DEFAULT_PROPERTIES: Mapping[str, str] = {
    name: str(PROPERTY_SPECS[name].default) for name in ("checkpoint_interval", "target_file_size")
}
"""Written into the metadata of every new table (unless given)."""

_DIGITS = re.compile(r"[0-9]+\Z")


def _parse(spec: PropertySpec, text: str) -> int | None:
    """The value of ``text`` for ``spec``, or None if it is not valid (not decimal digits, or out of range)."""
    if not _DIGITS.match(text) or len(text) > 20:
        return None
    value = int(text)
    return value if spec.minimum <= value <= spec.maximum else None


def check_property(name: Any, value: Any) -> str:
    """Validate one property set by a user; return its value as a string.

    Args:
        name: the property name.
        value: its value (any value whose ``str`` is the text to store).

    Returns:
        The value as stored (a string).

    Raises:
        InvalidTableError: the name is not a non-empty string, names a constraint (those are set
            with ``Table.alter.add_constraint``), or the value is None or invalid or out of range for
            a known property (not one of its words for ``delete_mode``).

    Example:
        >>> check_property("checkpoint_interval", 5)
        '5'
    """
    if not isinstance(name, str) or not name:
        raise InvalidTableError(f"property names must be non-empty strings, got {name!r}")
    if name.startswith(CONSTRAINT_PREFIX):
        raise InvalidTableError(f"property {name!r} is reserved for CHECK constraints: use "
                                f"Table.alter.add_constraint / drop_constraint")
    if value is None:
        raise InvalidTableError(f"property {name!r} cannot be None (unset it with Table.alter.unset_properties)")
    if isinstance(value, bool):
        raise InvalidTableError(f"property {name!r} must be a string or an integer, got {value!r}")
    text = str(value)
    choices = CHOICE_PROPERTIES.get(name)
    if choices is not None and text not in choices:
        raise InvalidTableError(f"property {name!r} must be one of {', '.join(map(repr, choices))}, got {text!r}")
    spec = PROPERTY_SPECS.get(name)
    if spec is not None and _parse(spec, text) is None:
        raise InvalidTableError(f"property {name!r} must be a {spec.kind} integer of at most {spec.maximum}, "
                                f"got {text!r}")
    return text


def check_properties(properties: Mapping[str, Any] | None, *, defaults: bool) -> dict[str, str]:
    """Validate ``properties`` (see :func:`check_property`); with ``defaults``, fill in the defaults.

    Args:
        properties: names to values, or None.
        defaults: whether to start from :data:`DEFAULT_PROPERTIES` (a new table).

    Returns:
        The properties as stored (strings).

    Raises:
        InvalidTableError: ``properties`` is not a mapping, or :func:`check_property` refuses an item.

    Example:
        >>> check_properties(None, defaults=True)["checkpoint_interval"]
        '100'
    """
    props = dict(DEFAULT_PROPERTIES) if defaults else {}
    if properties is not None and not isinstance(properties, Mapping):
        raise InvalidTableError(f"properties must be a mapping of names to values, got {type(properties).__name__}")
    for name, value in (properties or {}).items():
        props[name] = check_property(name, value)
    return props


def int_property(properties: Mapping[str, str], name: str) -> int:
    """The value of the known integer property ``name`` as read from a table's metadata.

    A missing property has its default. A value that :func:`check_property` would refuse (another
    writer set it, format §16) is not trusted: the default is used and a :class:`PropertyWarning`
    names the property. Reading a property therefore never fails.

    Args:
        properties: the table's properties.
        name: a name of :data:`PROPERTY_SPECS`.

    Returns:
        The value to use.

    Example:
        >>> int_property({"checkpoint_interval": "10"}, "checkpoint_interval")
        10
        >>> int_property({}, "log_min_retention_seconds")
        604800
    """
    return _read(properties, name)


def _read(properties: Mapping[str, str], name: str) -> int:
    """:func:`int_property`; its warning names the caller of the public getter that called this."""
    spec = PROPERTY_SPECS[name]
    raw = properties.get(name)
    if raw is None:
        return spec.default
    value = _parse(spec, raw) if isinstance(raw, str) else None
    if value is None:
        warnings.warn(f"table property {name!r} holds {raw!r}, not a {spec.kind} integer of at most "
                      f"{spec.maximum}: using the default {spec.default}", PropertyWarning, stacklevel=4)
        return spec.default
    return value


def target_file_size(properties: Mapping[str, str]) -> int:
    """The bytes a data file is cut at (property ``target_file_size``, default 128 MiB).

    Args:
        properties: the table's properties.

    Returns:
        The value to use (the default, with a :class:`PropertyWarning`, if another writer set a bad one).

    Example:
        >>> target_file_size({}), target_file_size({"target_file_size": "1024"})
        (134217728, 1024)
    """
    return _read(properties, "target_file_size")


def checkpoint_interval(properties: Mapping[str, str]) -> int:
    """Every how many versions a writer also writes a checkpoint (property ``checkpoint_interval``, default 100).

    Args:
        properties: the table's properties.

    Returns:
        The value to use (the default, with a :class:`PropertyWarning`, if another writer set a bad one).

    Example:
        >>> checkpoint_interval({"checkpoint_interval": "10"})
        10
    """
    return _read(properties, "checkpoint_interval")


def vacuum_min_retention(properties: Mapping[str, str]) -> dt.timedelta:
    """The shortest retention vacuum accepts while enforcing it (property ``vacuum_min_retention_seconds``,
    default 7 days).

    Args:
        properties: the table's properties.

    Returns:
        The value to use (the default, with a :class:`PropertyWarning`, if another writer set a bad one).

    Example:
        >>> vacuum_min_retention({"vacuum_min_retention_seconds": "60"})
        datetime.timedelta(seconds=60)
    """
    return dt.timedelta(seconds=_read(properties, "vacuum_min_retention_seconds"))


def log_min_retention(properties: Mapping[str, str]) -> dt.timedelta:
    """The shortest retention log clean-up accepts while enforcing it (property
    ``log_min_retention_seconds``, default 7 days).

    Args:
        properties: the table's properties.

    Returns:
        The value to use (the default, with a :class:`PropertyWarning`, if another writer set a bad one).

    Example:
        >>> log_min_retention({})
        datetime.timedelta(days=7)
    """
    return dt.timedelta(seconds=_read(properties, "log_min_retention_seconds"))


def delete_mode(properties: Mapping[str, str]) -> str:
    """How row-level deletes and updates remove rows of existing files (property ``delete_mode``):
    ``"merge-on-read"`` (the default: deletion vectors, format §5.8, §16) or ``"copy-on-write"``
    (the files are rewritten without the rows).

    Args:
        properties: the table's properties.

    Returns:
        The value to use (the default, with a :class:`PropertyWarning`, if another writer set a bad one).

    Example:
        >>> delete_mode({}), delete_mode({"delete_mode": "copy-on-write"})
        ('merge-on-read', 'copy-on-write')
    """
    choices = CHOICE_PROPERTIES["delete_mode"]
    raw = properties.get("delete_mode")
    if raw is None:
        return choices[0]
    if raw not in choices:
        warnings.warn(f"table property 'delete_mode' holds {raw!r}, not one of {', '.join(map(repr, choices))}: "
                      f"using the default {choices[0]!r}", PropertyWarning, stacklevel=3)
        return choices[0]
    return raw
