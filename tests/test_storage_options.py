"""deltalake-style storage options (``AWS_ACCESS_KEY_ID``, ``AZURE_STORAGE_ACCOUNT_NAME``, ...) are
translated to the fsspec backend's arguments (issue 13, item 20), in any case; a key the backend
does not take is refused with a typed error naming it."""

from __future__ import annotations

import json
import os
import pickle
import uuid

import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.cli import cli
from lakehouse.storage import Storage
from lakehouse.storage_options import AZURE_OPTIONS, GCS_OPTIONS, S3_OPTIONS, translate

# a bounded profile in CI; LH_FUZZ=1 (make fuzz) draws many more spellings
BOUNDED = settings(max_examples=1000 if os.environ.get("LH_FUZZ") else 40, deadline=None)

# -- the translation tables ------------------------------------------------------------------------
S3_CASES = [
    ({"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "sec", "AWS_SESSION_TOKEN": "tok"},
     {"key": "id", "secret": "sec", "token": "tok"}),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ALLOW_HTTP": "true"},
     {"endpoint_url": "http://127.0.0.1:9000"}),
    ({"AWS_ENDPOINT": "https://minio.example"}, {"endpoint_url": "https://minio.example"}),
    ({"AWS_REGION": "eu-west-1"}, {"client_kwargs": {"region_name": "eu-west-1"}}),
    ({"AWS_DEFAULT_REGION": "eu-west-2"}, {"client_kwargs": {"region_name": "eu-west-2"}}),
    ({"AWS_DEFAULT_REGION": "eu-west-2", "AWS_REGION": "eu-west-1"}, {"client_kwargs": {"region_name": "eu-west-1"}}),
    ({"AWS_REGION": "eu-west-1", "client_kwargs": {"verify": False}},
     {"client_kwargs": {"verify": False, "region_name": "eu-west-1"}}),
    ({"AWS_PROFILE": "dev"}, {"profile": "dev"}),
    ({"AWS_SKIP_SIGNATURE": "true"}, {"anon": True}),
    ({"AWS_SKIP_SIGNATURE": "false"}, {}),
    ({"AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true"}, {"config_kwargs": {"s3": {"addressing_style": "virtual"}}}),
    ({"AWS_SERVER_SIDE_ENCRYPTION": "aws:kms", "AWS_SSE_KMS_KEY_ID": "k1"},
     {"s3_additional_kwargs": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k1"}}),
    ({"AWS_S3_ALLOW_UNSAFE_RENAME": "true", "AWS_CONDITIONAL_PUT": "etag"}, {}),
    ({"aws_access_key_id": "id", "Aws_Secret_Access_Key": "sec"}, {"key": "id", "secret": "sec"}),
    ({"ACCESS_KEY_ID": "id", "REGION": "r"}, {"key": "id", "client_kwargs": {"region_name": "r"}}),
    ({"key": "id", "AWS_ACCESS_KEY_ID": "id", "endpoint_url": "http://h"}, {"key": "id", "endpoint_url": "http://h"}),
    ({"anon": True, "use_ssl": False}, {"anon": True, "use_ssl": False}),  # fsspec's own, unchanged
]
AZURE_CASES = [
    ({"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "a2V5"},
     {"account_name": "acct", "account_key": "a2V5"}),
    ({"AZURE_STORAGE_ACCESS_KEY": "k"}, {"account_key": "k"}),
    ({"AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=x"}, {"sas_token": "sv=1&sig=x"}),
    ({"azure_storage_sas_key": "sv=1"}, {"sas_token": "sv=1"}),
    ({"AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=k"},
     {"connection_string": "AccountName=a;AccountKey=k"}),
    ({"AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s", "AZURE_TENANT_ID": "t"},
     {"client_id": "c", "client_secret": "s", "tenant_id": "t"}),
    ({"AZURE_STORAGE_CLIENT_ID": "c", "AZURE_STORAGE_AUTHORITY_ID": "t"}, {"client_id": "c", "tenant_id": "t"}),
    ({"AZURE_STORAGE_ENDPOINT": "https://acct.blob.core.windows.net"}, {"account_host": "acct.blob.core.windows.net"}),
    ({"AZURE_SKIP_SIGNATURE": "true", "AZURE_ALLOW_HTTP": "true"}, {"anon": True}),
    ({"account_name": "acct", "AZURE_STORAGE_ACCOUNT_NAME": "acct"}, {"account_name": "acct"}),
]
GCS_CASES = [
    ({"GOOGLE_SERVICE_ACCOUNT": "/s/sa.json"}, {"token": "/s/sa.json"}),
    ({"google_service_account_path": "/s/sa.json"}, {"token": "/s/sa.json"}),
    ({"GOOGLE_APPLICATION_CREDENTIALS": "/s/adc.json"}, {"token": "/s/adc.json"}),
    ({"GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps({"type": "service_account", "client_email": "e"})},
     {"token": {"type": "service_account", "client_email": "e"}}),
    ({"project": "p", "GOOGLE_SERVICE_ACCOUNT": "/s/sa.json"}, {"project": "p", "token": "/s/sa.json"}),
]


@pytest.mark.parametrize(("options", "expected"), S3_CASES)
def test_s3_translation(options, expected):
    assert translate("s3", options) == expected
    assert translate("s3a", options) == expected


@pytest.mark.parametrize(("options", "expected"), AZURE_CASES)
def test_azure_translation(options, expected):
    for protocol in ("abfs", "abfss", "az"):
        assert translate(protocol, options) == expected


@pytest.mark.parametrize(("options", "expected"), GCS_CASES)
def test_gcs_translation(options, expected):
    assert translate("gs", options) == expected
    assert translate("gcs", options) == expected


def test_translation_does_not_change_the_callers_options():
    nested = {"verify": False}
    options = {"AWS_REGION": "r", "client_kwargs": nested}
    translate("s3", options)
    assert nested == {"verify": False} and options == {"AWS_REGION": "r", "client_kwargs": nested}


@pytest.mark.parametrize(("protocol", "options", "named"), [
    ("s3", {"AWS_NOT_A_THING": "x"}, "AWS_NOT_A_THING"),
    ("s3", {"AZURE_STORAGE_ACCOUNT_NAME": "acct"}, "AZURE_STORAGE_ACCOUNT_NAME"),  # another backend's key
    ("s3", {"AWS_IMDSV1_FALLBACK": "true"}, "AWS_IMDSV1_FALLBACK"),  # object_store's, no s3fs counterpart
    ("s3", {"AWS_BUCKET": "b"}, "AWS_BUCKET"),
    ("abfs", {"AWS_ACCESS_KEY_ID": "id"}, "AWS_ACCESS_KEY_ID"),
    ("abfs", {"AZURE_STORAGE_TOKEN": "bearer"}, "AZURE_STORAGE_TOKEN"),
    ("abfs", {"AZURE_STORAGE_USE_EMULATOR": "true"}, "AZURE_STORAGE_USE_EMULATOR"),
    ("gs", {"GOOGLE_BUCKET": "b"}, "GOOGLE_BUCKET"),
    ("gs", {"Timeout": "5"}, "Timeout"),
    ("memory", {"AWS_REGION": "r"}, "AWS_REGION"),
    ("file", {"AZURE_STORAGE_ACCOUNT_NAME": "a"}, "AZURE_STORAGE_ACCOUNT_NAME"),
])
def test_unknown_deltalake_style_keys_are_refused_by_name(protocol, options, named):
    with pytest.raises(lh.InvalidArgumentError, match=named):
        translate(protocol, options)


@pytest.mark.parametrize(("protocol", "options", "named"), [
    ("s3", {"AWS_ALLOW_HTTP": "maybe"}, "AWS_ALLOW_HTTP"),
    ("s3", {"AWS_ALLOW_HTTP": "false", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "AWS_ALLOW_HTTP"),
    ("s3", {"AWS_ACCESS_KEY_ID": ["a"]}, "AWS_ACCESS_KEY_ID"),
    ("s3", {"key": "a", "AWS_ACCESS_KEY_ID": "b"}, "AWS_ACCESS_KEY_ID"),  # two values for one argument
    ("s3", {"client_kwargs": "nope", "AWS_REGION": "r"}, "client_kwargs"),
    ("abfs", {"AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:10000/devstoreaccount1"}, "AZURE_STORAGE_ENDPOINT"),
    ("gs", {"GOOGLE_SERVICE_ACCOUNT_KEY": "{not json"}, "GOOGLE_SERVICE_ACCOUNT_KEY"),
])
def test_bad_values_are_refused_by_name(protocol, options, named):
    with pytest.raises(lh.InvalidArgumentError, match=named):
        translate(protocol, options)


_TABLES = [("s3", S3_OPTIONS), ("abfs", AZURE_OPTIONS), ("gs", GCS_OPTIONS)]
_KEYS = [(protocol, key) for protocol, table in _TABLES for key in table if key.startswith(("aws_", "azure_",
                                                                                               "google_"))]


@settings(BOUNDED)
@given(st.sampled_from(_KEYS), st.data())
def test_every_key_is_case_insensitive(case, data):
    """Any spelling of a table's key translates like its lower-case form."""
    protocol, key = case
    spelled = "".join(c.upper() if data.draw(st.booleans()) else c for c in key)
    value = "true" if "allow" in key or "skip" in key or "virtual" in key or "rename" in key else \
        json.dumps({"k": "v"}) if key.endswith("service_account_key") else "https://host.example"
    assert translate(protocol, {spelled: value}) == translate(protocol, {key: value})


def test_storage_builds_the_backend_from_deltalake_keys():
    storage = Storage.from_uri("abfs://container/t", {"AZURE_STORAGE_ACCOUNT_NAME": "acct",
                                                      "AZURE_STORAGE_ACCOUNT_KEY": "a2V5"})
    assert (storage.fs.account_name, storage.fs.account_key) == ("acct", "a2V5")
    with pytest.raises(lh.InvalidArgumentError, match="AWS_REGION"):
        lh.write_table("memory://so-refused", pa.table({"a": [1]}), storage_options={"AWS_REGION": "r"})


# -- against a real S3 API, with nothing but deltalake's keys -----------------------------------------
def _aws_options(server) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": server.endpoint,
            "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


@pytest.mark.s3
def test_s3_with_only_deltalake_keys(s3):
    uri = f"s3://lakehouse-test/so-{uuid.uuid4().hex}"
    options = _aws_options(s3)
    t = lh.write_table(uri, pa.table({"a": [1, 2]}), storage_options=options)
    assert lh.write_table(uri, pa.table({"a": [3]}), mode="append", storage_options=options).version == 1
    opened = lh.Table.open(uri, storage_options=options)
    assert sorted(opened.to_arrow().column("a").to_pylist()) == [1, 2, 3]
    assert lh.Table.open(uri, version=0, storage_options=options).to_arrow().num_rows == 2
    assert sorted(pickle.loads(pickle.dumps(t)).to_arrow().column("a").to_pylist()) == [1, 2]
    lower = {k.lower(): v for k, v in options.items()}
    assert lh.Table.open(uri, storage_options=lower).version == 1
    result = CliRunner().invoke(cli, ["describe", uri, "-o", "json",
                                      *[f"--storage-option={k}={v}" for k, v in options.items()]])
    assert result.exit_code == 0, result.output
    assert '"version": 1' in result.output
