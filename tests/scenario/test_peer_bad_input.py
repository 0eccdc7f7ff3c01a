"""Bad input on the peer ports of a zkpy ensemble member: a malformed handshake or message on
the election port, a malformed or unexpected packet on the quorum port, a learner claiming the
leader's own id, a learner that stalls mid-handshake. Each connection is closed with a log line
naming what was wrong (and the peer, once it is known); the ensemble keeps serving its clients
and loses nothing it committed."""

from __future__ import annotations

import socket
import struct

import pytest

from jute import quorum as q
from tests.support.ensemble_fixtures import (ensemble_factory, leader_of,  # noqa: F401
                                             member_client, stop_clients, wait_for, wait_serving)


def _ports(member) -> tuple[int, int]:
    host_ports = member.settings[f"server.{member.myid}"].split(";")[0]
    _, quorum_port, election_port = host_ports.split(":")[:3]
    return int(quorum_port), int(election_port)


def _closed_after(port: int, data: bytes, timeout_s: float = 10.0) -> bool:
    """Send ``data``; True once the member closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        sock.settimeout(timeout_s)
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        return True


def _still_serves(members, path: str, value: bytes) -> None:
    wait_serving(members, 60)
    client = member_client(members[0])
    try:
        client.create(path, value, makepath=True)
        for member in members:
            other = member_client(member)
            try:
                other.sync(path)
                assert other.get(path)[0] == value
                assert other.get("/committed")[0] == b"before"
            finally:
                stop_clients([other])
    finally:
        stop_clients([client])


BAD_ELECTION_INPUT = {
    "unknown protocol version": struct.pack(">qqi", -7, 9, 0),
    "oversized handshake address": struct.pack(">qqi", q.ELECTION_PROTOCOL_V1, 9, 1 << 20),
    "message length out of range": q.encode_handshake(9, "127.0.0.1:1") + struct.pack(">i", -4),
    "short notification": q.encode_handshake(9, "127.0.0.1:1") + struct.pack(">i", 8) + bytes(8),
}

BAD_QUORUM_INPUT = {
    "oversized data length": struct.pack(">iqi", q.FOLLOWERINFO, 0, 0x7FFFFFF0),
    "a first packet that is not FOLLOWERINFO": q.encode_packet(q.Packet(q.ACK, 5)),
    "LearnerInfo without a server id": q.encode_packet(q.Packet(q.FOLLOWERINFO, 0, b"\x01")),
    "a forwarded request that does not parse": (
        q.encode_packet(q.Packet(q.FOLLOWERINFO, 0, q.encode_learner_info(q.LearnerInfo(9))))
        + q.encode_packet(q.Packet(q.REQUEST, -1, struct.pack(">qii", 1, 1, 5) + b"\xff"))),
    "an unknown packet type": (
        q.encode_packet(q.Packet(q.FOLLOWERINFO, 0, q.encode_learner_info(q.LearnerInfo(9))))
        + q.encode_packet(q.Packet(99, 0))),
}


@pytest.fixture
def served(ensemble_factory):
    members = ensemble_factory("zkpy", 3)
    wait_serving(members, 60)
    client = member_client(members[0])
    try:
        client.create("/committed", b"before")
    finally:
        stop_clients([client])
    return members


def test_bad_election_input_closes_the_connection_and_the_ensemble_serves_on(served):
    members = served
    target = members[1]
    for index, (what, data) in enumerate(BAD_ELECTION_INPUT.items()):
        assert _closed_after(_ports(target)[1], data), what
        _still_serves(members, f"/after-election-{index}", what.encode())
    log_text = target.log_path.read_text()
    assert "bad election handshake" in log_text and "bad election message" in log_text


def test_bad_quorum_input_closes_the_connection_and_the_ensemble_serves_on(served):
    members = served
    leader = leader_of(members)
    for index, (what, data) in enumerate(BAD_QUORUM_INPUT.items()):
        assert _closed_after(_ports(leader)[0], data), what
        _still_serves(members, f"/after-quorum-{index}", what.encode())
    log_text = leader.log_path.read_text()
    assert log_text.count("bad packet from learner") >= len(BAD_QUORUM_INPUT)


def test_a_learner_claiming_the_leaders_id_and_one_that_stalls_are_dropped(served):
    members = served
    leader = leader_of(members)
    claim = q.encode_packet(q.Packet(q.FOLLOWERINFO, 0,
                                     q.encode_learner_info(q.LearnerInfo(leader.myid))))
    assert _closed_after(_ports(leader)[0], claim)
    assert "a learner claiming our own server id" in leader.log_path.read_text()
    # A learner that says who it is and then never acks the epoch: the leader gives up on it
    # (initLimit) without disturbing the members that did sync.
    stalled = socket.create_connection(("127.0.0.1", _ports(leader)[0]), timeout=30)
    try:
        stalled.sendall(q.encode_packet(q.Packet(
            q.FOLLOWERINFO, 0, q.encode_learner_info(q.LearnerInfo(9)))))
        _still_serves(members, "/during-stall", b"x")
        stalled.settimeout(30)
        try:
            while stalled.recv(4096):
                pass
        except ConnectionResetError:
            pass
    finally:
        stalled.close()
    _still_serves(members, "/after-stall", b"y")
