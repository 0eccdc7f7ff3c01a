"""ZooKeeper 3.8's peer wire formats: QuorumPackets, the election handshake, notifications.

Three layouts, all big-endian, checked against ZooKeeper 3.8.0's Leader, Learner,
LearnerHandler, QuorumCnxManager and FastLeaderElection:

* **QuorumPacket**, on the quorum port, is a bare Jute record with no length prefix:
  ``int type, long zxid, buffer data, vector<Id> authinfo`` (a buffer is an int length, -1 for
  null, then the bytes; a vector an int count, -1 for null, then Ids of two ustrings). Only a
  SNAP packet is followed by bytes outside a packet: the serialised tree and the ustring
  signature ``BenWasHere`` (see zkpy.zab.zksnap).
* **The election handshake** opens every election-port connection: ``long protocol version``
  (-65536, or -65535 for multi-address), ``long server id``, ``int length, bytes "host:port"``.
  A bare non-negative first long is the server id of a pre-3.5 member (no address follows).
* **Election messages** are ``int length, bytes`` frames; a notification's bytes are
  ``int state, long leader, long zxid, long election epoch, long peer epoch, int version (2),
  int config length, config bytes`` (the sender's QuorumVerifier text).

Every length is checked before anything is buffered: ``PacketDecoder`` refuses a data buffer
over ``max_data_bytes`` and an authinfo vector over ``MAX_AUTH_IDS``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from jute.errors import JuteDecodeError

# QuorumPacket types (Leader.java).
REQUEST = 1
PROPOSAL = 2
ACK = 3
COMMIT = 4
PING = 5
REVALIDATE = 6
SYNC = 7
INFORM = 8
COMMITANDACTIVATE = 9
NEWLEADER = 10
FOLLOWERINFO = 11
UPTODATE = 12
DIFF = 13
TRUNC = 14
SNAP = 15
OBSERVERINFO = 16
LEADERINFO = 17
ACKEPOCH = 18
INFORMANDACTIVATE = 19

PACKET_NAMES = {value: name for name, value in globals().items()
                if name.isupper() and isinstance(value, int) and 1 <= value <= 19}

PROTOCOL_VERSION = 0x10000  # LearnerInfo's and LEADERINFO's protocol version
ELECTION_PROTOCOL_V1 = -65536
ELECTION_PROTOCOL_V2 = -65535
MAX_HANDSHAKE_ADDRESS_BYTES = 2048  # QuorumCnxManager.maxBuffer
MAX_ELECTION_MESSAGE_BYTES = 524288  # QuorumCnxManager.PACKETMAXSIZE
NOTIFICATION_VERSION = 2
MIN_NOTIFICATION_BYTES = 28  # state, leader, zxid, election epoch: what every version sends
MAX_AUTH_IDS = 1024
SNAP_SIGNATURE = "BenWasHere"

# Election states (QuorumPeer.ServerState's ordinals, as notifications carry them).
LOOKING = 0
FOLLOWING = 1
LEADING = 2
OBSERVING = 3

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_HEAD = struct.Struct(">iqi")  # type, zxid, data length
_LEARNER_INFO = struct.Struct(">qiq")
_NOTIFICATION = struct.Struct(">iqqqqii")
_NOTIFICATION_V0 = struct.Struct(">iqqq")
_HANDSHAKE = struct.Struct(">qqi")


class Packet(NamedTuple):
    type: int
    zxid: int
    data: bytes | None = None
    auth: tuple = ()  # (scheme, id) pairs


class Notification(NamedTuple):
    state: int
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    version: int = NOTIFICATION_VERSION
    config: bytes = b""


class LearnerInfo(NamedTuple):
    server_id: int
    protocol_version: int = PROTOCOL_VERSION
    config_version: int = 0


def _ustring(text: str) -> bytes:
    raw = text.encode()
    return _INT.pack(len(raw)) + raw


def encode_packet(packet: Packet) -> bytes:
    data = packet.data
    parts = [_HEAD.pack(packet.type, packet.zxid, -1 if data is None else len(data))]
    if data:
        parts.append(data)
    auth = packet.auth
    if auth:
        parts.append(_INT.pack(len(auth)))
        for scheme, ident in auth:
            parts.append(_ustring(scheme))
            parts.append(_ustring(ident))
    else:
        parts.append(_INT.pack(-1 if auth is None else 0))
    return b"".join(parts)


class PacketDecoder:
    """Splits a quorum-port byte stream into Packets (sans-IO: ``feed`` bytes, get packets).

    After a SNAP packet the stream carries the serialised tree, which is not a packet: the
    decoder stops there (``feed`` returns the SNAP last) and keeps the bytes after it in
    ``take_rest``, for the snapshot reader; the caller feeds what follows the snapshot back in.
    """

    __slots__ = ("max_data_bytes", "_buffer", "stopped")

    def __init__(self, max_data_bytes: int) -> None:
        self.max_data_bytes = max_data_bytes
        self._buffer = b""
        self.stopped = False

    def take_rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        self.stopped = False
        return rest

    def feed(self, data: bytes) -> list[Packet]:
        buffer = self._buffer + data if self._buffer else data
        packets = []
        offset = 0
        while not self.stopped:
            parsed = self._parse(buffer, offset)
            if parsed is None:
                break
            packet, offset = parsed
            packets.append(packet)
            if packet.type == SNAP:
                self.stopped = True
        self._buffer = buffer[offset:]
        return packets

    def _parse(self, buffer: bytes, offset: int):
        available = len(buffer)
        if available - offset < _HEAD.size:
            return None
        packet_type, zxid, length = _HEAD.unpack_from(buffer, offset)
        position = offset + _HEAD.size
        if length < -1 or length > self.max_data_bytes:
            raise JuteDecodeError(f"quorum packet data length {length} out of range "
                                  f"(limit {self.max_data_bytes})")
        if available - position < 4:
            return None
        data = None
        if length >= 0:
            if available - position < length + 4:
                return None
            data = buffer[position:position + length]
            position += length
        count = _INT.unpack_from(buffer, position)[0]
        position += 4
        if count < -1 or count > MAX_AUTH_IDS:
            raise JuteDecodeError(f"quorum packet authinfo count {count} out of range")
        auth = []
        for _ in range(max(count, 0)):
            pair = []
            for _ in range(2):
                if available - position < 4:
                    return None
                size = _INT.unpack_from(buffer, position)[0]
                position += 4
                if size < -1 or size > self.max_data_bytes:
                    raise JuteDecodeError(f"quorum packet authinfo string length {size}")
                if size == -1:
                    pair.append("")
                    continue
                if available - position < size:
                    return None
                pair.append(buffer[position:position + size].decode(errors="replace"))
                position += size
            auth.append(tuple(pair))
        return Packet(packet_type, zxid, data, tuple(auth)), position


def encode_learner_info(info: LearnerInfo) -> bytes:
    return _LEARNER_INFO.pack(info.server_id, info.protocol_version, info.config_version)


def decode_learner_info(data: bytes | None) -> LearnerInfo:
    """LearnerHandler reads as much as is there: the id, then the version, then the config
    version (older learners send less)."""
    if not data or len(data) < 8:
        raise JuteDecodeError("LearnerInfo without a server id")
    server_id = _LONG.unpack_from(data, 0)[0]
    version = _INT.unpack_from(data, 8)[0] if len(data) >= 12 else 0
    config_version = _LONG.unpack_from(data, 12)[0] if len(data) >= 20 else 0
    return LearnerInfo(server_id, version, config_version)


def encode_int(value: int) -> bytes:
    return _INT.pack(value)


def decode_int(data: bytes | None, what: str) -> int:
    if not data or len(data) < 4:
        raise JuteDecodeError(f"{what} without its int")
    return _INT.unpack_from(data, 0)[0]


def encode_touches(touches) -> bytes:
    """A learner's PING reply: (session id, timeout ms) pairs back to back."""
    return b"".join(struct.pack(">qi", session_id, timeout_ms) for session_id, timeout_ms in touches)


def decode_touches(data: bytes | None) -> list[tuple[int, int]]:
    if not data:
        return []
    if len(data) % 12:
        raise JuteDecodeError(f"PING touch table of {len(data)} bytes is not whole entries")
    return [struct.unpack_from(">qi", data, offset) for offset in range(0, len(data), 12)]


def encode_request(session_id: int, cxid: int, op_type: int, body: bytes) -> bytes:
    """A learner's REQUEST: the session, the client's xid, the opcode, then the body's bytes."""
    return struct.pack(">qii", session_id, cxid, op_type) + body


def decode_request(data: bytes | None) -> tuple[int, int, int, bytes]:
    if not data or len(data) < 16:
        raise JuteDecodeError("REQUEST shorter than its session, xid and type")
    session_id, cxid, op_type = struct.unpack_from(">qii", data, 0)
    return session_id, cxid, op_type, data[16:]


def encode_revalidate_request(session_id: int, timeout_ms: int) -> bytes:
    return struct.pack(">qi", session_id, timeout_ms)


def decode_revalidate_request(data: bytes | None) -> tuple[int, int]:
    if not data or len(data) < 12:
        raise JuteDecodeError("REVALIDATE shorter than its session and timeout")
    return struct.unpack_from(">qi", data, 0)


def encode_revalidate_reply(session_id: int, valid: bool) -> bytes:
    return struct.pack(">q?", session_id, valid)


def decode_revalidate_reply(data: bytes | None) -> tuple[int, bool]:
    if not data or len(data) < 9:
        raise JuteDecodeError("REVALIDATE reply shorter than its session and verdict")
    return struct.unpack_from(">q?", data, 0)


# -- election ---------------------------------------------------------------------------------

def encode_handshake(server_id: int, address: str) -> bytes:
    raw = address.encode()
    return _HANDSHAKE.pack(ELECTION_PROTOCOL_V1, server_id, len(raw)) + raw


class Handshake(NamedTuple):
    server_id: int
    address: str  # "" from a pre-3.5 member


def parse_handshake(buffer: bytes) -> tuple[Handshake, int] | None:
    """The handshake at the start of ``buffer`` and its length, or None if more is needed."""
    if len(buffer) < 8:
        return None
    first = _LONG.unpack_from(buffer, 0)[0]
    if first >= 0:
        return Handshake(first, ""), 8
    if first not in (ELECTION_PROTOCOL_V1, ELECTION_PROTOCOL_V2):
        raise JuteDecodeError(f"election handshake with unknown protocol version {first}")
    if len(buffer) < _HANDSHAKE.size:
        return None
    _, server_id, length = _HANDSHAKE.unpack_from(buffer, 0)
    if length < 0 or length > MAX_HANDSHAKE_ADDRESS_BYTES:
        raise JuteDecodeError(f"election handshake address of {length} bytes")
    end = _HANDSHAKE.size + length
    if len(buffer) < end:
        return None
    address = buffer[_HANDSHAKE.size:end].decode(errors="replace")
    return Handshake(server_id, address), end


def encode_notification(note: Notification) -> bytes:
    """A whole election frame (length included)."""
    body = _NOTIFICATION.pack(note.state, note.leader, note.zxid, note.election_epoch,
                              note.peer_epoch, note.version, len(note.config)) + note.config
    return _INT.pack(len(body)) + body


def decode_notification(body: bytes) -> Notification:
    size = len(body)
    if size < MIN_NOTIFICATION_BYTES:
        raise JuteDecodeError(f"notification of {size} bytes is too short")
    if size < _NOTIFICATION.size - 4:
        state, leader, zxid, election_epoch = _NOTIFICATION_V0.unpack_from(body, 0)
        return Notification(state, leader, zxid, election_epoch, zxid >> 32, 0, b"")
    state, leader, zxid, election_epoch, peer_epoch = struct.unpack_from(">iqqqq", body, 0)
    version = _INT.unpack_from(body, 36)[0] if size >= 40 else 0
    config = b""
    if version > 1 and size >= 44:
        length = _INT.unpack_from(body, 40)[0]
        if length < 0 or length > size - 44:
            raise JuteDecodeError(f"notification config length {length} out of range")
        config = body[44:44 + length]
    if state not in (LOOKING, FOLLOWING, LEADING, OBSERVING):
        raise JuteDecodeError(f"notification with unknown state {state}")
    return Notification(state, leader, zxid, election_epoch, peer_epoch, version, config)
