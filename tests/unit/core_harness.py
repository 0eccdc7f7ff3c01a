"""Drive the replica core and its ZooKeeper front end in memory: no sockets, no sleeps, an
explicit clock.

``CoreHarness`` plays the runtime's part: it feeds requests in, "syncs" each log batch by
handing it straight back, and splits the outbox into frames per connection.
"""

from __future__ import annotations

import struct

from jute import OpCode, Xid
from jute import records as r
from jute.opcodes import REQUEST_RECORDS, RESPONSE_RECORDS, encode_multi_request, decode_multi_response
from zkpy.frontends.zookeeper.frontend import ZooKeeperFrontEnd
from zkpy.replica.core import CoreSettings, ReplicaCore

_LENGTH = struct.Struct(">i")


class Reply:
    def __init__(self, xid, zxid, err, body):
        self.xid, self.zxid, self.err, self.body = xid, zxid, err, body

    def __repr__(self):
        return f"Reply(xid={self.xid}, zxid={self.zxid}, err={self.err}, body={self.body!r})"


def split_frames(data: bytes) -> list[bytes]:
    frames, offset = [], 0
    while offset < len(data):
        length = _LENGTH.unpack_from(data, offset)[0]
        frames.append(data[offset + 4:offset + 4 + length])
        offset += 4 + length
    return frames


class CoreHarness:
    def __init__(self, now_ms: int = 1_000_000, **settings) -> None:
        self.now_ms = now_ms
        settings.setdefault("tick_ms", 2000)
        self.replica = ReplicaCore(CoreSettings(**settings), now_ms)
        self.zookeeper = ZooKeeperFrontEnd(self.replica)
        self._next_connection = 0
        self.inbox: dict[int, list[bytes]] = {}
        self.closed: set[int] = set()
        self.logged: list = []
        self.auto_sync = True

    # plumbing ------------------------------------------------------------------------------
    def flush(self) -> None:
        while True:
            batch = self.replica.take_log_batch()
            if not batch:
                break
            self.logged.extend(batch)
            self.replica.log_durable(batch, self.now_ms)
        self.collect()

    def collect(self) -> None:
        for connection_id, data in self.zookeeper.outbox:
            self.inbox.setdefault(connection_id, []).extend(split_frames(data))
        self.zookeeper.outbox = []
        self.closed.update(self.zookeeper.to_close)
        self.zookeeper.to_close = []

    def advance(self, ms: int) -> None:
        self.now_ms += ms
        self.replica.tick(self.now_ms)
        self.flush()

    # client side -------------------------------------------------------------------------
    def connect(self, timeout_ms: int = 10_000, session_id: int = 0, passwd: bytes = bytes(16),
                client_ip: str = "127.0.0.1") -> tuple[int, r.ConnectResponse]:
        self._next_connection += 1
        connection_id = self._next_connection
        self.zookeeper.connection_opened(connection_id, client_ip, self.now_ms)
        self.zookeeper.handle_connect(connection_id, r.ConnectRequest(0, 0, timeout_ms, session_id, passwd, False),
                                 self.now_ms)
        if self.auto_sync:
            self.flush()
        else:
            self.collect()
        frames = self.inbox.pop(connection_id, [])
        response = r.ConnectResponse.decode(frames[0]) if frames else None
        return connection_id, response

    def send(self, connection_id: int, xid: int, op: int, body=None) -> None:
        header = r.RequestHeader.encode((xid, int(op)))
        if op in (OpCode.multi, OpCode.multiRead):
            payload = header + encode_multi_request(body)
        elif body is None:
            payload = header
        elif isinstance(body, bytes):
            payload = header + body
        else:
            payload = header + REQUEST_RECORDS[op].encode(body)
        self.zookeeper.handle_request(connection_id, xid, int(op), payload, self.now_ms)

    def frames(self, connection_id: int) -> list[tuple[r.ReplyHeader, bytes]]:
        out = []
        for frame in self.inbox.pop(connection_id, []):
            header, offset = r.ReplyHeader.decode_from(frame, 0)
            out.append((header, frame[offset:]))
        return out

    def call(self, connection_id: int, op: int, body=None, xid: int | None = None):
        """Send one request, sync, and return (reply, decoded response, notifications)."""
        xid = xid if xid is not None else 100 + len(self.logged)
        self.send(connection_id, xid, op, body)
        self.flush()
        reply, response, events = None, None, []
        for header, rest in self.frames(connection_id):
            if header.xid == Xid.NOTIFICATION:
                events.append(r.WatcherEvent.decode(rest))
            elif header.xid == xid or (op == OpCode.ping and header.xid == Xid.PING):
                reply = Reply(header.xid, header.zxid, header.err, rest)
                if header.err == 0:
                    if op == OpCode.multi or op == OpCode.multiRead:
                        response = decode_multi_response(rest)
                    else:
                        record = RESPONSE_RECORDS.get(op)
                        response = record.decode(rest) if record is not None else None
        return reply, response, events

    def events(self, connection_id: int) -> list[r.WatcherEvent]:
        self.collect()
        return [r.WatcherEvent.decode(rest) for header, rest in self.frames(connection_id)
                if header.xid == Xid.NOTIFICATION]


OPEN = [r.ACL(31, r.Id("world", "anyone"))]


def create(path, data=b"", flags=0, acl=None):
    return r.CreateRequest(path, data, acl or OPEN, flags)
