"""A real Azure Blob API server (Azurite, from npm) on 127.0.0.1, started and stopped by PID.

Used by ``test_azure.py``. Installs nothing: the Makefile puts Azurite in ``.venv/azurite`` with
npm. Where it is not there (or node is missing), :func:`start` returns the reason and the tests skip.
Tables are reached through adlfs (``abfs://container/path``) with Azurite's well-known development
account, passed as a connection string in ``storage_options``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT = "devstoreaccount1"
# Azurite's fixed, published development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_EXE = "azurite-blob"


@dataclass(frozen=True)
class Azurite:
    endpoint: str
    proc: subprocess.Popen[bytes]
    location: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.endpoint}/{ACCOUNT};")

    @property
    def storage_options(self) -> dict[str, Any]:
        """adlfs options for ``abfs://`` URIs on this server."""
        return {"connection_string": self.connection_string}


def find_executable() -> str | None:
    """``azurite-blob`` from ``$LH_AZURITE``, the venv (``<venv>/azurite``), ``./.venv/azurite`` or PATH."""
    candidates = [os.environ.get("LH_AZURITE", ""),
                  str(Path(sys.prefix) / "azurite" / "node_modules" / ".bin" / _EXE),
                  str(Path(__file__).resolve().parent.parent / ".venv" / "azurite" / "node_modules" / ".bin" / _EXE)]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return shutil.which(_EXE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(f"{endpoint}/{ACCOUNT}?comp=list", timeout=1).close()
    except urllib.error.HTTPError:
        return True  # an unauthenticated request is refused: the server is up
    except OSError:
        return False
    return True


def start() -> tuple[Azurite | None, str]:
    """Start azurite-blob; returns (server, "") or (None, the reason it could not start)."""
    exe = find_executable()
    if exe is None:
        return None, "Azurite is not installed (make venv installs it with npm into .venv/azurite)"
    if shutil.which("node") is None:
        return None, "node is not on PATH (Azurite needs it)"
    port = _free_port()
    location = tempfile.mkdtemp(prefix="lakehouse-azurite-")
    log = open(os.path.join(location, "azurite.log"), "wb")  # noqa: SIM115 - the child keeps it
    cmd = [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", location,
           "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError as exc:
        log.close()
        shutil.rmtree(location, ignore_errors=True)
        return None, f"could not run {exe}: {exc}"
    finally:
        log.close()  # the child has its own copy
    server = Azurite(f"http://127.0.0.1:{port}", proc, location)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _log_tail(location)
            stop(server)
            return None, f"azurite-blob exited with {proc.returncode}: {tail}"
        if _answers(server.endpoint):
            return server, ""
        time.sleep(0.1)
    stop(server)
    return None, "azurite-blob did not answer within 30 s"


def _log_tail(location: str) -> str:
    try:
        return Path(location, "azurite.log").read_text(errors="replace")[-500:].strip()
    except OSError:
        return ""


def stop(server: Azurite) -> None:
    """Stop the server by its process group (the PID we started), reap it, remove its files."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.proc.wait(timeout=5)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:  # Azurite waits for open keep-alive connections
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.proc.wait()
    shutil.rmtree(server.location, ignore_errors=True)


def make_container(server: Azurite, name: str) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(server.connection_string) as client:
        client.create_container(name)
