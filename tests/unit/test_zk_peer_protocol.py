"""ZooKeeper's peer wire formats (jute.quorum) and the per-link translation (zkpy.zab.zklink).

The layouts are checked end to end against Java members by the mixed-ensemble compat tests;
these pin down the codec's bounds and the translation's rules without sockets.
"""

from __future__ import annotations

import random

import pytest

from jute import OpCode
from jute import quorum as q
from jute import records as r
from jute.errors import JuteDecodeError
from zkpy.zab import messages as m
from zkpy.zab.zklink import LeaderLink, LearnerLink, SnapshotFollows
from zkpy.tree.txncodec import encode_txn

SEEDS = range(20)


def _random_packet(rng: random.Random) -> q.Packet:
    data = None if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 300))
    auth = tuple((rng.choice(["digest", "ip", "sasl"]), "x" * rng.randrange(0, 20))
                 for _ in range(rng.randrange(0, 3)))
    return q.Packet(rng.randrange(1, 20), rng.randrange(-1, 1 << 62), data, auth)


@pytest.mark.parametrize("seed", SEEDS)
def test_packets_survive_any_split_of_the_stream(seed):
    rng = random.Random(seed)
    packets = [_random_packet(rng)._replace(type=rng.choice([q.PROPOSAL, q.ACK, q.PING]))
               for _ in range(30)]
    stream = b"".join(map(q.encode_packet, packets))
    decoder = q.PacketDecoder(1 << 20)
    got = []
    offset = 0
    while offset < len(stream):
        step = rng.randrange(1, 64)
        got.extend(decoder.feed(stream[offset:offset + step]))
        offset += step
    assert got == packets, f"seed {seed}"


def test_the_decoder_stops_after_a_snap_and_keeps_what_follows():
    stream = (q.encode_packet(q.Packet(q.DIFF, 5)) + q.encode_packet(q.Packet(q.SNAP, 7))
              + b"TREE BYTES" + q.encode_packet(q.Packet(q.NEWLEADER, 1 << 32)))
    decoder = q.PacketDecoder(1 << 20)
    assert [p.type for p in decoder.feed(stream)] == [q.DIFF, q.SNAP]
    assert decoder.stopped
    rest = decoder.take_rest()
    assert rest.startswith(b"TREE BYTES")
    assert [p.type for p in decoder.feed(rest[len(b"TREE BYTES"):])] == [q.NEWLEADER]


@pytest.mark.parametrize("length", [-2, (1 << 20) + 1, 0x7FFFFFFF])
def test_a_data_length_out_of_range_is_refused_before_buffering(length):
    head = q.encode_packet(q.Packet(q.PROPOSAL, 1, b""))[:12] + length.to_bytes(4, "big", signed=True)
    with pytest.raises(JuteDecodeError):
        q.PacketDecoder(1 << 20).feed(head + b"\x00\x00\x00\x00")


def test_an_authinfo_count_out_of_range_is_refused():
    packet = q.encode_packet(q.Packet(q.REQUEST, 1, b"abc"))
    bad = packet[:-4] + (q.MAX_AUTH_IDS + 1).to_bytes(4, "big")
    with pytest.raises(JuteDecodeError):
        q.PacketDecoder(1 << 20).feed(bad)


def test_handshakes_of_both_protocol_generations():
    raw = q.encode_handshake(3, "127.0.0.1:3888")
    assert q.parse_handshake(raw) == (q.Handshake(3, "127.0.0.1:3888"), len(raw))
    for cut in range(len(raw)):
        assert q.parse_handshake(raw[:cut]) is None
    assert q.parse_handshake((7).to_bytes(8, "big")) == (q.Handshake(7, ""), 8)
    with pytest.raises(JuteDecodeError):
        q.parse_handshake((-5).to_bytes(8, "big", signed=True) + bytes(12))
    oversized = raw[:16] + (q.MAX_HANDSHAKE_ADDRESS_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(JuteDecodeError):
        q.parse_handshake(oversized)


def test_notifications_round_trip_and_short_ones_are_refused():
    note = q.Notification(q.LEADING, 3, 0x100000005, 4, 1, 2, b"server.1=a:1:2\nversion=0")
    frame = q.encode_notification(note)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert q.decode_notification(frame[4:]) == note
    with pytest.raises(JuteDecodeError):
        q.decode_notification(frame[4:4 + 27])
    bad_config = bytearray(frame[4:])
    bad_config[40:44] = (10_000).to_bytes(4, "big")
    with pytest.raises(JuteDecodeError):
        q.decode_notification(bytes(bad_config))
    bad_state = bytearray(frame[4:])
    bad_state[0:4] = (9).to_bytes(4, "big")
    with pytest.raises(JuteDecodeError):
        q.decode_notification(bytes(bad_state))


def _txn(zxid: int):
    hdr = r.TxnHeader(1, zxid & 0xFFFF, zxid, 0, int(OpCode.setData))
    return hdr, r.SetDataTxn("/a", b"v", 1)


def _learner_named(link: LeaderLink, observer: bool = False):
    kind = q.OBSERVERINFO if observer else q.FOLLOWERINFO
    return link.first(q.Packet(kind, 3 << 32, q.encode_learner_info(q.LearnerInfo(2, 0x10000, 0))))


def test_leader_link_names_the_learner_and_refuses_anything_else_first():
    link = LeaderLink(lambda: b"cfg", lambda s, t: True)
    assert _learner_named(link) == (2, [m.FollowerInfo(3, -1, False)])
    with pytest.raises(JuteDecodeError):
        LeaderLink(lambda: b"", lambda s, t: True).first(q.Packet(q.ACK, 1))


def test_leader_link_sends_one_commit_per_proposal_in_order():
    link = LeaderLink(lambda: b"cfg", lambda s, t: True)
    _learner_named(link)
    zxids = [(1 << 32) + i for i in range(1, 6)]
    for zxid in zxids:
        (packet,) = link.outgoing(m.Proposal(*_txn(zxid)))
        assert (packet.type, packet.zxid) == (q.PROPOSAL, zxid)
        assert packet.data == encode_txn(*_txn(zxid))
    assert [p.zxid for p in link.outgoing(m.Commit(zxids[2]))] == zxids[:3]
    assert link.outgoing(m.Commit(zxids[2])) == []
    packets = link.outgoing(m.UpToDate(zxids[-1]))
    assert [(p.type, p.zxid) for p in packets] == [(q.COMMIT, z) for z in zxids[3:]] + [(q.UPTODATE, -1)]


def test_leader_link_diff_trunc_snap_and_newleader():
    link = LeaderLink(lambda: b"server.1=x\nversion=0", lambda s, t: True)
    _learner_named(link)
    assert link.incoming(q.Packet(q.ACKEPOCH, 0x100000003, q.encode_int(1)))[0] == \
        [m.AckEpoch(1, 0x100000003)]
    assert link.outgoing(m.SyncDiff(())) == [q.Packet(q.DIFF, 0x100000003)]
    txns = (_txn(0x100000004), _txn(0x100000005))
    packets = link.outgoing(m.SyncDiff(txns))
    assert [(p.type, p.zxid) for p in packets] == [
        (q.DIFF, 0x100000005), (q.PROPOSAL, 0x100000004), (q.COMMIT, 0x100000004),
        (q.PROPOSAL, 0x100000005), (q.COMMIT, 0x100000005)]
    assert link.outgoing(m.SyncTrunc(0x100000002)) == [q.Packet(q.TRUNC, 0x100000002)]
    assert link.outgoing(m.SyncDiff(())) == [q.Packet(q.DIFF, 0x100000002)]
    snap, follows = link.outgoing(m.SyncSnap(0x100000009))
    assert snap == q.Packet(q.SNAP, 0x100000009) and type(follows) is SnapshotFollows
    (newleader,) = link.outgoing(m.NewLeader(2, 2 << 32))
    assert newleader == q.Packet(q.NEWLEADER, 2 << 32, b"server.1=x\nversion=0")


def test_leader_link_drops_the_ack_after_uptodate_and_answers_revalidate():
    seen = []
    link = LeaderLink(lambda: b"", lambda session, timeout: seen.append((session, timeout)) or True)
    _learner_named(link)
    assert link.incoming(q.Packet(q.ACK, 2 << 32))[0] == [m.Ack(2 << 32)]  # NEWLEADER's
    link.outgoing(m.UpToDate(0))
    assert link.incoming(q.Packet(q.ACK, 2 << 32)) == ([], [])
    assert link.incoming(q.Packet(q.ACK, (2 << 32) + 1))[0] == [m.Ack((2 << 32) + 1)]
    messages, replies = link.incoming(q.Packet(q.REVALIDATE, -1, q.encode_revalidate_request(77, 4000)))
    assert messages == [] and seen == [(77, 4000)]
    assert q.decode_revalidate_reply(replies[0].data) == (77, True)
    touches = q.encode_touches([(5, 4000), (6, 9000)])
    assert link.incoming(q.Packet(q.PING, 1, touches))[0] == [m.PingReply((5, 6))]
    with pytest.raises(JuteDecodeError):
        link.incoming(q.Packet(q.PING, 1, touches[:-1]))
    with pytest.raises(JuteDecodeError):
        link.incoming(q.Packet(q.DIFF, 1))


def test_learner_link_acks_each_proposal_and_learns_the_commit_point():
    timeouts = {5: 4000}
    link = LearnerLink(2, 1, 0, timeouts.get)
    assert link.outgoing(m.FollowerInfo(3, 9, False)) == [
        q.Packet(q.FOLLOWERINFO, 3 << 32, q.encode_learner_info(q.LearnerInfo(2, 0x10000, 0)))]
    assert link.outgoing(m.FollowerInfo(3, 9, True))[0].type == q.OBSERVERINFO
    assert link.incoming(q.Packet(q.LEADERINFO, 4 << 32, q.encode_int(0x10000)))[0] == [m.LeaderInfo(4)]
    assert link.incoming(q.Packet(q.DIFF, 0x300000002))[0] == [m.SyncDiff(())]
    zxids = [0x300000003, 0x400000001, 0x400000002]
    for index, zxid in enumerate(zxids):
        hdr, txn = _txn(zxid)
        if index == 0:  # a TxnDigest may trail (a 3.6+ leader's): the member will check it
            digest = -5
            packet = q.Packet(q.PROPOSAL, zxid, encode_txn(hdr, txn) + b"\x00\x00\x00\x02"
                              + digest.to_bytes(8, "big", signed=True))
            assert link.incoming(packet)[0] == [m.ExpectedDigest(zxid, 2, -5), m.Proposal(hdr, txn)]
        else:
            packet = q.Packet(q.PROPOSAL, zxid, encode_txn(hdr, txn))
            assert link.incoming(packet)[0] == [m.Proposal(hdr, txn)]
    link.incoming(q.Packet(q.COMMIT, zxids[0]))
    assert link.incoming(q.Packet(q.NEWLEADER, 4 << 32, b"cfg"))[0] == [m.NewLeader(4, 4 << 32)]
    assert link.outgoing(m.Ack(4 << 32)) == [q.Packet(q.ACK, 4 << 32)]
    assert [p.zxid for p in link.outgoing(m.Ack(zxids[1]))] == zxids[:2]
    messages, replies = link.incoming(q.Packet(q.UPTODATE, -1))
    assert messages == [m.UpToDate(zxids[0])] and replies == [q.Packet(q.ACK, 4 << 32)]
    assert [p.zxid for p in link.outgoing(m.Ack(zxids[2]))] == [zxids[2]]
    link.incoming(q.Packet(q.PING, 0x400000002))
    (reply,) = link.outgoing(m.PingReply((5, 6)))  # 6 has gone: no timeout to tell
    assert (reply.type, reply.zxid, q.decode_touches(reply.data)) == (q.PING, 0x400000002, [(5, 4000)])


def test_learner_link_matches_sync_replies_in_order_and_refuses_a_stray_one():
    link = LearnerLink(2, 1, 0, lambda s: None)
    (packet,) = link.outgoing(m.SyncRequest(11, 1))
    assert q.decode_request(packet.data)[:3] == (11, 1, int(OpCode.sync))
    link.outgoing(m.SyncRequest(12, 7))
    assert link.incoming(q.Packet(q.SYNC, 0))[0] == [m.SyncReply(11, 1)]
    assert link.incoming(q.Packet(q.SYNC, 0))[0] == [m.SyncReply(12, 7)]
    with pytest.raises(JuteDecodeError):
        link.incoming(q.Packet(q.SYNC, 0))
    with pytest.raises(JuteDecodeError):
        link.incoming(q.Packet(q.PROPOSAL, 1, b"\x00"))
    with pytest.raises(JuteDecodeError):
        link.incoming(q.Packet(q.FOLLOWERINFO, 1))


def test_a_read_of_many_acks_or_commits_is_one_for_the_peer():
    from zkpy.zab.zklink import add_to_batch
    batch: list = []
    add_to_batch(batch, [m.Ack(4 << 32)])  # NEWLEADER's ack: kept whatever follows
    for zxid in range((4 << 32) + 1, (4 << 32) + 6):
        add_to_batch(batch, [m.Ack(zxid)])
    add_to_batch(batch, [m.SyncRequest(7, 1)])
    add_to_batch(batch, [m.Commit((4 << 32) + 1)])
    add_to_batch(batch, [m.Commit((4 << 32) + 2)])
    add_to_batch(batch, [m.Ack((4 << 32) + 9)])
    assert batch == [m.Ack(4 << 32), m.Ack((4 << 32) + 5), m.SyncRequest(7, 1),
                     m.Commit((4 << 32) + 2), m.Ack((4 << 32) + 9)]
