"""Table properties: the ones lakehouse reads, their defaults, and validating values when set.

Properties are strings (``docs/format.md`` §16). Unknown names are kept as they are; the known
ones are checked when a table is created and by ``Table.alter.set_properties``. Names starting
with ``constraint.`` hold CHECK constraints (§16.1) and are written only by
``Table.alter.add_constraint``.

Example:
    >>> check_properties({"checkpoint_interval": 10, "owner": "me"}, defaults=False)
    {'checkpoint_interval': '10', 'owner': 'me'}
    >>> check_property("target_file_size", "lots")
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidTableError: property 'target_file_size' must be a positive integer, got 'lots'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidTableError

__all__ = ["CONSTRAINT_PREFIX", "DEFAULT_PROPERTIES", "KNOWN_PROPERTIES", "check_properties", "check_property"]

CONSTRAINT_PREFIX = "constraint."
"""Properties named ``constraint.<name>`` hold the encoded CHECK constraint ``<name>``."""

DEFAULT_PROPERTIES: Mapping[str, str] = {"checkpoint_interval": "100", "target_file_size": str(128 << 20)}
"""Written into the metadata of every new table (unless given)."""

_DIGITS = re.compile(r"[0-9]+\Z")

KNOWN_PROPERTIES: Mapping[str, str] = {
    "checkpoint_interval": "positive",
    "target_file_size": "positive",
    "vacuum_min_retention_seconds": "non-negative",
    "log_min_retention_seconds": "non-negative",
}
"""Every plain property lakehouse reads, with the kind of integer it must hold (all documented in
``docs/format.md`` §16, which a test checks)."""


def check_property(name: Any, value: Any) -> str:
    """Validate one property set by a user; return its value as a string.

    Raises:
        InvalidTableError: the name is not a non-empty string, names a constraint (those are set
            with ``Table.alter.add_constraint``), or the value is None or invalid for a known property.

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
    text = str(value)
    kind = KNOWN_PROPERTIES.get(name)
    if kind is not None and (not _DIGITS.match(text) or (kind == "positive" and int(text) == 0)):
        raise InvalidTableError(f"property {name!r} must be a {kind} integer, got {text!r}")
    return text


def check_properties(properties: Mapping[str, Any] | None, *, defaults: bool) -> dict[str, str]:
    """Validate ``properties`` (see :func:`check_property`); with ``defaults``, fill in the defaults.

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
