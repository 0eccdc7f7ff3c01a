"""A small synchronous raw-protocol ZooKeeper client built on ``jute``.

It speaks the wire protocol directly so that tests can send any operation, any xid and even
arbitrary bytes, and observe exactly what a server answers:

* ``RawClient(host, port)`` connects a new session (``ConnectRequest``) or, with
  ``session_id``/``passwd``, resumes one;
* ``call(op, body)`` sends ``RequestHeader`` + body and returns the matching ``Reply``
  (``ReplyHeader`` fields plus the decoded body);
* notifications (xid -1) are collected separately in ``notifications`` whenever frames are
  read; ``wait_events`` waits (with a deadline) until enough have arrived;
* typed helpers exist for every opcode, including multi/multiRead, addWatch, removeWatches,
  checkWatches, setWatches/setWatches2, getEphemerals, getAllChildrenNumber, whoAmI, the
  create variants, auth packets (xid -4) and ping (xid -2);
* ``send_raw`` writes bytes as they are; ``recv_frame`` reads one frame;
* ``pipeline(requests)`` sends several requests at once and reads their replies, checking
  that they come back in request order with no gap and no duplicate (``ReplyOrderError``);
  ``answered`` records the xid of every reply so checked, in arrival order.

A server closing the connection raises ``ConnectionClosed``; ``outcome()`` turns a call into a
value ("closed" or the reply) for tests that record what a server does.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any, Iterable, NamedTuple

from jute import records as r
from jute.constants import AddWatchMode, CreateMode, Err, OpCode, Perms, WatcherType, Xid
from jute.framing import frame
from jute.opcodes import (
    MultiOp, MultiResult, RESPONSE_RECORDS, decode_multi_response, encode_multi_request,
)

OPEN_ACL_UNSAFE = [r.ACL(int(Perms.ALL), r.Id("world", "anyone"))]
READ_ACL_UNSAFE = [r.ACL(int(Perms.READ), r.Id("world", "anyone"))]
CREATOR_ALL_ACL = [r.ACL(int(Perms.ALL), r.Id("auth", ""))]

_INT = struct.Struct(">i")
_HEADER_SIZE = 16  # ReplyHeader: int xid, long zxid, int err


class ConnectionClosed(ConnectionError):
    """The server closed the connection (or it broke) before a whole frame arrived."""


class ReplyOrderError(AssertionError):
    """A server answered a connection's requests out of order, skipped one or answered one
    twice (ZooKeeper answers a session's requests in the order it sent them)."""


class Reply(NamedTuple):
    """One reply: the ReplyHeader fields, the raw body and the decoded response (or None)."""

    xid: int
    zxid: int
    err: int
    body: bytes
    response: Any

    @property
    def ok(self) -> bool:
        return self.err == 0


class Event(NamedTuple):
    """A notification: WatcherEvent fields plus the zxid of its ReplyHeader."""

    type: int
    state: int
    path: str
    zxid: int


def decode_reply_body(op: int, err: int, body: bytes) -> Any:
    """Decode a reply body for ``op``; None when there is none (errors usually have none)."""
    if op in (OpCode.multi, OpCode.multiRead):
        if not body:
            return None
        return decode_multi_response(body)
    if err != 0 or not body:
        return None
    record = RESPONSE_RECORDS.get(op)
    if record is None:
        return None
    value, _ = record.decode_from(body, 0)
    return value


# --- multi op builders -------------------------------------------------------------------------

def op_create(path: str, data: bytes = b"", acl=None, flags: int = 0,
              op: int = OpCode.create) -> MultiOp:
    return MultiOp(op, r.CreateRequest(path, data, list(acl or OPEN_ACL_UNSAFE), int(flags)))


def op_create2(path: str, data: bytes = b"", acl=None, flags: int = 0) -> MultiOp:
    return op_create(path, data, acl, flags, op=OpCode.create2)


def op_create_ttl(path: str, data: bytes = b"", ttl_ms: int = 1000, acl=None,
                  flags: int = CreateMode.PERSISTENT_WITH_TTL) -> MultiOp:
    return MultiOp(OpCode.createTTL, r.CreateTTLRequest(
        path, data, list(acl or OPEN_ACL_UNSAFE), int(flags), ttl_ms))


def op_delete(path: str, version: int = -1) -> MultiOp:
    return MultiOp(OpCode.delete, r.DeleteRequest(path, version))


def op_set_data(path: str, data: bytes, version: int = -1) -> MultiOp:
    return MultiOp(OpCode.setData, r.SetDataRequest(path, data, version))


def op_check(path: str, version: int) -> MultiOp:
    return MultiOp(OpCode.check, r.CheckVersionRequest(path, version))


def op_get_data(path: str) -> MultiOp:
    return MultiOp(OpCode.getData, r.GetDataRequest(path, False))


def op_get_children(path: str) -> MultiOp:
    return MultiOp(OpCode.getChildren, r.GetChildrenRequest(path, False))


class RawClient:
    """One connection (and session) to a server, used synchronously."""

    def __init__(self, host: str, port: int, *, timeout_ms: int = 30000, session_id: int = 0,
                 passwd: bytes = bytes(16), last_zxid_seen: int = 0, read_only: bool = False,
                 io_timeout_s: float = 10.0, connect: bool = True, first_xid: int = 1) -> None:
        self.host = host
        self.port = port
        self.requested_timeout_ms = timeout_ms
        self.session_id = session_id
        self.passwd = passwd
        self.last_zxid_seen = last_zxid_seen
        self.read_only = read_only
        self.io_timeout_s = io_timeout_s
        self.negotiated_timeout_ms: int | None = None
        self.connect_response: r.ConnectResponse | None = None
        self.notifications: list[Event] = []
        self.other_frames: list[Reply] = []  # replies nobody waited for (ping, auth, stray xids)
        self.closed = False
        self.answered: list[int] = []  # xids of the replies pipeline() checked, in order
        self._next_xid = first_xid
        self._buffer = b""
        self.sock = socket.create_connection((host, port), timeout=io_timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if connect:
            self.connect()

    @classmethod
    def from_connect_string(cls, connect_string: str, **kwargs) -> "RawClient":
        host, _, port = connect_string.rpartition(":")
        return cls(host, int(port), **kwargs)

    # --- session -------------------------------------------------------------------------------

    def connect(self) -> r.ConnectResponse:
        """Send ConnectRequest, read ConnectResponse (the server may then close: expired)."""
        request = r.ConnectRequest(0, self.last_zxid_seen, self.requested_timeout_ms,
                                   self.session_id, self.passwd, self.read_only)
        self.send_frame(r.ConnectRequest.encode(request))
        payload = self.recv_frame()
        response, _ = r.ConnectResponse.decode_from(payload, 0)
        self.connect_response = response
        self.negotiated_timeout_ms = response.timeout_ms
        if response.session_id != 0:
            self.session_id = response.session_id
            self.passwd = response.passwd
        return response

    def close_session(self) -> Reply:
        """closeSession (opcode -11); the server answers, then closes the connection."""
        reply = self.call(OpCode.closeSession)
        self.disconnect()
        return reply

    def disconnect(self) -> None:
        """Drop the TCP connection without closing the session."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    close = disconnect

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    # --- frames --------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConnectionClosed(f"send failed: {exc}") from exc

    def send_frame(self, payload: bytes) -> None:
        self.send_raw(frame(payload))

    def _recv_exact(self, count: int, deadline: float) -> bytes:
        while len(self._buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete frame from {self.host}:{self.port} in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout as exc:
                raise TimeoutError(f"no complete frame from {self.host}:{self.port} in time") from exc
            except OSError as exc:
                self.closed = True
                raise ConnectionClosed(f"connection broken: {exc}") from exc
            if not chunk:
                self.closed = True
                raise ConnectionClosed("server closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def recv_frame(self, timeout_s: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.io_timeout_s if timeout_s is None else timeout_s)
        length = _INT.unpack(self._recv_exact(4, deadline))[0]
        if length < 0:
            raise ConnectionClosed(f"server sent a negative frame length {length}")
        return self._recv_exact(length, deadline)

    def _read_one(self, timeout_s: float | None = None) -> tuple[r.ReplyHeader, bytes]:
        payload = self.recv_frame(timeout_s)
        header, off = r.ReplyHeader.decode_from(payload, 0)
        body = payload[off:]
        if header.zxid > self.last_zxid_seen:
            self.last_zxid_seen = header.zxid
        if header.xid == Xid.NOTIFICATION:
            event, _ = r.WatcherEvent.decode_from(body, 0)
            self.notifications.append(Event(event.type, event.state, event.path, header.zxid))
        return header, body

    # --- requests ------------------------------------------------------------------------------

    def new_xid(self) -> int:
        xid = self._next_xid
        self._next_xid += 1
        return xid

    def submit(self, op: int, body: Any = None, xid: int | None = None) -> int:
        """Send a request without waiting; ``body`` is a record, bytes or None."""
        if xid is None:
            xid = self.new_xid()
        if body is None:
            encoded = b""
        elif isinstance(body, (bytes, bytearray)):
            encoded = bytes(body)
        else:
            encoded = type(body).encode(body)
        self.send_frame(r.RequestHeader.encode(r.RequestHeader(xid, int(op))) + encoded)
        return xid

    def wait_reply(self, xid: int, op: int, timeout_s: float | None = None) -> Reply:
        """Read frames until the reply with ``xid``; notifications and others are kept aside."""
        while True:
            header, body = self._read_one(timeout_s)
            if header.xid == Xid.NOTIFICATION and xid != Xid.NOTIFICATION:
                continue
            reply = Reply(header.xid, header.zxid, header.err, body,
                          decode_reply_body(op, header.err, body))
            if header.xid == xid:
                return reply
            self.other_frames.append(reply)

    def call(self, op: int, body: Any = None, xid: int | None = None,
             timeout_s: float | None = None) -> Reply:
        xid = self.submit(op, body, xid)
        return self.wait_reply(xid, op, timeout_s)

    def outcome(self, op: int, body: Any = None, xid: int | None = None,
                timeout_s: float | None = None) -> Reply | str:
        """Like ``call`` but a closed connection is the value "closed" (a timeout "timeout")."""
        try:
            return self.call(op, body, xid, timeout_s)
        except ConnectionClosed:
            return "closed"
        except TimeoutError:
            return "timeout"

    def pipeline(self, requests: Iterable[tuple[int, Any]],
                 timeout_s: float | None = None) -> list[Reply]:
        """Send every ``(op, body)`` at once, then read the replies: each must be for the
        oldest request still unanswered (``ReplyOrderError`` otherwise). If the server closes
        the connection first, the replies that came are returned (a prefix of the requests:
        the rest were lost with the connection) and ``closed`` is set. Pings (xid -2) are
        expected in their place too."""
        sent = []
        try:
            for op, body in requests:
                xid = Xid.PING if op == OpCode.ping else None
                sent.append((self.submit(op, body, xid), op))
        except ConnectionClosed:
            self.closed = True  # what was sent before is still answered, or lost with it
        replies: list[Reply] = []
        for xid, op in sent:
            try:
                header, body = self._read_one(timeout_s)
                while header.xid == Xid.NOTIFICATION:
                    header, body = self._read_one(timeout_s)
            except ConnectionClosed:
                return replies
            if header.xid != xid:
                expected = [x for x, _ in sent[len(replies):]]
                raise ReplyOrderError(
                    f"{self.host}:{self.port} session {self.session_id:#x}: reply for xid "
                    f"{header.xid} while xids {expected} were unanswered, oldest first "
                    f"(answered before: {self.answered[-10:]})")
            self.answered.append(header.xid)
            replies.append(Reply(header.xid, header.zxid, header.err, body,
                                 decode_reply_body(op, header.err, body)))
        return replies

    # --- notifications -------------------------------------------------------------------------

    def poll(self, timeout_s: float = 0.0) -> None:
        """Read whatever frames arrive within ``timeout_s`` (notifications are collected)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                header, body = self._read_one(remaining if remaining > 0 else 0.001)
            except TimeoutError:
                return
            if header.xid != Xid.NOTIFICATION:
                self.other_frames.append(Reply(header.xid, header.zxid, header.err, body, None))

    def wait_events(self, count: int, timeout_s: float = 10.0) -> list[Event]:
        """Wait until at least ``count`` notifications are collected; return them all."""
        deadline = time.monotonic() + timeout_s
        while len(self.notifications) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} notifications, got {self.notifications}")
            try:
                self._read_one(remaining)
            except TimeoutError:
                pass
        return list(self.notifications)

    def take_events(self) -> list[Event]:
        events, self.notifications = self.notifications, []
        return events

    def barrier(self) -> Reply:
        """A read round trip: every notification the server queued before it has arrived."""
        return self.exists("/")

    # --- typed helpers -------------------------------------------------------------------------

    def ping(self) -> Reply:
        return self.call(OpCode.ping, None, xid=Xid.PING)

    def add_auth(self, scheme: str, auth: bytes | str, xid: int = Xid.AUTH) -> Reply:
        if isinstance(auth, str):
            auth = auth.encode()
        return self.call(OpCode.auth, r.AuthPacket(0, scheme, auth), xid=xid)

    def create(self, path: str, data: bytes = b"", acl=None, flags: int = 0,
               op: int = OpCode.create) -> Reply:
        return self.call(op, r.CreateRequest(path, data, list(OPEN_ACL_UNSAFE if acl is None else acl),
                                             int(flags)))

    def create2(self, path: str, data: bytes = b"", acl=None, flags: int = 0) -> Reply:
        return self.create(path, data, acl, flags, op=OpCode.create2)

    def create_container(self, path: str, data: bytes = b"", acl=None,
                         flags: int = CreateMode.CONTAINER) -> Reply:
        return self.create(path, data, acl, flags, op=OpCode.createContainer)

    def create_ttl(self, path: str, data: bytes = b"", ttl_ms: int = 1000, acl=None,
                   flags: int = CreateMode.PERSISTENT_WITH_TTL) -> Reply:
        return self.call(OpCode.createTTL, r.CreateTTLRequest(
            path, data, list(OPEN_ACL_UNSAFE if acl is None else acl), int(flags), ttl_ms))

    def delete(self, path: str, version: int = -1) -> Reply:
        return self.call(OpCode.delete, r.DeleteRequest(path, version))

    def exists(self, path: str, watch: bool = False) -> Reply:
        return self.call(OpCode.exists, r.ExistsRequest(path, watch))

    def get_data(self, path: str, watch: bool = False) -> Reply:
        return self.call(OpCode.getData, r.GetDataRequest(path, watch))

    def set_data(self, path: str, data: bytes, version: int = -1) -> Reply:
        return self.call(OpCode.setData, r.SetDataRequest(path, data, version))

    def get_acl(self, path: str) -> Reply:
        return self.call(OpCode.getACL, r.GetACLRequest(path))

    def set_acl(self, path: str, acl, version: int = -1) -> Reply:
        return self.call(OpCode.setACL, r.SetACLRequest(path, list(acl), version))

    def get_children(self, path: str, watch: bool = False) -> Reply:
        return self.call(OpCode.getChildren, r.GetChildrenRequest(path, watch))

    def get_children2(self, path: str, watch: bool = False) -> Reply:
        return self.call(OpCode.getChildren2, r.GetChildren2Request(path, watch))

    def sync(self, path: str) -> Reply:
        return self.call(OpCode.sync, r.SyncRequest(path))

    def check(self, path: str, version: int) -> Reply:
        """The check opcode outside a multi."""
        return self.call(OpCode.check, r.CheckVersionRequest(path, version))

    def multi(self, ops: Iterable[MultiOp]) -> Reply:
        return self.call(OpCode.multi, encode_multi_request(list(ops)))

    def multi_read(self, ops: Iterable[MultiOp]) -> Reply:
        return self.call(OpCode.multiRead, encode_multi_request(list(ops)))

    def add_watch(self, path: str, mode: int = AddWatchMode.PERSISTENT) -> Reply:
        return self.call(OpCode.addWatch, r.AddWatchRequest(path, int(mode)))

    def remove_watches(self, path: str, watcher_type: int = WatcherType.Any) -> Reply:
        return self.call(OpCode.removeWatches, r.RemoveWatchesRequest(path, int(watcher_type)))

    def check_watches(self, path: str, watcher_type: int = WatcherType.Any) -> Reply:
        return self.call(OpCode.checkWatches, r.CheckWatchesRequest(path, int(watcher_type)))

    def set_watches(self, relative_zxid: int, data=(), exist=(), child=(),
                    xid: int = Xid.SET_WATCHES) -> Reply:
        return self.call(OpCode.setWatches, r.SetWatches(
            relative_zxid, list(data), list(exist), list(child)), xid=xid)

    def set_watches2(self, relative_zxid: int, data=(), exist=(), child=(), persistent=(),
                     recursive=(), xid: int = Xid.SET_WATCHES) -> Reply:
        return self.call(OpCode.setWatches2, r.SetWatches2(
            relative_zxid, list(data), list(exist), list(child), list(persistent),
            list(recursive)), xid=xid)

    def get_ephemerals(self, prefix: str = "/") -> Reply:
        return self.call(OpCode.getEphemerals, r.GetEphemeralsRequest(prefix))

    def get_all_children_number(self, path: str) -> Reply:
        return self.call(OpCode.getAllChildrenNumber, r.GetAllChildrenNumberRequest(path))

    def who_am_i(self) -> Reply:
        return self.call(OpCode.whoAmI)


def expire_session(server, session_id: int, passwd: bytes, timeout_s: float = 20.0) -> None:
    """End a session from another connection (what an expiry does to the session's owner).

    Connecting with the session's id and password makes the server drop the owner's
    connection; closeSession then ends the session. The owner may reconnect in between and
    take the session back, so this retries until a connect attempt shows the session is gone.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client = RawClient("127.0.0.1", server.port, session_id=session_id, passwd=passwd,
                               timeout_ms=30000)
        except (ConnectionClosed, OSError):
            time.sleep(0.05)
            continue
        try:
            if client.connect_response.timeout_ms <= 0 or client.connect_response.session_id == 0:
                return  # the server no longer knows the session
            try:
                client.close_session()
            except (ConnectionClosed, TimeoutError):
                pass
        finally:
            client.disconnect()
    raise AssertionError(f"could not end session {session_id:#x} within {timeout_s}s")


def err_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return str(code)


__all__ = [
    "ConnectionClosed", "Event", "ReplyOrderError", "MultiOp", "MultiResult", "OPEN_ACL_UNSAFE", "READ_ACL_UNSAFE",
    "CREATOR_ALL_ACL", "RawClient", "Reply", "decode_reply_body", "err_name", "op_check",
    "op_create", "op_create2", "op_create_ttl", "op_delete", "op_get_children", "op_get_data",
    "op_set_data", "expire_session",
]
