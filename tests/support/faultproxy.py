"""A small fault-injecting TCP proxy on 127.0.0.1, for testing retries against a real server.

Put it between a client and a server; each *new connection* takes the first fault that still
has budget, and once every budget is spent connections pass through untouched::

    with FaultProxy(("127.0.0.1", 8333), [Fault("reset", count=2), Fault("cut", after=100)]) as p:
        client(endpoint=p.endpoint) ...   # connections 1-2 reset, 3 cut, then normal

Faults:

* ``reset``: accept, then close with an RST (``SO_LINGER`` 0) before anything is exchanged.
* ``cut``: forward the request, then close both sides after ``after`` bytes of the response
  (so a response is cut in its headers or mid-body, depending on ``after``).
* ``slowdown``: read the request and answer ``HTTP/1.1 503 SlowDown`` with an S3 XML error
  body, then close; the server never sees the request.
* ``latency``: forward normally but hold the first response bytes back for ``delay`` seconds.

``count=None`` means "forever" (for permanent-failure tests). The proxy counts connections and
applied faults, and :meth:`stop` closes every socket and joins every thread.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

FaultKind = Literal["reset", "cut", "slowdown", "latency"]

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>faultproxy</RequestId></Error>"
)


@dataclass
class Fault:
    """One fault and how many connections it may still hit (``None``: unlimited)."""

    kind: FaultKind
    count: int | None = 1
    after: int = 0  # cut: response bytes to forward before cutting
    delay: float = 0.0  # latency: seconds before the first response byte


class FaultProxy:
    """A threaded TCP proxy that injects faults into the first connections (see module doc)."""

    def __init__(self, target: tuple[str, int], faults: list[Fault] | None = None) -> None:
        self.target = target
        self.faults = list(faults or [])
        self.connections = 0
        self.applied: list[FaultKind] = []
        self.delayed = 0  # responses actually held back by a latency fault
        self.active = 0  # connections open right now
        self.max_active = 0  # the most connections open at once (concurrency seen)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *faults: Fault) -> None:
        """Queue more faults (applied to the next new connections)."""
        with self._lock:
            self.faults.extend(faults)

    # ---- life cycle

    def start(self) -> FaultProxy:
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- internals

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.connections += 1
            for fault in self.faults:
                if fault.count is None or fault.count > 0:
                    if fault.count is not None:
                        fault.count -= 1
                    self.applied.append(fault.kind)
                    return fault
        return None

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _close(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._sockets.discard(sock)
                sock.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self._track(conn)
            thread = threading.Thread(
                target=self._handle, args=(conn,), name=f"faultproxy-{self.port}", daemon=True
            )
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _handle(self, client: socket.socket) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self._serve(client)
        finally:
            with self._lock:
                self.active -= 1

    def _serve(self, client: socket.socket) -> None:
        fault = self._next_fault()
        try:
            if fault is not None and fault.kind == "reset":
                # Linger 0: close() sends an RST, the client sees "connection reset by peer".
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self._close(client)
                return
            if fault is not None and fault.kind == "slowdown":
                self._answer_slowdown(client)
                self._close(client)
                return
            try:
                upstream = self._track(socket.create_connection(self.target, timeout=5))
            except OSError:
                self._close(client)
                return
            upstream.settimeout(None)
            self._relay(client, upstream, fault)
            self._close(client, upstream)
        except OSError:
            self._close(client)

    def _answer_slowdown(self, client: socket.socket) -> None:
        """Read one request (headers and, unless it expects 100-continue, its body); reply 503."""
        client.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        if headers.get(b"expect", b"").lower() != b"100-continue":
            remaining = int(headers.get(b"content-length", b"0") or 0) - len(body)
            while remaining > 0:
                chunk = client.recv(min(remaining, 65536))
                if not chunk:
                    return
                remaining -= len(chunk)
        client.sendall(
            b"HTTP/1.1 503 Slow Down\r\n"
            b"Content-Type: application/xml\r\n"
            + f"Content-Length: {len(SLOWDOWN_BODY)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + SLOWDOWN_BODY
        )

    def _relay(self, client: socket.socket, upstream: socket.socket, fault: Fault | None) -> None:
        """Copy bytes both ways until one side closes, applying ``cut``/``latency``."""
        budget = fault.after if fault is not None and fault.kind == "cut" else None
        delay = fault.delay if fault is not None and fault.kind == "latency" else 0.0
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    dest: socket.socket = key.data
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is upstream:
                        if delay:
                            time.sleep(delay)
                            delay = 0.0
                            self.delayed += 1
                        if budget is not None:
                            if len(data) >= budget:
                                dest.sendall(data[:budget])
                                return  # cut: both sockets are closed by the caller
                            budget -= len(data)
                    dest.sendall(data)
