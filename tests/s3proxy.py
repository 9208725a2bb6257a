"""A loopback HTTP/1.1 proxy in front of the S3 server that loses the responses of conditional PUTs.

Everything is forwarded unchanged to the upstream endpoint (moto's server, see ``s3server.py``).
Once armed with :meth:`FaultProxy.arm`, the proxy picks conditional creates (``PUT`` with
``If-None-Match: *``) whose key matches a pattern (by default the log entries
``_lakehouse_log/<20 digits>.msgpack``), forwards each to the server first, so a create that the
server accepts has *landed*, and then, instead of the server's answer (reads of matching keys can
be faulted the same way, ``method="GET"``):

* ``"drop"``: closes the connection without any reply;
* ``"500"`` / ``"409"`` / ``"503"``: replies that status with an S3 error document
  (``InternalError``, ``ConditionalRequestConflict``, ``SlowDown``);
* ``"timeout"``: holds the reply for ``delay`` seconds (longer than the client's read timeout),
  then sends the server's late answer into a connection the client has given up on.

Standard library only (``http.server`` + ``http.client``), one thread per client connection.
Counters are kept under a lock; :meth:`FaultProxy.stop` closes the listening socket, shuts the
open client connections down and joins every thread.

Example::

    with FaultProxy(server.endpoint) as proxy:
        proxy.arm("drop", times=1)
        ...  # s3fs with endpoint_url=proxy.endpoint
        print(proxy.stats())
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

FaultKind = Literal["drop", "500", "timeout", "409", "503"]
FAULT_KINDS: tuple[FaultKind, ...] = ("drop", "500", "timeout", "409", "503")
LOG_ENTRY_KEY = re.compile(r"/_lakehouse_log/\d{20}\.msgpack$")

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                         "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "expect"})
_ERRORS: dict[str, tuple[int, str, str]] = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "409": (409, "ConditionalRequestConflict",
            "A conflicting operation occurred. If using PutObject you can retry the request."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
}


@dataclass(frozen=True)
class FaultEvent:
    """One request (a conditional PUT, or a read) the proxy answered with a fault."""

    kind: FaultKind
    method: str
    """``"PUT"`` (a conditional create) or ``"GET"`` (a read of a matching key)."""
    key: str
    upstream_status: int
    """What the server answered before the fault replaced it: 200 = the object landed, 412 = refused."""
    body: bytes
    """The request body (for a log entry: the encoded entry, carrying the commit id)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads
    allow_reuse_address = True
    proxy: FaultProxy

    def process_request(self, request: Any, client_address: Any) -> None:
        self.proxy._track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.proxy._track(request, False)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.proxy._count("handler_errors")  # never print from a proxy thread; tests read the counter


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def setup(self) -> None:
        self.server.proxy._track_thread(threading.current_thread())
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()

    # -- forwarding ------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send_upstream(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed by the server
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            conn = self._upstream
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                if body or self.command in ("PUT", "POST"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.reason, resp.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _reply(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            low = name.lower()
            if low in _HOP_BY_HOP or (low == "content-length" and self.command != "HEAD"):
                continue
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)
        self.wfile.flush()

    def _forward(self) -> None:
        proxy = self.server.proxy
        body = self._body()
        key = urllib.parse.urlsplit(self.path).path
        conditional = self.command == "PUT" and self.headers.get("If-None-Match", "").strip() == "*"
        method = "PUT" if conditional else "GET" if self.command == "GET" else None
        fault = proxy._take_fault(method, key) if method else None
        started = time.monotonic()
        status, reason, headers, data = self._send_upstream(body)
        proxy._record(conditional, key, status, time.monotonic() - started)
        if fault is None:
            self._reply(status, reason, headers, data)
            return
        kind, delay = fault
        proxy._injected(FaultEvent(kind=kind, method=self.command, key=key, upstream_status=status, body=body))
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # the stored object stays; the answer is lost
        elif kind == "timeout":
            proxy._stopping.wait(delay)
            self.close_connection = True
            with contextlib.suppress(OSError):  # far too late: the client has gone
                self._reply(status, reason, headers, data)
        else:
            code, s3_code, message = _ERRORS[kind]
            xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{s3_code}</Code>'
                   f"<Message>{message}</Message><RequestId>s3proxy</RequestId></Error>").encode()
            self._reply(code, http.client.responses.get(code, "Error"),
                        [("Content-Type", "application/xml")], xml)


class FaultProxy:
    """The proxy: :meth:`start`/:meth:`stop` (or a ``with`` block), :meth:`arm`, :meth:`stats`."""

    def __init__(self, upstream: str, *, key_pattern: re.Pattern[str] = LOG_ENTRY_KEY) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.key_pattern = key_pattern
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._counts: Counter[str] = Counter()
        self._conditional_keys: Counter[str] = Counter()
        self._events: list[FaultEvent] = []
        self._arms: dict[str, tuple[FaultKind, int, int | None, float]] = {}
        self._faulted_keys: dict[str, Counter[str]] = {"PUT": Counter(), "GET": Counter()}
        self._slowest = 0.0

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>`` to give to s3fs as ``endpoint_url``."""
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="s3proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake held replies, shut open connections down, join all threads."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # closes the listening socket and joins the handler threads
        assert self._thread is not None
        self._thread.join(timeout=10)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=10)
        self._server = None

    def alive_threads(self) -> int:
        """How many of the proxy's threads (server loop and connection handlers) are running."""
        with self._lock:
            threads = [*self._threads, *([self._thread] if self._thread else [])]
        return sum(t.is_alive() for t in threads)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------------
    def arm(self, kind: FaultKind, *, times: int = 1, per_key: int | None = None, delay: float = 1.0,
            method: Literal["PUT", "GET"] = "PUT") -> None:
        """Fault the next ``times`` matching conditional PUTs (or, with ``method="GET"``, reads of a
        matching key) with ``kind``. PUT and GET faults are armed independently.

        ``per_key``: fault at most that many requests per key (the client's later re-sends of that
        request pass through), e.g. to fault both a lost race at ``N`` and the retry at ``N+1``.
        ``delay``: how long a ``"timeout"`` holds the reply.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._arms[method] = (kind, times, per_key, delay)
            self._faulted_keys[method] = Counter()

    def disarm(self) -> None:
        """Drop every armed fault."""
        with self._lock:
            self._arms.clear()

    def reset(self) -> None:
        """Disarm and zero every counter (between tests sharing one proxy)."""
        with self._lock:
            self._arms.clear()
            self._counts.clear()
            self._conditional_keys.clear()
            self._events.clear()
            self._slowest = 0.0

    def armed(self, method: Literal["PUT", "GET"] = "PUT") -> int:
        """Faults still to inject."""
        with self._lock:
            return self._arms[method][1] if method in self._arms else 0

    def _take_fault(self, method: str, key: str) -> tuple[FaultKind, float] | None:
        with self._lock:
            if method not in self._arms or not self.key_pattern.search(key):
                return None
            kind, times, per_key, delay = self._arms[method]
            if per_key is not None and self._faulted_keys[method][key] >= per_key:
                return None
            self._faulted_keys[method][key] += 1
            if times > 1:
                self._arms[method] = (kind, times - 1, per_key, delay)
            else:
                del self._arms[method]
            return kind, delay

    # -- bookkeeping -----------------------------------------------------------------------------
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _track_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _record(self, conditional: bool, key: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._slowest = max(self._slowest, seconds)
            if conditional:
                self._counts["conditional_puts"] += 1
                self._counts[f"conditional_{status}"] += 1
                if self.key_pattern.search(key):
                    self._conditional_keys[key] += 1

    def _injected(self, event: FaultEvent) -> None:
        with self._lock:
            self._counts[f"fault_{event.kind}"] += 1
            self._events.append(event)

    def events(self) -> list[FaultEvent]:
        """The faults injected so far, in order."""
        with self._lock:
            return list(self._events)

    def stats(self) -> dict[str, int]:
        """Counters: ``requests``, ``conditional_puts``, ``conditional_<status>``, ``fault_<kind>``,
        ``faults``, ``resent`` (conditional PUTs of a matching key sent again: client retries),
        ``handler_errors`` and ``slowest_ms`` (the slowest answer of the server)."""
        with self._lock:
            out = dict(self._counts)
            out["slowest_ms"] = round(self._slowest * 1000)
            out["faults"] = len(self._events)
            out["resent"] = sum(n - 1 for n in self._conditional_keys.values())
            return out
