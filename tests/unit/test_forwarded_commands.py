"""A follower forwards a neutral command (front-end tag and decoded record), never wire bytes:
the peer encoding (ZooKeeper's REQUEST packet, zkpy.zab.zklink) turns it into bytes and back,
and the leader's replica core prepares the record it decoded once."""

from __future__ import annotations

import pytest

from jute import OpCode
from jute import records as r
from jute.errors import JuteDecodeError
from jute.opcodes import MultiOp
from zkpy.ensemble.node import _command, _forward
from zkpy.replica.core import FOLLOWER, LEADER, CoreSettings, ReplicaCore
from zkpy.replica.request import ZOOKEEPER, Request
from zkpy.zab import messages as m
from jute import quorum as q
from zkpy.zab.zklink import LeaderLink, LearnerLink

OPEN = (r.ACL(31, r.Id("world", "anyone")),)
AUTH = (r.Id("ip", "127.0.0.1"), r.Id("digest", "alice:x"))

COMMANDS = [
    (OpCode.create, r.CreateRequest("/a", b"data", OPEN, 0)),
    (OpCode.create2, r.CreateRequest("/b", b"", OPEN, 3)),
    (OpCode.createContainer, r.CreateRequest("/c", b"x", OPEN, 4)),
    (OpCode.createTTL, r.CreateTTLRequest("/t", b"x", OPEN, 5, 1000)),
    (OpCode.delete, r.DeleteRequest("/a", 7)),
    (OpCode.setData, r.SetDataRequest("/a", b"\x00\xff", -1)),
    (OpCode.setACL, r.SetACLRequest("/a", list(OPEN), 2)),
    (OpCode.check, r.CheckVersionRequest("/a", 1)),
    (OpCode.multi, [MultiOp(int(OpCode.create), r.CreateRequest("/m", b"", OPEN, 0)),
                    MultiOp(int(OpCode.setData), r.SetDataRequest("/m", b"v", -1)),
                    MultiOp(int(OpCode.delete), r.DeleteRequest("/m", -1))]),
    (OpCode.createSession, 30_000),
    (OpCode.closeSession, None),
    (OpCode.reconfig, r.ReconfigRequest("server.4=127.0.0.1:1:2", "", "", -1)),
]


def _plain(value):
    if isinstance(value, (list, tuple)):
        return tuple(_plain(item) for item in value)
    return value


def _packet_bytes(forward: m.Forward) -> bytes:
    learner = LearnerLink(2, 1, 0, lambda session_id: None)
    return b"".join(map(q.encode_packet, learner.outgoing(forward)))


def _leader_receives(data: bytes) -> list:
    leader = LeaderLink(lambda: b"", lambda session_id, timeout_ms: False)
    leader.first(q.Packet(q.FOLLOWERINFO, 1 << 32, q.encode_learner_info(q.LearnerInfo(2))))
    messages = []
    for packet in q.PacketDecoder(1 << 20).feed(data):
        messages.extend(leader.incoming(packet)[0])
    return messages


def _wire(forward: m.Forward) -> m.Forward:
    (received,) = _leader_receives(_packet_bytes(forward))
    return received


@pytest.mark.parametrize("op, body", COMMANDS, ids=[op.name for op, _ in COMMANDS])
def test_a_forwarded_command_crosses_the_peer_wire_as_its_record(op, body):
    request = Request(0x1234, 9, op, body, AUTH, connection_id=77)
    forward = _forward(request)
    assert forward.frontend == ZOOKEEPER and forward.body is body
    received = _command(_wire(forward))
    assert (received.frontend, received.session_id, received.xid, received.type) == \
        (ZOOKEEPER, 0x1234, 9, int(op))
    assert received.auth_info == AUTH
    # The record, not bytes (the decoders give ACL lists as lists or tuples alike).
    assert type(received.body) is type(body)
    assert _plain(received.body) == _plain(body)
    assert received.connection_id == 0  # the follower's connection means nothing here


def test_a_forwarded_body_that_does_not_parse_is_a_bad_peer_message():
    data = _packet_bytes(_forward(Request(1, 1, OpCode.setData, r.SetDataRequest("/a", b"v", -1))))
    packet = q.PacketDecoder(1 << 20).feed(data)[0]
    cut = packet._replace(data=packet.data[:-6])  # the body ends inside the data's bytes
    with pytest.raises(JuteDecodeError):
        _leader_receives(q.encode_packet(cut))
    unknown = packet._replace(data=q.encode_request(1, 1, 4242, b""))
    with pytest.raises(JuteDecodeError):
        _leader_receives(q.encode_packet(unknown))


def test_the_leader_prepares_a_forwarded_command_and_the_follower_queues_its_own():
    leader = ReplicaCore(CoreSettings(), 1_000)
    leader.become(LEADER, 1_000, epoch=1)
    leader.handle_forwarded(Request(0, 0, OpCode.createSession, 10_000), 1_000)
    hdr, txn = leader.take_log_batch()[0]
    leader.apply_committed([(hdr, txn)], 1_000)
    session_id = hdr.client_id
    leader.handle_forwarded(_command(_wire(_forward(
        Request(session_id, 1, OpCode.create, r.CreateRequest("/x", b"v", OPEN, 0), AUTH)))), 1_001)
    (hdr, txn), = leader.take_log_batch()
    assert (hdr.type, hdr.cxid, txn.path, txn.data) == (int(OpCode.create), 1, "/x", b"v")

    follower = ReplicaCore(CoreSettings(), 1_000)
    follower.become(FOLLOWER, 1_000)
    write = Request(session_id, 2, OpCode.delete, r.DeleteRequest("/x", -1), AUTH)
    follower.submit(write, 1_002)
    assert follower.take_log_batch() == [] and follower.take_forwards() == [write]


def test_a_command_of_a_front_end_the_leader_does_not_run_is_not_prepared():
    leader = ReplicaCore(CoreSettings(), 1_000)
    leader.become(LEADER, 1_000, epoch=1)
    leader.handle_forwarded(Request(0, 0, OpCode.createSession, 10_000, frontend="consul"), 1_000)
    assert leader.take_log_batch() == []
