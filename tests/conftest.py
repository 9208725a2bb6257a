"""Shared fixtures: every table test runs on the local filesystem, fsspec's memory filesystem and S3
(a real moto server on 127.0.0.1, see ``s3server.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fsspec
import pytest
import s3server


@pytest.fixture(scope="session")
def s3() -> Iterator[s3server.S3Server]:
    """The session's S3 server, with bucket ``lakehouse-test``."""
    server, reason = s3server.start()
    if server is None:
        pytest.skip(reason)
    try:
        s3server.make_bucket(server, "lakehouse-test")
        yield server
    finally:
        s3server.stop(server)


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def table_uri(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A URI where no table exists yet (local folder, ``memory://`` or ``s3://``); cleaned up afterwards.

    For S3 the table's storage options are installed as fsspec's defaults for the ``s3`` protocol,
    so tests call the public API exactly as for the other backends.
    """
    if request.param == "local":
        yield str(tmp_path / "t")
        return
    if request.param == "s3":
        server = request.getfixturevalue("s3")
        old = dict(fsspec.config.conf.get("s3", {}))
        fsspec.config.conf["s3"] = server.storage_options
        try:
            yield f"s3://lakehouse-test/t-{uuid.uuid4().hex}"
        finally:
            fsspec.config.conf["s3"] = old
        return
    name = f"t-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture
def local_uri(tmp_path) -> str:
    """A local table URI (for tests that poke at the files on disk)."""
    return str(tmp_path / "t")
