"""deltalake-style storage options, translated to the arguments of the fsspec backend.

deltalake (delta-rs, through the Rust ``object_store`` crate) takes options such as
``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_ACCOUNT_NAME`` or
``GOOGLE_SERVICE_ACCOUNT``, in any case. lakehouse talks to storage through fsspec, whose backends
take other names (s3fs: ``key``, ``secret``, ``endpoint_url``, ...). :func:`translate` turns the
first kind into the second, so code written for deltalake keeps working:

* a key with an upper-case letter, or starting with ``aws_``, ``azure_`` or ``google_``, is a
  deltalake-style key: it is looked up (case-insensitively) in the table of the URI's backend and
  replaced by that backend's argument; a key that backend does not know, or one lakehouse cannot
  express for it, is refused with :class:`~lakehouse.errors.InvalidArgumentError` naming it;
* every other key (lower case, e.g. ``key``, ``endpoint_url``, ``client_kwargs``) is the fsspec
  backend's own argument and is passed unchanged, as before.

The tables are :data:`S3_OPTIONS`, :data:`AZURE_OPTIONS` and :data:`GCS_OPTIONS`; see
``docs/howto-storage.md``.

Example:
    >>> translate("s3", {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"})
    {'key': 'id', 'secret': 's', 'client_kwargs': {'region_name': 'eu-west-1'}}
    >>> translate("abfs", {"azure_storage_account_name": "acct", "AZURE_STORAGE_SAS_TOKEN": "sv=1"})
    {'account_name': 'acct', 'sas_token': 'sv=1'}
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgumentError

__all__ = [
    "ALLOW_SYMLINKS",
    "AZURE_OPTIONS",
    "GCS_OPTIONS",
    "LAKEHOUSE_OPTIONS",
    "S3_OPTIONS",
    "TYPED_OPTIONS",
    "UNSAFE_SINGLE_WRITER",
    "backend_of",
    "is_deltalake_style",
    "lakehouse_options",
    "option_from_text",
    "translate",
]

UNSAFE_SINGLE_WRITER = "lakehouse.unsafe_single_writer"
"""Storage option that allows writing where no atomic create-if-absent exists (one writer only)."""

ALLOW_SYMLINKS = "lakehouse.allow_symlinks"
"""Storage option that lets readers and writers on local disk follow symbolic links out of the table
root (a partition tiered onto another disk); without it such paths are refused (format §3.1)."""

LAKEHOUSE_OPTIONS: dict[str, str] = {UNSAFE_SINGLE_WRITER: "bool", ALLOW_SYMLINKS: "bool"}
"""The options lakehouse itself reads (every other ``lakehouse.*`` key is refused) -> their kind."""

TYPED_OPTIONS: dict[str, str] = {
    **LAKEHOUSE_OPTIONS,
    # fsspec backends' own arguments whose value is not text: "bool", "int", "float" or "mapping"
    **dict.fromkeys(("anon", "use_ssl", "requester_pays", "version_aware", "skip_instance_cache",
                     "use_listings_cache", "auto_mkdir", "asynchronous", "cache_regions", "fixed_upload_size",
                     "default_fill_cache"), "bool"),
    **dict.fromkeys(("default_block_size", "blocksize", "max_concurrency", "retries", "max_paths", "port"), "int"),
    **dict.fromkeys(("listings_expiry_time", "timeout"), "float"),
    **dict.fromkeys(("client_kwargs", "config_kwargs", "s3_additional_kwargs", "headers"), "mapping"),
}
"""Storage options whose value is not text, by kind: what the command line converts its text
values for (every other value stays text), and where a text value for a ``"bool"`` option is
refused (``bool("false")`` is True)."""

Target = tuple[str, ...]
"""Where a value goes in the backend's arguments: ``("key",)``, ``("client_kwargs", "region_name")``."""

# Marker targets: the value is checked and then has no effect (the option exists for deltalake
# compatibility, and lakehouse's behaviour already covers it), or it needs a conversion.
_IGNORED_BOOL: Target = ("<ignored bool>",)
_IGNORED: Target = ("<ignored>",)
_ALLOW_HTTP: Target = ("<allow http>",)
_ANON: Target = ("<anon>",)
_ADDRESSING: Target = ("<addressing style>",)
_ACCOUNT_HOST: Target = ("<account host>",)
_GCS_KEY: Target = ("<gcs key json>",)
_DEFAULT_REGION: Target = ("<default region>",)


def _aliases(target: Target, *names: str) -> dict[str, Target]:
    return dict.fromkeys(names, target)


S3_OPTIONS: dict[str, Target] = {
    **_aliases(("key",), "aws_access_key_id", "access_key_id"),
    **_aliases(("secret",), "aws_secret_access_key", "secret_access_key"),
    **_aliases(("token",), "aws_session_token", "aws_token", "session_token", "token"),
    **_aliases(("endpoint_url",), "aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint"),
    **_aliases(("client_kwargs", "region_name"), "aws_region", "region"),
    **_aliases(_DEFAULT_REGION, "aws_default_region", "default_region"),
    **_aliases(("profile",), "aws_profile", "profile"),
    **_aliases(_ALLOW_HTTP, "aws_allow_http", "allow_http"),
    **_aliases(_ANON, "aws_skip_signature", "skip_signature"),
    **_aliases(_ADDRESSING, "aws_virtual_hosted_style_request", "virtual_hosted_style_request"),
    **_aliases(("s3_additional_kwargs", "ServerSideEncryption"), "aws_server_side_encryption"),
    **_aliases(("s3_additional_kwargs", "SSEKMSKeyId"), "aws_sse_kms_key_id"),
    # commits use conditional PUTs, checked by the capability probe: no lock or rename to configure
    **_aliases(_IGNORED_BOOL, "aws_s3_allow_unsafe_rename"),
    **_aliases(_IGNORED, "aws_conditional_put", "conditional_put", "aws_s3_locking_provider"),
}
"""deltalake/object_store S3 keys (lower case) -> s3fs arguments."""

AZURE_OPTIONS: dict[str, Target] = {
    **_aliases(("account_name",), "azure_storage_account_name", "account_name"),
    **_aliases(("account_key",), "azure_storage_account_key", "azure_storage_access_key",
               "azure_storage_master_key", "account_key", "access_key", "master_key"),
    **_aliases(("sas_token",), "azure_storage_sas_key", "azure_storage_sas_token", "sas_key", "sas_token"),
    **_aliases(("connection_string",), "azure_storage_connection_string", "connection_string"),
    **_aliases(("client_id",), "azure_storage_client_id", "azure_client_id", "client_id"),
    **_aliases(("client_secret",), "azure_storage_client_secret", "azure_client_secret", "client_secret"),
    **_aliases(("tenant_id",), "azure_storage_tenant_id", "azure_storage_authority_id", "azure_tenant_id",
               "azure_authority_id", "tenant_id", "authority_id"),
    **_aliases(_ACCOUNT_HOST, "azure_storage_endpoint", "azure_endpoint", "endpoint"),
    **_aliases(_ANON, "azure_skip_signature", "skip_signature"),
    **_aliases(_ALLOW_HTTP, "azure_allow_http", "allow_http"),
}
"""deltalake/object_store Azure keys (lower case) -> adlfs arguments."""

GCS_OPTIONS: dict[str, Target] = {
    **_aliases(("token",), "google_service_account", "service_account", "google_service_account_path",
               "service_account_path", "google_application_credentials"),
    **_aliases(_GCS_KEY, "google_service_account_key", "service_account_key"),
    **_aliases(_ALLOW_HTTP, "google_allow_http", "allow_http"),
}
"""deltalake/object_store GCS keys (lower case) -> gcsfs arguments."""

_BACKENDS: dict[str, tuple[str, dict[str, Target]]] = {
    **dict.fromkeys(("s3", "s3a"), ("S3", S3_OPTIONS)),
    **dict.fromkeys(("abfs", "abfss", "az", "adl"), ("Azure", AZURE_OPTIONS)),
    **dict.fromkeys(("gs", "gcs"), ("GCS", GCS_OPTIONS)),
}
_PREFIXES = ("aws_", "azure_", "google_")


def backend_of(uri: str) -> str:
    """The fsspec protocol of ``uri`` (of its last part for a chained URL); ``"file"`` for a path.

    Args:
        uri: a table URI or local path.

    Returns:
        The protocol, lower case.

    Example:
        >>> backend_of("s3://bucket/t"), backend_of("/data/t"), backend_of("simplecache::gs://b/t")
        ('s3', 'file', 'gs')
    """
    last = uri.rsplit("::", 1)[-1]
    scheme, sep, _ = last.partition("://")
    return scheme.lower() if sep and scheme else "file"


def is_deltalake_style(key: str) -> bool:
    """True for a key written the deltalake way (an upper-case letter, or an aws_/azure_/google_ prefix).

    Args:
        key: a storage option's name.

    Returns:
        Whether :func:`translate` maps it to a backend argument.

    Example:
        >>> is_deltalake_style("AWS_REGION"), is_deltalake_style("aws_region"), is_deltalake_style("key")
        (True, True, False)
    """
    return key != key.lower() or key.lower().startswith(_PREFIXES)


def translate(protocol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every deltalake-style key replaced by the fsspec backend's argument.

    Args:
        protocol: the URI's fsspec protocol (``"s3"``, ``"abfs"``, ``"gs"``, ``"file"``, ...).
        options: the user's storage options.

    Returns:
        The options for the fsspec backend (a new dict; nested dicts are copied, not shared).

    Raises:
        InvalidArgumentError: a deltalake-style key the backend does not know (or that lakehouse
            cannot pass to it), a value of the wrong shape, or two keys that set one argument to
            different values. The message names the key.

    Example:
        >>> translate("gs", {"GOOGLE_SERVICE_ACCOUNT": "/secrets/sa.json"})
        {'token': '/secrets/sa.json'}
        >>> translate("memory", {"AWS_REGION": "x"})
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidArgumentError: storage option 'AWS_REGION' is not an option for 'memory' URIs ...
    """
    # the backend's own arguments first: deltalake-style keys are merged into them
    out: dict[str, Any] = {k: v for k, v in options.items() if not (isinstance(k, str) and is_deltalake_style(k))}
    special: dict[Target, tuple[str, Any]] = {}
    name, table = _BACKENDS.get(protocol, (protocol, {}))
    for key, value in options.items():
        if key in out:
            continue
        target = table.get(key.lower())
        if target is None:
            raise InvalidArgumentError(_unknown(key, protocol, name, table), argument="storage_options")
        if target[0].startswith("<"):
            special.setdefault(target, (key, value))
        else:
            _put(out, target, _text(key, value), key)
    _apply_special(out, special)
    return out


def lakehouse_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``options`` into lakehouse's own (``lakehouse.*``, checked strictly) and the rest.

    Args:
        options: the user's storage options.

    Returns:
        ``(lakehouse options, the other options)``; a flag the user did not give is absent.

    Raises:
        InvalidArgumentError: an unknown ``lakehouse.*`` key, a flag that is not exactly ``True`` or
            ``False`` (text such as ``"false"`` is refused: ``bool("false")`` is True), or a text
            value for a backend option that takes a bool (``anon``, ``use_ssl``, ...). It names the key.

    Example:
        >>> lakehouse_options({"lakehouse.unsafe_single_writer": True, "anon": False})
        ({'lakehouse.unsafe_single_writer': True}, {'anon': False})
        >>> lakehouse_options({"lakehouse.unsafe_single_writer": "false"})
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidArgumentError: storage option 'lakehouse.unsafe_single_writer' must be ...
    """
    own: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise InvalidArgumentError(f"storage option names must be strings, got {key!r}", argument="storage_options")
        kind = TYPED_OPTIONS.get(key)
        if key.lower().startswith("lakehouse."):
            if key not in LAKEHOUSE_OPTIONS:
                raise InvalidArgumentError(f"unknown lakehouse storage option {key!r}; the lakehouse options are "
                                           f"{', '.join(sorted(LAKEHOUSE_OPTIONS))}", argument="storage_options")
            own[key] = _strict_flag(key, value)
        else:
            if kind == "bool" and isinstance(value, str):
                _strict_flag(key, value)  # raises: text would be truthy in the backend
            rest[key] = value
    return own, rest


def _strict_flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidArgumentError(f"storage option {key!r} must be True or False, got {value!r} "
                               f"({type(value).__name__}); on the command line write exactly true or false",
                               argument="storage_options")


def option_from_text(key: str, text: str) -> Any:
    """The value of storage option ``key`` given as command-line text: text, unless ``key`` is a
    known typed option (:data:`TYPED_OPTIONS`). Numeric-looking secrets stay as written.

    Args:
        key: the option's name.
        text: its value as written.

    Returns:
        ``text`` itself, or for a typed option: a bool (exactly ``true``/``false``), an int, a float
        or a JSON object.

    Raises:
        InvalidArgumentError: text that is not of the option's kind; the message names the key.

    Example:
        >>> option_from_text("AWS_SECRET_ACCESS_KEY", "1e5"), option_from_text("key", "NaN")
        ('1e5', 'NaN')
        >>> option_from_text("lakehouse.unsafe_single_writer", "true"), option_from_text("retries", "3")
        (True, 3)
        >>> option_from_text("anon", "False")
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidArgumentError: storage option 'anon' must be exactly true or false, not 'False'
    """
    kind = TYPED_OPTIONS.get(key)
    if kind is None:
        return text
    if kind == "bool":
        if text in ("true", "false"):
            return text == "true"
        raise InvalidArgumentError(f"storage option {key!r} must be exactly true or false, not {text!r}",
                                   argument="storage_options")
    try:
        if kind == "int" and text.strip().lstrip("+-").isdigit():
            return int(text)
        if kind == "float":
            value = float(text)
            if value == value and value not in (float("inf"), float("-inf")):
                return value
        if kind == "mapping":
            value = json.loads(text)
            if isinstance(value, dict):
                return value
    except ValueError:
        pass
    expected = {"int": "an integer", "float": "a finite number", "mapping": "a JSON object"}[kind]
    raise InvalidArgumentError(f"storage option {key!r} must be {expected}, not {text!r}", argument="storage_options")


def _unknown(key: str, protocol: str, name: str, table: Mapping[str, Target]) -> str:
    if not table:
        return (f"storage option {key!r} is not an option for {protocol!r} URIs (deltalake-style keys apply to "
                f"s3://, abfs:// and gs:// tables)")
    known = sorted({k.upper() for k in table if k.startswith(_PREFIXES)})
    return (f"storage option {key!r} is not a {name} option lakehouse can pass to its filesystem; the "
            f"deltalake-style {name} keys it takes are {', '.join(known)} (or give the fsspec backend's own "
            f"lower-case arguments)")


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgumentError(f"storage option {key!r} must be a string, got {type(value).__name__}",
                                   argument="storage_options")
    return str(value)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InvalidArgumentError(f"storage option {key!r} must be true or false, got {value!r}",
                               argument="storage_options")


def _put(out: dict[str, Any], target: Target, value: Any, key: str) -> None:
    """Set ``out[target[0]][target[1]]... = value``; a different value already there is refused."""
    node = out
    for part in target[:-1]:
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, Mapping):
            raise InvalidArgumentError(f"storage option {part!r} must be a mapping to combine it with {key!r}",
                                       argument="storage_options")
        node[part] = child = dict(child)  # a copy: never change the caller's nested dicts
        node = child
    last = target[-1]
    if last in node and node[last] != value:
        raise InvalidArgumentError(f"storage option {key!r} sets {'.'.join(target)} to a value another option "
                                   f"already gave it", argument="storage_options")
    node[last] = value


def _apply_special(out: dict[str, Any], special: Mapping[Target, tuple[str, Any]]) -> None:
    """The options that need a conversion, applied after the plain ones (which take precedence)."""
    for target, (key, value) in special.items():
        if target == _IGNORED_BOOL:
            _flag(key, value)
        elif target == _ANON:
            if _flag(key, value):
                _put(out, ("anon",), True, key)
        elif target == _ADDRESSING:
            style = "virtual" if _flag(key, value) else "path"
            _put(out, ("config_kwargs", "s3", "addressing_style"), style, key)
        elif target == _DEFAULT_REGION:
            client = out.get("client_kwargs")
            if not (isinstance(client, Mapping) and client.get("region_name")):
                _put(out, ("client_kwargs", "region_name"), _text(key, value), key)
        elif target == _ACCOUNT_HOST:
            _put(out, ("account_host",), _account_host(key, _text(key, value)), key)
        elif target == _GCS_KEY:
            _put(out, ("token",), _json_key(key, _text(key, value)), key)
    allow = special.get(_ALLOW_HTTP)
    if allow is not None and not _flag(*allow):
        endpoint = out.get("endpoint_url") or (out.get("client_kwargs") or {}).get("endpoint_url")
        if isinstance(endpoint, str) and endpoint.lower().startswith("http://"):
            raise InvalidArgumentError(f"storage option {allow[0]!r} is false but the endpoint {endpoint!r} is "
                                       f"plain HTTP", argument="storage_options")


def _account_host(key: str, endpoint: str) -> str:
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme != "https" or not parts.netloc or parts.path.strip("/"):
        raise InvalidArgumentError(f"storage option {key!r}: adlfs reaches an account over https at a host name "
                                   f"({endpoint!r} is not one); for another endpoint (e.g. Azurite) give "
                                   f"AZURE_STORAGE_CONNECTION_STRING", argument="storage_options")
    return parts.netloc


def _json_key(key: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"storage option {key!r} must be a service account key as JSON text",
                                   argument="storage_options")
    return value
