"""Shared fixtures: every table test runs on the local filesystem and on fsspec's memory filesystem."""

from __future__ import annotations

import uuid

import fsspec
import pytest


@pytest.fixture(params=["local", "memory"])
def table_uri(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URI where no table exists yet (local folder or ``memory://``); cleaned up afterwards."""
    if request.param == "local":
        yield str(tmp_path / "t")
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
