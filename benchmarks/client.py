"""The benchmarks' one ZooKeeper client: a raw Jute session over asyncio, no client library.

Every generator (``loadgen``, ``scaling``, ``failover``) talks to the servers through
``Connection``, so the numbers are the server's and this client's, not a client library's:

* the handshake is a ConnectRequest in one frame (``jute.framing.frame``), answered by a
  ConnectResponse (``Connection.handshake``);
* a request is a RequestHeader (xid, opcode) and the request record's bytes, in one frame;
* replies are split out of the byte stream by ``jute.framing.FrameDecoder``. ZooKeeper answers
  each session's requests in the order they were sent, so a reply is matched to the oldest
  request outstanding; one with another xid is counted in ``order_violations``. Xid -1 is a
  watch notification, -2 a ping reply.

Request and reply headers are packed and read with one ``struct`` call each rather than through
``RequestHeader.encode`` / ``ReplyHeader.decode_from``: the generated codec builds a record per
call, several times slower on the generator's hot path. ``_check_layouts`` compares both layouts
and the hand-encoded CreateRequest with jute's codec when this module is imported.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import socket
import struct
import time
from typing import Callable, Iterable, TypeVar

from jute import records as r
from jute.constants import CreateMode, Err, OpCode, Perms, Xid
from jute.errors import FrameTooLarge
from jute.framing import FrameDecoder, frame

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency; fall back to asyncio's loop
    uvloop = None

perf_counter = time.perf_counter

_INT = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">ii")  # RequestHeader: xid, type
_REPLY_HEADER = struct.Struct(">iqi")  # ReplyHeader: xid, zxid, err
REPLY_HEADER_BYTES = _REPLY_HEADER.size
# Plain ints: comparing with the IntEnum members costs more on every reply.
_NOTIFICATION_XID = int(Xid.NOTIFICATION)
_PING_XID = int(Xid.PING)
_PING_FRAME = frame(_REQUEST_HEADER.pack(_PING_XID, OpCode.ping))
_MULTI_END = r.MultiHeader.encode(r.MultiHeader(-1, True, -1))
OPEN_ACL = [r.ACL(Perms.ALL, r.Id("world", "anyone"))]


class ConnectionFailed(Exception):
    """No connection, no session, or the connection was lost."""


class SessionExpired(ConnectionFailed):
    """The server answered the handshake with timeout 0: it does not know (or no longer has)
    the session."""


class RequestFailed(Exception):
    """A request the benchmark depends on (setting up its nodes) was answered with an error."""


def error_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return str(code)


def parse_hosts(hosts: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` (a connect string) as (host, port) pairs."""
    addresses = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        addresses.append((host or "127.0.0.1", int(port)))
    if not addresses:
        raise ValueError("no host given")
    return addresses


def pattern_value(size_bytes: int) -> bytes:
    """The value the generators write: a fixed byte pattern, so what is read back can be
    checked against it."""
    return bytes((i * 31 + 7) & 0xFF for i in range(size_bytes))


def connect_request(timeout_ms: int, session_id: int = 0, passwd: bytes = bytes(16),
                    last_zxid_seen: int = 0) -> r.ConnectRequest:
    """The handshake of a new session (no id, no password) or of one being re-attached."""
    return r.ConnectRequest(protocol_version=0, last_zxid_seen=last_zxid_seen,
                            timeout_ms=timeout_ms, session_id=session_id, passwd=passwd,
                            read_only=False)


def encode_request(xid: int, opcode: int, body: bytes) -> bytes:
    """One request frame: the RequestHeader, then the request record's bytes."""
    return frame(_REQUEST_HEADER.pack(xid, opcode) + body)


def _ustring(text: str) -> bytes:
    raw = text.encode()
    return _INT.pack(len(raw)) + raw


def create_tail(data: bytes, mode: int = CreateMode.PERSISTENT) -> bytes:
    """A CreateRequest's bytes after its path (data, the open ACL, the mode): the same for every
    node of a bulk load, so it is encoded once and ``create_body`` only adds the path."""
    acl = _INT.pack(1) + _INT.pack(Perms.ALL) + _ustring("world") + _ustring("anyone")
    return _INT.pack(len(data)) + data + acl + _INT.pack(mode)


def create_body(path: str, tail: bytes) -> bytes:
    return _ustring(path) + tail


def create_request(path: str, data: bytes = b"", mode: int = CreateMode.PERSISTENT) -> bytes:
    """A CreateRequest of ``path`` with the open ACL."""
    return create_body(path, create_tail(data, mode))


def multi_body(bodies: Iterable[bytes], opcode: int) -> bytes:
    """A multi of request bodies that all have ``opcode``."""
    header = r.MultiHeader.encode(r.MultiHeader(opcode, False, -1))
    return b"".join(header + body for body in bodies) + _MULTI_END


def multi_error(reply_body: bytes) -> str | None:
    """None if a multi reply's first result is not an error (a failed multi answers every op
    with an error result), else the error's name."""
    if len(reply_body) < 9:
        return "short multi reply"
    if _INT.unpack_from(reply_body, 0)[0] == -1:
        return error_name(_INT.unpack_from(reply_body, 5)[0])
    return None


def _check_layouts() -> None:
    if _REQUEST_HEADER.pack(7, OpCode.getData) != r.RequestHeader.encode(
            r.RequestHeader(7, OpCode.getData)):
        raise AssertionError("RequestHeader layout differs from jute's")
    reply = r.ReplyHeader.encode(r.ReplyHeader(7, 1 << 40, Err.NONODE))
    if _REPLY_HEADER.unpack_from(reply) != (7, 1 << 40, Err.NONODE):
        raise AssertionError("ReplyHeader layout differs from jute's")
    expected = r.CreateRequest.encode(r.CreateRequest("/a/b", b"v" * 7, OPEN_ACL,
                                                      CreateMode.EPHEMERAL_SEQUENTIAL))
    if create_request("/a/b", b"v" * 7, CreateMode.EPHEMERAL_SEQUENTIAL) != expected:
        raise AssertionError("hand-encoded CreateRequest differs from jute's")


_check_layouts()


def _disable_nagle(transport: asyncio.Transport) -> None:
    """Every generator measures latency: a request must not wait for the previous one's ack."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass


class Connection(asyncio.Protocol):
    """One ZooKeeper session on its own connection: requests with a future each, pipelined
    requests without one, pings, notifications.

    ``pending`` holds (xid, send time, opcode, future or None) in send order. Subclasses that
    send with ``pipeline`` receive those replies in ``pipelined_reply``; ``notification`` and
    ``replies_received`` are further hooks.
    """

    def __init__(self, name: str, request: r.ConnectRequest) -> None:
        self.name = name
        self.connect_request = request
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.session_id = 0
        self.session_passwd = bytes(16)
        self.timeout_ms = 0  # as negotiated
        self.last_zxid_seen = request.last_zxid_seen
        self.next_xid = 1
        self.pending: collections.deque = collections.deque()
        self.last_send = perf_counter()
        self.lost = False
        self.closing = False
        self.lost_reason: str | None = None  # why the connection went, unless we closed it
        self.order_violations = 0
        self.unexpected_replies = 0
        self.notifications = 0
        self.pings_sent = 0
        self.ping_replies = 0
        self.ping_sent_at: float | None = None
        self.ping_rtts: list[float] | None = None  # round trips of pings, when a list is set

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        _disable_nagle(transport)
        transport.write(frame(r.ConnectRequest.encode(self.connect_request)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        why = str(exc) if exc else "by the server"
        if not self.closing and self.lost_reason is None:
            self.lost_reason = f"{self.name}: connection closed ({why})"
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionFailed(
                f"{self.name}: connection closed during the handshake ({why})"))
        while self.pending:
            future = self.pending.popleft()[3]
            if future is not None and not future.done():
                future.set_exception(ConnectionFailed(f"{self.name}: connection closed ({why})"))

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameTooLarge as exc:
            # The stream cannot be resynchronised; connection_lost follows.
            self.lost_reason = f"{self.name}: {exc}"
            self.transport.abort()
            return
        now = perf_counter()
        handshake_done = self.handshake.done()
        for payload in frames:
            if not handshake_done:
                self._handshake_reply(payload)
                handshake_done = True
                continue
            xid, zxid, err = _REPLY_HEADER.unpack_from(payload)
            if zxid > self.last_zxid_seen:
                self.last_zxid_seen = zxid
            if xid >= 0:
                self._reply(xid, err, payload, now)
            elif xid == _NOTIFICATION_XID:
                self.notifications += 1
                self.notification(payload, now)
            elif xid == _PING_XID:
                self._ping_reply(now)
            else:
                self.unexpected_replies += 1
        self.replies_received(now)

    # --- replies -------------------------------------------------------------------------------

    def _handshake_reply(self, payload: bytes) -> None:
        try:
            response, _ = r.ConnectResponse.decode_from(payload, 0)
        except Exception as exc:  # noqa: BLE001 - any undecodable handshake fails the session
            self.handshake.set_exception(ConnectionFailed(
                f"{self.name}: bad ConnectResponse: {exc}"))
            return
        self.session_id = response.session_id
        self.session_passwd = response.passwd
        self.timeout_ms = response.timeout_ms
        self.handshake.set_result(response)

    def _reply(self, xid: int, err: int, payload: bytes, now: float) -> None:
        pending = self.pending
        if not pending:
            self.unexpected_replies += 1
            return
        sent_xid, sent_at, opcode, future = pending.popleft()
        if sent_xid != xid:
            self.order_violations += 1
        if future is None:
            self.pipelined_reply(xid, opcode, err, payload, sent_at, now)
        elif not future.done():
            future.set_result((err, payload[REPLY_HEADER_BYTES:]))

    def _ping_reply(self, now: float) -> None:
        self.ping_replies += 1
        if self.ping_sent_at is not None:
            if self.ping_rtts is not None:
                self.ping_rtts.append(now - self.ping_sent_at)
            self.ping_sent_at = None

    def pipelined_reply(self, xid: int, opcode: int, err: int, payload: bytes, sent_at: float,
                        now: float) -> None:
        """The reply (whole frame, header included) to a request sent with ``pipeline``."""
        raise NotImplementedError(f"{type(self).__name__} pipelines requests but does not "
                                  "override pipelined_reply")

    def notification(self, payload: bytes, now: float) -> None:
        """A watch notification (whole frame; the WatcherEvent follows the reply header),
        already counted in ``notifications``."""

    def replies_received(self, now: float) -> None:
        """Called after every batch of frames read from the socket, at their arrival time."""

    # --- requests ------------------------------------------------------------------------------

    def call(self, opcode: int, body: bytes = b"") -> asyncio.Future:
        """Send one request; the future gives (err, reply body)."""
        future = asyncio.get_running_loop().create_future()
        if self.lost:
            future.set_exception(ConnectionFailed(f"{self.name}: connection lost"))
            return future
        xid = self.next_xid
        self.next_xid += 1
        now = perf_counter()
        self.pending.append((xid, now, opcode, future))
        self.last_send = now
        self.transport.write(encode_request(xid, opcode, body))
        return future

    async def call_checked(self, opcode: int, body: bytes, what: str,
                           allowed: tuple[int, ...] = ()) -> bytes:
        """``call``, raising ``RequestFailed`` on an error reply not in ``allowed``."""
        err, reply = await self.call(opcode, body)
        if err and err not in allowed:
            raise RequestFailed(f"{what} failed with {error_name(err)}")
        return reply

    def pipeline(self, requests: Iterable[tuple[int, bytes]], now: float) -> None:
        """Send (opcode, body) requests in one write, with no future each: their replies go to
        ``pipelined_reply``."""
        xid = self.next_xid
        pending = self.pending
        frames = []
        for opcode, body in requests:
            frames.append(encode_request(xid, opcode, body))
            pending.append((xid, now, opcode, None))
            xid += 1
        self.next_xid = xid
        self.last_send = now
        self.transport.write(b"".join(frames))

    def ping(self) -> None:
        """Send a ping; its round trip is timed if no other ping is outstanding."""
        if self.lost or self.closing:
            return
        now = perf_counter()
        self.pings_sent += 1
        if self.ping_sent_at is None:
            self.ping_sent_at = now
        self.last_send = now
        self.transport.write(_PING_FRAME)

    async def close(self, timeout_s: float = 5.0) -> None:
        """closeSession (so the server removes the session's ephemerals now), then close."""
        if self.lost or self.transport is None:
            return
        self.closing = True
        try:
            await asyncio.wait_for(self.call(OpCode.closeSession), timeout_s)
        except (asyncio.TimeoutError, ConnectionFailed):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection without closeSession (the session lives on until it expires).
        It counts as lost at once, so no request is written to the closing transport."""
        self.closing = True
        self.lost = True
        if self.transport is not None:
            self.transport.close()


ConnectionT = TypeVar("ConnectionT", bound=Connection)


async def open_session(host: str, port: int, new_connection: Callable[[], ConnectionT],
                       connect_timeout_s: float) -> ConnectionT:
    """Connect and complete the handshake, each within ``connect_timeout_s``.

    Raises ``ConnectionFailed``; ``SessionExpired`` when the server refuses the session.
    """
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(loop.create_connection(new_connection, host, port),
                                         connect_timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ConnectionFailed(f"cannot connect to {host}:{port}: "
                               f"{type(exc).__name__} {exc}") from exc
    try:
        response = await asyncio.wait_for(conn.handshake, connect_timeout_s)
    except asyncio.TimeoutError as exc:
        conn.abort()
        raise ConnectionFailed(f"{conn.name}: no ConnectResponse from {host}:{port} within "
                               f"{connect_timeout_s:g} s") from exc
    except ConnectionFailed:
        conn.abort()
        raise
    if response.timeout_ms <= 0:
        conn.abort()
        raise SessionExpired(f"{conn.name}: {host}:{port} refused the session (expired)")
    return conn


def run_event_loop(coroutine):
    """Run ``coroutine`` in a fresh event loop: uvloop's when it is installed."""
    if uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def event_loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if uvloop is not None and isinstance(loop, uvloop.Loop) else \
        type(loop).__name__


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit: a run of thousands of sessions needs a
    descriptor per session (and servers started from here inherit it). Returns the (soft, hard)
    limits in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)
