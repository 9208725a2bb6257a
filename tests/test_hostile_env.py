"""A hostile environment (issue 14, items 5, 7, 8 and the two S3 checks).

* safety switches given as text: ``lakehouse.*`` storage options take only a real ``True`` or
  ``False``; command-line values stay text unless the option is known to be typed;
* credentials in URIs: the user info of a URL (``ftp://user:password@host/``) appears in no error,
  ``repr``, report or command-line output;
* relative URIs: a local URI is made absolute when a table is opened, so a pickled handle opens
  the same table under another working directory, and a handle reopened onto another table (same
  URI, other table id) is refused;
* S3: percent-encoded segments (``%2e%2e``) are never decoded into ``..``; the capability probe's
  verdict is cached per store (an AWS ``profile`` can select another endpoint), not per endpoint text.

CI runs few hypothesis examples; ``LH_FUZZ=1`` (``make fuzz``) runs many.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import http.server
import json
import os
import pickle
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.cli import cli, parse_storage_options
from lakehouse.errors import redact_uri
from lakehouse.log import validate_data_path
from lakehouse.storage import UNSAFE_SINGLE_WRITER, Storage
from lakehouse.storage_options import TYPED_OPTIONS

PROFILE = settings(max_examples=300 if os.environ.get("LH_FUZZ") else 25, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _data(values: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(values, pa.int64())})


def _ids(table: lh.Table | lh.Snapshot) -> list[int]:
    return sorted(table.to_arrow().column("id").to_pylist())


# -- item 5: safety switches given as text ------------------------------------------------------------
_NOT_A_BOOL = st.one_of(
    st.sampled_from(["false", "False", "FALSE", "0", "no", "off", "", "true", "True", "1", "yes", "on"]),
    st.text(max_size=8), st.integers(), st.none(), st.floats(allow_nan=True), st.lists(st.booleans(), max_size=2),
)


@PROFILE
@given(value=_NOT_A_BOOL)
def test_a_lakehouse_flag_takes_only_a_real_bool(value: Any) -> None:
    """``bool("false")`` is True: text (or a number, or None) for a safety switch is refused, never guessed."""
    with pytest.raises(lh.InvalidArgumentError, match=UNSAFE_SINGLE_WRITER) as info:
        Storage.from_uri(f"memory://flag-{uuid.uuid4().hex}", {UNSAFE_SINGLE_WRITER: value})
    assert info.value.argument == "storage_options"


def test_a_real_bool_sets_the_flag_and_unknown_lakehouse_options_are_refused() -> None:
    assert Storage.from_uri("memory://flag-t", {UNSAFE_SINGLE_WRITER: True}).unsafe_single_writer is True
    assert Storage.from_uri("memory://flag-f", {UNSAFE_SINGLE_WRITER: False}).unsafe_single_writer is False
    assert Storage.from_uri("memory://flag-n").unsafe_single_writer is False
    for key in ("lakehouse.unsafe_single_writers", "lakehouse.allow_anything", "LAKEHOUSE.UNSAFE_SINGLE_WRITER"):
        with pytest.raises(lh.InvalidArgumentError, match=key.replace(".", r"\.")):
            Storage.from_uri("memory://flag-u", {key: True})
    # a backend's own flag given as text would be truthy in the backend too (s3fs: anon="false" is anonymous)
    with pytest.raises(lh.InvalidArgumentError, match="'anon'"):
        Storage.from_uri("s3://bucket/t", {"anon": "false"})
    assert Storage.from_uri("s3://bucket/t", {"anon": False}).fs.anon is False


_CLI_KEYS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True), st.from_regex(r"(AWS|AZURE|GOOGLE)_[A-Z_]{1,20}",
                                                                          fullmatch=True),
).filter(lambda k: k not in TYPED_OPTIONS)


@PROFILE
@given(key=_CLI_KEYS, value=st.one_of(st.sampled_from(["1e5", "NaN", "true", "null", "0123", "[1]", '{"a": 1}',
                                                        "Infinity", "-0"]), st.text()))
def test_command_line_values_stay_text_unless_the_option_is_typed(key: str, value: str) -> None:
    assert parse_storage_options([f"{key}={value}"]) == {key: value}


def _dir_options(tmp_path: Path) -> list[str]:
    # the dir:// filesystem is not a conditional store: a write needs the single-writer opt-in
    return ["--storage-option", f"path={tmp_path}", "--storage-option", "target_protocol=file"]


@pytest.mark.parametrize("text", ["False", "0", "no", "off", "FALSE", " true", "True", "1", ""])
def test_cli_flag_text_other_than_true_or_false_is_a_usage_error(tmp_path: Path, text: str) -> None:
    lh.write_table(str(tmp_path / "t"), _data([1, 2]))
    result = CliRunner().invoke(cli, ["restore", "dir://t", "0", *_dir_options(tmp_path),
                                      "--storage-option", f"{UNSAFE_SINGLE_WRITER}={text}"])
    assert result.exit_code == 2, result.output
    assert UNSAFE_SINGLE_WRITER in result.output
    assert lh.Table.open(str(tmp_path / "t")).version == 0, "nothing written"


def test_cli_flag_false_keeps_the_store_refused_and_true_opts_in(tmp_path: Path) -> None:
    lh.write_table(str(tmp_path / "t"), _data([1, 2]))
    base = ["restore", "dir://t", "0", *_dir_options(tmp_path)]
    refused = CliRunner().invoke(cli, [*base, "--storage-option", f"{UNSAFE_SINGLE_WRITER}=false"])
    assert refused.exit_code == 1 and "UnsafeStorageError" in refused.output, refused.output
    assert lh.Table.open(str(tmp_path / "t")).version == 0
    assert CliRunner().invoke(cli, [*base, "--storage-option", f"{UNSAFE_SINGLE_WRITER}=true"]).exit_code == 0
    assert lh.Table.open(str(tmp_path / "t")).version == 1


# -- item 7: credentials in URIs ----------------------------------------------------------------------
_SECRET_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=12)


@PROFILE
@given(scheme=st.sampled_from(["ftp", "sftp", "s3", "abfs", "http", "https", "memory", "simplecache::s3"]),
       user=_SECRET_TEXT, password=_SECRET_TEXT, path=st.from_regex(r"(/[a-z0-9._-]{1,8}){0,3}", fullmatch=True))
def test_redact_uri_masks_every_user_info(scheme: str, user: str, password: str, path: str) -> None:
    user_q, pw_q = urllib.parse.quote(f"uSeR{user}", safe=""), urllib.parse.quote(f"pAsS{password}", safe="")
    for info in (f"{user_q}:{pw_q}", user_q, f":{pw_q}"):
        uri = f"{scheme}://{info}@host.example:21{path}"
        shown = redact_uri(uri)
        assert "uSeR" not in shown and "pAsS" not in shown, shown
        assert shown == f"{scheme}://***@host.example:21{path}" and redact_uri(shown) == shown
        message = f"no table at {uri!r}; also see {uri} (and plain://host/x)"
        assert "pAsS" not in redact_uri(message) and "plain://host/x" in redact_uri(message)
    assert redact_uri("s3://bucket/a@b/c") == "s3://bucket/a@b/c", "an @ in a path is not user info"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A read-only HTTP server on 127.0.0.1 over a folder (fsspec logs in with a URL's user info)."""
    root = tmp_path_factory.mktemp("http")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _shown(action: Any) -> str:
    """Everything an action shows: its result's repr and str, or its error's str, repr and args."""
    try:
        result = action()
    except Exception as exc:  # every failure is what we look at
        return f"{type(exc).__name__} {exc} {exc!r} {exc.args!r} {getattr(exc, 'uri', '')}"
    return f"{result!r} {result}"


@PROFILE
@given(user=_SECRET_TEXT.map(lambda u: u.replace(":", "")), password=_SECRET_TEXT)  # RFC 7617: no ':' in a user
def test_no_password_of_a_uri_is_shown(http_root: tuple[Path, int], user: str, password: str) -> None:
    folder, port = http_root
    name = f"t{uuid.uuid4().hex[:8]}"
    lh.write_table(str(folder / name), _data([1, 2]))
    info = f"{urllib.parse.quote('uSeR' + user, safe='')}:{urllib.parse.quote('pAsS' + password, safe='')}"
    uri = f"http://{info}@127.0.0.1:{port}/{name}"
    table = lh.Table.open(uri)
    assert _ids(table) == [1, 2]  # the URI works: it is only never shown
    unsafe = {UNSAFE_SINGLE_WRITER: True}
    shown = [
        _shown(lambda: table), _shown(lambda: table.snapshot()), _shown(lambda: Storage.from_uri(uri)),
        _shown(lambda: table.snapshot().plan_files()),
        _shown(lambda: lh.Table.open(f"{uri}-missing")),  # TableNotFoundError
        _shown(lambda: lh.write_table(uri, _data([3]), storage_options=unsafe)),  # TableExistsError
        _shown(lambda: table.append(_data([3]))),  # UnsafeStorageError
        _shown(lambda: lh.Table.create(f"{uri}-new", table.schema)),
        _shown(lambda: lh.check_storage(uri, rounds=1, racers=2)),
        _shown(lambda: lh.check_storage(uri, rounds=1, racers=2).uri),
    ]
    runner = CliRunner()
    for args in (["describe", uri], ["describe", uri, "--output", "json"], ["describe", f"{uri}-missing"],
                 ["checkpoint", uri], ["files", uri], ["-v", "history", f"{uri}-missing"]):
        result = runner.invoke(cli, args)
        shown.append(f"{result.output} {result.stderr}")
    assert json.loads(runner.invoke(cli, ["describe", uri, "--output", "json"]).output)["uri"] == redact_uri(uri)
    for text in shown:
        assert "pAsS" not in text and "uSeR" not in text, text
    assert "***@127.0.0.1" in shown[4] and "***@127.0.0.1" in shown[0]  # TableNotFoundError, repr
    shutil.rmtree(folder / name)


# -- item 8: relative URIs ----------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["plain", "dot", "file", "local", "home"])
def test_a_pickled_handle_opens_the_same_table_in_another_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    for folder in (here, there):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(here))
    monkeypatch.chdir(here)
    uri = {"plain": "rel/t", "dot": "./rel/../rel/t", "file": "file://rel/t", "local": "local://rel/t",
           "home": "~/rel/t"}[form]
    table = lh.write_table(uri, _data([1, 2]))
    assert table.uri == str(here / "rel" / "t"), "a local URI is made absolute"
    blobs = [pickle.dumps(table), pickle.dumps(table.snapshot()), pickle.dumps(table.snapshot().plan_files())]
    # another process's working directory (and home) holds another table under the same relative URI
    monkeypatch.chdir(there)
    monkeypatch.setenv("HOME", str(there))
    lh.write_table(uri, _data([7, 8, 9]))
    copy, snap, tasks = (pickle.loads(b) for b in blobs)
    assert _ids(copy) == _ids(snap) == [1, 2]
    assert sorted(i for t in tasks for i in lh.read_task(t).column("id").to_pylist()) == [1, 2]
    copy.append(_data([3]))
    assert _ids(lh.Table.open(str(here / "rel" / "t"))) == [1, 2, 3]
    assert _ids(lh.Table.open(str(there / "rel" / "t"))) == [7, 8, 9], "the other table is untouched"


def test_a_pickled_handle_refuses_another_table_at_its_uri(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    table = lh.write_table(uri, _data([1, 2]))
    blobs = pickle.dumps(table), pickle.dumps(table.snapshot())
    shutil.rmtree(uri)
    lh.write_table(uri, _data([5]))  # the same URI, another table (another table id)
    for blob in blobs:
        with pytest.raises(lh.InvalidTableError, match="not the table this handle was pickled from"):
            pickle.loads(blob)
    assert _ids(pickle.loads(pickle.dumps(lh.Table.open(uri)))) == [5]


def test_to_lakehouse_hands_workers_the_absolute_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask workers run in their own working directory: the driver passes them the table's absolute URI."""
    pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    import dask
    import dask.dataframe as dd

    from lakehouse.dask import to_lakehouse

    monkeypatch.chdir(tmp_path)
    seen: list[str] = []
    real = dask.delayed

    def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        wrapped = real(fn, *args, **kwargs)
        return lambda frame, uri, opts: (seen.append(uri), wrapped(frame, uri, opts))[1]

    monkeypatch.setattr(dask, "delayed", spy)
    with dask.config.set(scheduler="synchronous"):
        to_lakehouse(dd.from_pandas(pd.DataFrame({"id": [1, 2, 3]}), npartitions=2), "rel/t")
    assert seen and all(u == str(tmp_path / "rel" / "t") for u in seen), seen
    assert _ids(lh.Table.open(str(tmp_path / "rel" / "t"))) == [1, 2, 3]


# -- also: S3 percent-encoded segments and the probe cache key ----------------------------------------
@pytest.mark.s3
def test_percent_encoded_dot_segments_are_never_decoded_on_s3(s3: Any) -> None:
    import s3fs

    opts = s3.storage_options
    fs = s3fs.S3FileSystem(**opts)
    base = f"lakehouse-test/pct-{uuid.uuid4().hex}"
    uri = f"s3://{base}/t"
    values = ["..", "%2e%2e", "%2E%2E", ".", "a/../b", "%2f", "%252e%252e"]
    data = pa.table({"id": pa.array(range(len(values)), pa.int64()), "p": values})
    t = lh.write_table(uri, data, partition_by=["p"], storage_options=opts)
    back = t.to_arrow()
    assert sorted(zip(back["id"].to_pylist(), back["p"].to_pylist())) == sorted(zip(range(len(values)), values))
    keys = fs.find(base)
    assert keys and all(k.startswith(f"{base}/t/") for k in keys), keys
    assert not [k for k in keys if "/../" in k or "/./" in k], keys
    # a log path holding %2e%2e names that literal key: a file at the decoded place is never read
    validate_data_path("%2e%2e/x.parquet")  # allowed (format §3): no layer decodes it
    u2 = lh.write_table(f"s3://{base}/t2", _data([1]), storage_options=opts)
    [written] = lh.write_files(u2.uri, _data([100]), storage_options=opts)
    name = written.path.rsplit("/", 1)[-1]
    fs.copy(f"{base}/t2/{written.path}", f"{base}/t2/%2e%2e/{name}")
    fs.rm(f"{base}/t2/{written.path}")
    fs.pipe(f"{base}/{name}", b"not parquet: reading this file would fail")  # where a decoding layer would look
    u2.commit_files([dataclasses.replace(written, path=f"%2e%2e/{name}")], read_version=u2.version)
    assert _ids(u2) == [1, 100] and _ids(lh.Table.open(u2.uri, storage_options=opts)) == [1, 100]
    assert u2.vacuum(retention=dt.timedelta(0), enforce_retention=False, dry_run=True) == []
    fs.rm(base, recursive=True)


def test_probe_verdicts_are_kept_per_store_not_per_endpoint_text(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """Two AWS profiles may name two endpoints in ~/.aws/config: their verdicts must not be shared."""
    config = tmp_path / "aws-config"
    config.write_text("[profile good]\nendpoint_url = http://127.0.0.1:1\n"
                      "[profile liar]\nendpoint_url = http://127.0.0.1:2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    creds = {"key": "k", "secret": "s"}

    def key(**opts: Any) -> tuple[str, str, str]:
        return Storage.from_uri("s3://bucket/t", {**creds, **opts}).probe_key

    assert key(profile="good") != key(profile="liar")
    assert key(profile="good") == key(profile="good")
    assert key(client_kwargs={"region_name": "eu-west-1"}) != key(client_kwargs={"region_name": "us-east-1"})
    assert key(**{UNSAFE_SINGLE_WRITER: False}) == key(), "lakehouse's own options do not select a store"
    plain = key()
    monkeypatch.setenv("AWS_PROFILE", "liar")
    assert key() != plain, "a profile chosen by the environment is another store"
    assert key()[1] == "default"  # the endpoint as shown in messages is unchanged


@pytest.mark.s3
def test_a_second_profile_gets_its_own_probe_on_s3(s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lakehouse import storage as storage_mod

    config = tmp_path / "aws-config"
    config.write_text(f"[profile one]\nendpoint_url = {s3.endpoint}\n[profile two]\nendpoint_url = {s3.endpoint}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    storage_mod.forget_probe_verdicts()
    base = f"s3://lakehouse-test/profiles-{uuid.uuid4().hex}"
    opts = {"key": "testing", "secret": "testing", "client_kwargs": {"region_name": "us-east-1"}}
    one = lh.write_table(f"{base}/a", _data([1]), storage_options={**opts, "profile": "one"})
    two = lh.write_table(f"{base}/b", _data([2]), storage_options={**opts, "profile": "two"})
    keys = [k for k in storage_mod._PROBE_VERDICTS if k[1] == "default"]
    assert len(keys) == 2 and all(storage_mod._PROBE_VERDICTS[k] is None for k in keys), keys
    assert _ids(one) == [1] and _ids(two) == [2]
    storage_mod.forget_probe_verdicts()
