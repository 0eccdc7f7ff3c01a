"""Peer messages on the wire: a type byte, then the message as a Jute record.

Frames are length-prefixed like client frames. Txns travel as TxnHeader + txn record (the log's
own encoding), so a follower logs exactly the bytes the leader logged. A forwarded command's
body is encoded here from its record (``zkpy.replica.commands``), and decoded back into one.
"""

from __future__ import annotations

import struct

from jute.codegen import make_record
from jute.errors import JuteDecodeError
from jute.primitives import Bool, Buffer, Int, Long, UString, Vector, record_struct as S
from jute import records as r
from zkpy.replica.commands import decode_body, encode_body
from zkpy.tree.txncodec import decode_txn, encode_txn
from zkpy.zab import messages as m

_STATES = {m.LOOKING: 0, m.FOLLOWING: 1, m.LEADING: 2, m.OBSERVING: 3}
_STATE_NAMES = {v: k for k, v in _STATES.items()}

VoteRecord = make_record("VoteRecord", S("round" / Long, "leader" / Long, "zxid" / Long,
                                         "epoch" / Long, "state" / Int))
FollowerInfoRecord = make_record("FollowerInfoRecord", S(
    "accepted_epoch" / Long, "last_zxid" / Long, "observer" / Bool))
ZxidRecord = make_record("ZxidRecord", S("zxid" / Long))
NewLeaderRecord = make_record("NewLeaderRecord", S("epoch" / Long, "zxid" / Long))
AckEpochRecord = make_record("AckEpochRecord", S("current_epoch" / Long, "last_zxid" / Long))
TxnsRecord = make_record("TxnsRecord", S("txns" / Vector(Buffer)))
SnapRecord = make_record("SnapRecord", S("zxid" / Long, "payload" / Buffer))
TxnRecord = make_record("TxnRecord", S("txn" / Buffer))
SessionsRecord = make_record("SessionsRecord", S("sessions" / Vector(Long)))
ForwardRecord = make_record("ForwardRecord", S(
    "frontend" / UString, "session_id" / Long, "xid" / Int, "type" / Int, "body" / Buffer,
    "auth" / Vector(r.Id.construct)))
SessionXidRecord = make_record("SessionXidRecord", S("session_id" / Long, "xid" / Int))
HelloRecord = make_record("HelloRecord", S("server_id" / Long, "address" / UString))

_ENCODERS = {
    m.Vote: (1, lambda x: VoteRecord.encode((x.round, x.leader, x.zxid, x.epoch, _STATES[x.state]))),
    m.FollowerInfo: (2, lambda x: FollowerInfoRecord.encode(tuple(x))),
    m.LeaderInfo: (3, lambda x: ZxidRecord.encode((x.epoch,))),
    m.AckEpoch: (4, lambda x: AckEpochRecord.encode(tuple(x))),
    m.SyncDiff: (5, lambda x: TxnsRecord.encode(([encode_txn(h, t) for h, t in x.txns],))),
    m.SyncTrunc: (6, lambda x: ZxidRecord.encode((x.zxid,))),
    m.SyncSnap: (7, lambda x: SnapRecord.encode((x.zxid, x.payload))),
    m.NewLeader: (8, lambda x: NewLeaderRecord.encode(tuple(x))),
    m.Ack: (9, lambda x: ZxidRecord.encode((x.zxid,))),
    m.UpToDate: (10, lambda x: ZxidRecord.encode((x.commit_zxid,))),
    m.Proposal: (11, lambda x: TxnRecord.encode((encode_txn(x.hdr, x.txn),))),
    m.Commit: (12, lambda x: ZxidRecord.encode((x.zxid,))),
    m.Inform: (13, lambda x: TxnRecord.encode((encode_txn(x.hdr, x.txn),))),
    m.Ping: (14, lambda x: ZxidRecord.encode((x.commit_zxid,))),
    m.PingReply: (15, lambda x: SessionsRecord.encode((list(x.touched_sessions),))),
    m.Forward: (16, lambda x: ForwardRecord.encode((
        x.frontend, x.session_id, x.xid, x.type, encode_body(x.type, x.body), list(x.auth_info)))),
    m.SyncRequest: (17, lambda x: SessionXidRecord.encode(tuple(x))),
    m.SyncReply: (18, lambda x: SessionXidRecord.encode(tuple(x))),
}


def _vote(record):
    return m.Vote(record.round, record.leader, record.zxid, record.epoch, _STATE_NAMES[record.state])


_DECODERS = {
    1: lambda b: _vote(VoteRecord.decode(b)),
    2: lambda b: m.FollowerInfo(*FollowerInfoRecord.decode(b)),
    3: lambda b: m.LeaderInfo(ZxidRecord.decode(b).zxid),
    4: lambda b: m.AckEpoch(*AckEpochRecord.decode(b)),
    5: lambda b: m.SyncDiff(tuple(decode_txn(t) for t in TxnsRecord.decode(b).txns)),
    6: lambda b: m.SyncTrunc(ZxidRecord.decode(b).zxid),
    7: lambda b: m.SyncSnap(*SnapRecord.decode(b)),
    8: lambda b: m.NewLeader(*NewLeaderRecord.decode(b)),
    9: lambda b: m.Ack(ZxidRecord.decode(b).zxid),
    10: lambda b: m.UpToDate(ZxidRecord.decode(b).zxid),
    11: lambda b: m.Proposal(*decode_txn(TxnRecord.decode(b).txn)),
    12: lambda b: m.Commit(ZxidRecord.decode(b).zxid),
    13: lambda b: m.Inform(*decode_txn(TxnRecord.decode(b).txn)),
    14: lambda b: m.Ping(ZxidRecord.decode(b).zxid),
    15: lambda b: m.PingReply(tuple(SessionsRecord.decode(b).sessions)),
    16: lambda b: _forward(ForwardRecord.decode(b)),
    17: lambda b: m.SyncRequest(*SessionXidRecord.decode(b)),
    18: lambda b: m.SyncReply(*SessionXidRecord.decode(b)),
}


def _forward(record) -> m.Forward:
    """A forwarded command; its body is decoded here, so a body that does not parse is a bad
    peer message (the link is dropped), never a command the leader would prepare."""
    try:
        body = decode_body(record.type, record.body, 0)
    except KeyError:
        raise JuteDecodeError(f"forwarded command with unknown opcode {record.type}") from None
    return m.Forward(record.frontend, record.session_id, record.xid, record.type, body,
                     tuple(record.auth))


_LENGTH = struct.Struct(">i")


def encode_message(message) -> bytes:
    """A whole frame: length, type byte, record."""
    code, encoder = _ENCODERS[type(message)]
    body = encoder(message)
    return _LENGTH.pack(len(body) + 1) + bytes((code,)) + body


def decode_message(frame: bytes):
    """The message in a frame's payload (the length already removed)."""
    if not frame:
        raise JuteDecodeError("empty peer frame")
    decoder = _DECODERS.get(frame[0])
    if decoder is None:
        raise JuteDecodeError(f"unknown peer message type {frame[0]}")
    try:
        return decoder(frame[1:])
    except (KeyError, ValueError) as error:
        raise JuteDecodeError(f"bad peer message: {error}") from error


def hello(server_id: int, address: str = "") -> bytes:
    """The first frame on a peer connection: who we are and where we listen (host:port), so a
    member that does not know us yet (a server joining by reconfig) can answer."""
    body = HelloRecord.encode((server_id, address))
    return _LENGTH.pack(len(body)) + body


def decode_hello(frame: bytes) -> tuple[int, str]:
    record = HelloRecord.decode(frame)
    return record.server_id, record.address
