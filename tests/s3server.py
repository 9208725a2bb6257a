"""A real S3 API server (moto's standalone server) on 127.0.0.1, started and stopped by PID.

Used by the ``s3`` parameter of the ``table_uri`` fixture. Skips (with the reason) only where
moto's server is not installed; CI installs it (the ``s3server`` extra).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint, "key": "testing", "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"},
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start() -> tuple[S3Server | None, str]:
    """Start moto's server; returns (server, "") or (None, reason it could not start)."""
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if exe is None:
        return None, "moto_server is not installed (pip install -e '.[s3server]')"
    port = _free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None, f"moto_server exited with {proc.wait()}"
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return S3Server(endpoint, proc), ""
        except OSError:
            time.sleep(0.1)
    stop(S3Server(endpoint, proc))
    return None, "moto_server did not answer within 30 s"


def stop(server: S3Server) -> None:
    """Stop the server by its process group (the PID we started), and reap it."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.proc.wait()


def make_bucket(server: S3Server, name: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**server.storage_options)
    fs.call_s3("create_bucket", Bucket=name)
