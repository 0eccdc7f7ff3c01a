"""A recording TCP proxy for ZooKeeper's client protocol, on loopback.

``RecordingProxy(upstream_port).start()`` listens on a free loopback port; every client that
connects to ``proxy.port`` is joined to a fresh connection to ``127.0.0.1:upstream_port``. Two
threads per connection copy bytes both ways unchanged and, on the side, split each direction into
frames by the 4-byte big-endian length prefix, so ``proxy.frames`` holds every frame in the
order it passed through (one global sequence across connections and directions).

The proxy never interprets a frame beyond its length, so it records exactly what the client and
the server put on the wire, including malformed traffic. It is used by
``tests/fixtures/jute/capture.py`` to record byte-exact fixtures from the reference ZooKeeper, and
can be used by any test that wants to see or cut the traffic (``drop_connections()`` closes
every proxied connection, which makes clients reconnect and resend their watches).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

_LENGTH = struct.Struct(">i")


@dataclass(frozen=True)
class RecordedFrame:
    """One frame as it crossed the proxy; ``payload`` excludes the length prefix."""

    seq: int
    connection: int
    direction: str  # "request" (client to server) or "reply" (server to client)
    payload: bytes
    time_s: float


@dataclass
class _Splitter:
    """Splits one direction of a byte stream into length-prefixed frames."""

    buffer: bytearray = field(default_factory=bytearray)
    broken: bool = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.broken:
            return []
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            length = _LENGTH.unpack_from(self.buffer, 0)[0]
            if length < 0:
                # Not the Jute framing (a four-letter word, or garbage): stop splitting.
                self.broken = True
                self.buffer.clear()
                break
            if len(self.buffer) < 4 + length:
                break
            frames.append(bytes(self.buffer[4:4 + length]))
            del self.buffer[:4 + length]
        return frames


class RecordingProxy:
    """Forwards loopback TCP connections to one upstream port and records their frames."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.frames: list[RecordedFrame] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._seq = 0
        self._connections = 0
        self._sockets: dict[int, tuple[socket.socket, socket.socket]] = {}
        self._pumps_done: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._closed = False
        self.port = 0

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> "RecordingProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self._listener = listener
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            self._listener.close()
        self.drop_connections()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> "RecordingProxy":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drop_connections(self) -> None:
        """Close every proxied connection, both sides (the clients see a connection loss)."""
        with self._lock:
            pairs = list(self._sockets.values())
            self._sockets.clear()
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    sock.close()
                except OSError:
                    pass

    # -- inspection ------------------------------------------------------------------------------

    def snapshot(self) -> list[RecordedFrame]:
        with self._lock:
            return list(self.frames)

    def wait_for(self, predicate, timeout_s: float = 30.0) -> list[RecordedFrame]:
        """Wait until ``predicate(frames)`` is true; return the frames. Raises TimeoutError."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self.frames):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the proxy did not see the expected frames")
                self._changed.wait(remaining)
            return list(self.frames)

    # -- forwarding ------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._connections += 1
                connection = self._connections
                self._sockets[connection] = (client, server)
            for source, sink, direction in ((client, server, "request"), (server, client, "reply")):
                thread = threading.Thread(target=self._pump, args=(connection, source, sink, direction),
                                          name=f"proxy-{connection}-{direction}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, connection: int, source: socket.socket, sink: socket.socket, direction: str) -> None:
        splitter = _Splitter()
        try:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                # Record before forwarding, so a frame is in ``frames`` before its answer can be.
                self._record(connection, direction, splitter.feed(data))
                try:
                    sink.sendall(data)
                except OSError:
                    break
        finally:
            for sock in (sink, source):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._pumps_done[connection] = self._pumps_done.get(connection, 0) + 1
                last = self._pumps_done[connection] == 2
                if last:
                    self._sockets.pop(connection, None)
            if last:
                source.close()
                sink.close()

    def _record(self, connection: int, direction: str, payloads: list[bytes]) -> None:
        if not payloads:
            return
        now = time.monotonic()
        with self._changed:
            for payload in payloads:
                self._seq += 1
                self.frames.append(RecordedFrame(self._seq, connection, direction, payload, now))
            self._changed.notify_all()
