"""ZooKeeper's peer protocol for one link, translated to and from the ZAB peer's messages.

``ZabPeer`` speaks in ``zkpy.zab.messages``; Java members speak QuorumPackets
(``jute.quorum``). These two classes stand on either end of one learner connection and turn
one into the other, keeping the little per-link state the translation needs. No I/O: the
runtime feeds them packets or messages and writes what they return.

Where the two protocols differ, ZooKeeper's rules win on the wire:
* ZooKeeper acknowledges and commits every proposal by itself (a Java leader commits in zxid
  order and only once a quorum acked that very zxid; a Java follower expects one COMMIT per
  pending txn, in order). The peer's acks and commits are cumulative, so ``LearnerLink``
  expands an Ack into one ACK per proposal it received up to that zxid, and ``LeaderLink`` a
  Commit into one COMMIT per proposal it sent up to that zxid. The other direction needs no
  translation: ZooKeeper sends them in order, and each one covers those before it.
* Synchronisation tells the learner where the commit point is only implicitly: a DIFF's zxid,
  a TRUNC's, a SNAP's and every COMMIT are committed. ``LearnerLink`` keeps the highest and
  hands it to the peer with UPTODATE.
* After UPTODATE a ZooKeeper learner acks ``epoch << 32`` once more; ``LeaderLink`` drops
  that ack and ``LearnerLink`` sends it.
* SYNC replies carry no session: the leader answers a learner's syncs in the order they came,
  so ``LearnerLink`` matches them to its own queue of (session, xid).
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from jute import OpCode
from jute import quorum as q
from jute import records as r
from jute.errors import JuteDecodeError
from zkpy.replica.commands import decode_body, encode_body
from zkpy.tree.txncodec import decode_txn_and_digest, encode_txn
from zkpy.zab import messages as m
from zkpy.zab.peer import EPOCH_SHIFT

_COUNTER_MASK = (1 << EPOCH_SHIFT) - 1
_SYNC = int(OpCode.sync)
_RECONFIG = int(OpCode.reconfig)
_SYNC_PATH_BODY = r.SyncRequest.encode(("/",))
MAX_PENDING_SYNCS = 100_000


def add_to_batch(batch: list, messages: list) -> None:
    """Append one packet's peer messages to ``batch``, the messages of one read from a peer's
    socket. The peer's acks and commits are cumulative, so a proposal's Ack (or a Commit) right
    after another one replaces it: a read of a hundred ZooKeeper ACKs is one Ack for the peer.
    The ack of NEWLEADER (a zxid whose counter is 0) means more than "logged up to here" and is
    never replaced."""
    for message in messages:
        kind = type(message)
        if (batch and type(batch[-1]) is kind and (kind is m.Ack or kind is m.Commit)
                and batch[-1].zxid & _COUNTER_MASK and message.zxid & _COUNTER_MASK
                and message.zxid > batch[-1].zxid):
            batch[-1] = message
        else:
            batch.append(message)


class SnapshotFollows:
    """Outgoing: after this SNAP packet the runtime writes the serialised tree (as of now) and
    the signature onto the socket, before any later packet."""

    __slots__ = ("zxid",)

    def __init__(self, zxid: int) -> None:
        self.zxid = zxid


def _auth_pairs(auth_info) -> tuple:
    return tuple((ident.scheme, ident.id) for ident in auth_info)


def _decode_logged(data: bytes | None, what: str):
    """(TxnHeader, txn, TxnDigest or None) of a PROPOSAL's or INFORM's data."""
    if not data:
        raise JuteDecodeError(f"{what} without a txn")
    try:
        return decode_txn_and_digest(data)
    except (KeyError, ValueError) as error:
        raise JuteDecodeError(f"{what} with a txn that does not parse: {error!r}") from error


def _designated_leader(data: bytes | None, what: str) -> int:
    if not data or len(data) < 8:
        raise JuteDecodeError(f"{what} without its designated leader")
    return int.from_bytes(data[:8], "big", signed=True)


class LearnerLink:
    """Our connection to a ZooKeeper-protocol leader, as one of its learners.

    ``session_timeout(session_id)`` gives a live session's timeout (None once it is gone): a
    PING reply carries the timeout of every session touched since the last one.
    """

    def __init__(self, my_id: int, leader_id: int, config_version: int,
                 session_timeout: Callable[[int], int | None]) -> None:
        self.my_id = my_id
        self.leader_id = leader_id
        self.config_version = config_version
        self.session_timeout = session_timeout
        self.new_epoch = -1
        self.newleader_zxid = -1
        self.commit_point = 0  # the highest zxid the leader has shown to be committed
        self.unacked: deque[int] = deque()  # proposals received, not yet acked, in order
        self.pending_syncs: deque[tuple[int, int]] = deque()
        self.ping_zxid = 0
        self.snapshot_zxid: int | None = None  # set while a SNAP's tree is still arriving

    # -- to the leader ---------------------------------------------------------------------------

    def outgoing(self, message) -> list[q.Packet]:
        kind = type(message)
        if kind is m.Ack:
            return self._acks(message.zxid)
        if kind is m.PingReply:
            touches = []
            for session_id in message.touched_sessions:
                timeout = self.session_timeout(session_id)
                if timeout is not None:
                    touches.append((session_id, timeout))
            return [q.Packet(q.PING, self.ping_zxid, q.encode_touches(touches))]
        if kind is m.Forward:
            data = q.encode_request(message.session_id, message.xid, message.type,
                                    encode_body(message.type, message.body))
            return [q.Packet(q.REQUEST, -1, data, _auth_pairs(message.auth_info))]
        if kind is m.Revalidate:
            return [q.Packet(q.REVALIDATE, -1,
                             q.encode_revalidate_request(message.session_id, message.timeout_ms))]
        if kind is m.SyncRequest:
            if len(self.pending_syncs) >= MAX_PENDING_SYNCS:
                raise OverflowError("too many syncs waiting for the leader")
            self.pending_syncs.append((message.session_id, message.xid))
            data = q.encode_request(message.session_id, message.xid, _SYNC, _SYNC_PATH_BODY)
            return [q.Packet(q.REQUEST, -1, data)]
        if kind is m.FollowerInfo:
            info = q.encode_learner_info(q.LearnerInfo(self.my_id, q.PROTOCOL_VERSION,
                                                       self.config_version))
            packet_type = q.OBSERVERINFO if message.observer else q.FOLLOWERINFO
            return [q.Packet(packet_type, message.accepted_epoch << EPOCH_SHIFT, info)]
        if kind is m.AckEpoch:
            return [q.Packet(q.ACKEPOCH, message.last_zxid, q.encode_int(message.current_epoch))]
        raise ValueError(f"a learner does not send {kind.__name__} to its leader")

    def _acks(self, zxid: int) -> list[q.Packet]:
        if zxid & _COUNTER_MASK == 0:
            return [q.Packet(q.ACK, zxid)]  # NEWLEADER's
        packets = []
        unacked = self.unacked
        while unacked and unacked[0] <= zxid:
            packets.append(q.Packet(q.ACK, unacked.popleft()))
        return packets

    # -- from the leader -------------------------------------------------------------------------

    def incoming(self, packet: q.Packet) -> tuple[list, list[q.Packet]]:
        """The messages for the peer (sender: the leader) and packets to answer at once."""
        handler = self._INCOMING.get(packet.type)
        if handler is None:
            raise JuteDecodeError(f"unexpected {q.PACKET_NAMES.get(packet.type, packet.type)} "
                                  "packet from the leader")
        return handler(self, packet)

    def _leader_info(self, packet):
        self.new_epoch = packet.zxid >> EPOCH_SHIFT
        return [m.LeaderInfo(self.new_epoch)], []

    def _diff(self, packet):
        self._committed(packet.zxid)
        return [m.SyncDiff(())], []

    def _trunc(self, packet):
        self._committed(packet.zxid)
        self.unacked = deque(z for z in self.unacked if z <= packet.zxid)
        return [m.SyncTrunc(packet.zxid)], []

    def _snap(self, packet):
        self.snapshot_zxid = packet.zxid
        self.unacked.clear()
        return [], []

    def snapshot_received(self, tree, sessions) -> list:
        """The SNAP's tree has arrived whole (the runtime read it after the SNAP packet)."""
        zxid, self.snapshot_zxid = self.snapshot_zxid, None
        self._committed(zxid)
        return [m.SyncSnap(zxid, (tree, sessions))]

    def _proposal(self, packet):
        hdr, txn, digest = _decode_logged(packet.data, "PROPOSAL")
        self.unacked.append(hdr.zxid)
        if digest is None:
            return [m.Proposal(hdr, txn)], []
        return [m.ExpectedDigest(hdr.zxid, digest.version, digest.tree_digest),
                m.Proposal(hdr, txn)], []

    def _commit(self, packet):
        self._committed(packet.zxid)
        return [m.Commit(packet.zxid)], []

    def _inform(self, packet):
        hdr, txn, digest = _decode_logged(packet.data, "INFORM")
        self._committed(hdr.zxid)
        if digest is None:
            return [m.Inform(hdr, txn)], []
        return [m.ExpectedDigest(hdr.zxid, digest.version, digest.tree_digest),
                m.Inform(hdr, txn)], []

    def _commit_and_activate(self, packet):
        """A reconfig's COMMIT (its data names the designated leader): the peer activates the
        new membership when it applies the reconfig txn, as it does for a plain Commit."""
        _designated_leader(packet.data, "COMMITANDACTIVATE")
        return self._commit(packet)

    def _inform_and_activate(self, packet):
        _designated_leader(packet.data, "INFORMANDACTIVATE")
        return self._inform(packet._replace(data=packet.data[8:]))

    def _new_leader(self, packet):
        self.newleader_zxid = packet.zxid
        return [m.NewLeader(packet.zxid >> EPOCH_SHIFT, packet.zxid)], []

    def _up_to_date(self, packet):
        epoch = self.newleader_zxid >> EPOCH_SHIFT if self.newleader_zxid >= 0 else self.new_epoch
        return [m.UpToDate(self.commit_point)], [q.Packet(q.ACK, epoch << EPOCH_SHIFT)]

    def _ping(self, packet):
        self.ping_zxid = packet.zxid
        return [m.Ping(self.commit_point)], []

    def _sync(self, packet):
        if not self.pending_syncs:
            raise JuteDecodeError("SYNC from the leader with no sync waiting")
        session_id, xid = self.pending_syncs.popleft()
        return [m.SyncReply(session_id, xid)], []

    def _revalidate(self, packet):
        # The member checked the session locally before it answered the client; the REVALIDATE
        # it sent only moves the session's owner on a ZooKeeper leader. Nothing waits.
        q.decode_revalidate_reply(packet.data)
        return [], []

    def _committed(self, zxid: int) -> None:
        if zxid > self.commit_point:
            self.commit_point = zxid

    _INCOMING = {
        q.LEADERINFO: _leader_info, q.DIFF: _diff, q.TRUNC: _trunc, q.SNAP: _snap,
        q.PROPOSAL: _proposal, q.COMMIT: _commit, q.INFORM: _inform, q.NEWLEADER: _new_leader,
        q.UPTODATE: _up_to_date, q.PING: _ping, q.SYNC: _sync, q.REVALIDATE: _revalidate,
        q.COMMITANDACTIVATE: _commit_and_activate, q.INFORMANDACTIVATE: _inform_and_activate,
    }


class LeaderLink:
    """One ZooKeeper-protocol learner's connection to us, the leader.

    ``config_text()`` is the QuorumVerifier text NEWLEADER carries; ``revalidate(session_id,
    timeout_ms)`` says whether a session a learner's client reconnects with is still live (and
    touches it).
    """

    def __init__(self, config_text: Callable[[], bytes],
                 revalidate: Callable[[int, int], bool], my_id: int = 0) -> None:
        self.my_id = my_id  # a reconfig's designated leader: we stay on
        self.config_text = config_text
        self.revalidate = revalidate
        self.learner_id: int | None = None
        self.observer = False
        self.learner_last_zxid = 0
        self.trunc_zxid: int | None = None
        self.up_to_date_sent = False
        # Proposals sent, not yet committed, in order: (zxid, whether it is a reconfig).
        self.uncommitted: deque[tuple[int, bool]] = deque()

    # -- from the learner ------------------------------------------------------------------------

    def first(self, packet: q.Packet) -> tuple[int, list]:
        """The learner's first packet names it: (its server id, the messages for the peer)."""
        if packet.type not in (q.FOLLOWERINFO, q.OBSERVERINFO):
            raise JuteDecodeError(f"a learner opened with "
                                  f"{q.PACKET_NAMES.get(packet.type, packet.type)}, not "
                                  "FOLLOWERINFO or OBSERVERINFO")
        info = q.decode_learner_info(packet.data)
        self.learner_id = info.server_id
        self.observer = packet.type == q.OBSERVERINFO
        return info.server_id, [m.FollowerInfo(packet.zxid >> EPOCH_SHIFT, -1, self.observer)]

    def incoming(self, packet: q.Packet) -> tuple[list, list[q.Packet]]:
        kind = packet.type
        if kind == q.ACK:
            if packet.zxid & _COUNTER_MASK == 0 and self.up_to_date_sent:
                return [], []  # the ack that follows UPTODATE
            return [m.Ack(packet.zxid)], []
        if kind == q.PING:
            return [m.PingReply(tuple(s for s, _ in q.decode_touches(packet.data)))], []
        if kind == q.REQUEST:
            return [self._request(packet)], []
        if kind == q.ACKEPOCH:
            self.learner_last_zxid = packet.zxid
            return [m.AckEpoch(q.decode_int(packet.data, "ACKEPOCH"), packet.zxid)], []
        if kind == q.REVALIDATE:
            session_id, timeout_ms = q.decode_revalidate_request(packet.data)
            valid = self.revalidate(session_id, timeout_ms)
            return [], [q.Packet(q.REVALIDATE, -1, q.encode_revalidate_reply(session_id, valid))]
        raise JuteDecodeError(f"unexpected {q.PACKET_NAMES.get(kind, kind)} packet from a learner")

    @staticmethod
    def _request(packet: q.Packet):
        session_id, cxid, op_type, body = q.decode_request(packet.data)
        if op_type == _SYNC:
            return m.SyncRequest(session_id, cxid)
        try:
            record = decode_body(op_type, body, 0)
        except KeyError:
            raise JuteDecodeError(f"forwarded request with unknown opcode {op_type}") from None
        auth = tuple(r.Id(scheme, ident) for scheme, ident in packet.auth)
        return m.Forward("zookeeper", session_id, cxid, op_type, record, auth)

    # -- to the learner --------------------------------------------------------------------------

    def outgoing(self, message) -> list:
        """Packets (and a ``SnapshotFollows`` after a SNAP) for one peer message."""
        kind = type(message)
        if kind is m.Proposal:
            self.uncommitted.append((message.hdr.zxid, message.hdr.type == _RECONFIG))
            return [q.Packet(q.PROPOSAL, message.hdr.zxid, encode_txn(message.hdr, message.txn))]
        if kind is m.Commit:
            return self._commits(message.zxid)
        if kind is m.Inform:
            data = encode_txn(message.hdr, message.txn)
            if message.hdr.type == _RECONFIG:
                return [q.Packet(q.INFORMANDACTIVATE, message.hdr.zxid, self._leader_bytes() + data)]
            return [q.Packet(q.INFORM, message.hdr.zxid, data)]
        if kind is m.Ping:
            return [q.Packet(q.PING, message.commit_zxid)]
        if kind is m.SyncReply:
            return [q.Packet(q.SYNC, 0)]
        if kind is m.SyncDiff:
            return self._diff(message.txns)
        if kind is m.SyncTrunc:
            self.trunc_zxid = message.zxid
            self.uncommitted.clear()
            return [q.Packet(q.TRUNC, message.zxid)]
        if kind is m.SyncSnap:
            self.uncommitted.clear()
            return [q.Packet(q.SNAP, message.zxid), SnapshotFollows(message.zxid)]
        if kind is m.NewLeader:
            self.up_to_date_sent = False
            return [q.Packet(q.NEWLEADER, message.zxid, self.config_text())]
        if kind is m.UpToDate:
            packets = self._commits(message.commit_zxid)
            packets.append(q.Packet(q.UPTODATE, -1))
            self.up_to_date_sent = True
            return packets
        if kind is m.LeaderInfo:
            return [q.Packet(q.LEADERINFO, message.epoch << EPOCH_SHIFT,
                             q.encode_int(q.PROTOCOL_VERSION))]
        raise ValueError(f"a leader does not send {kind.__name__} to a learner")

    def _diff(self, txns) -> list[q.Packet]:
        """DIFF, then every (committed) txn as PROPOSAL and COMMIT, as LearnerHandler queues
        them. The DIFF's zxid is a committed one: the last txn, or where the learner stands."""
        if txns:
            base = txns[-1][0].zxid
        elif self.trunc_zxid is not None:
            base = self.trunc_zxid
        else:
            base = self.learner_last_zxid
        packets = [q.Packet(q.DIFF, base)]
        for hdr, txn in txns:
            packets.append(q.Packet(q.PROPOSAL, hdr.zxid, encode_txn(hdr, txn)))
            packets.append(q.Packet(q.COMMIT, hdr.zxid))
        return packets

    def _commits(self, zxid: int) -> list[q.Packet]:
        """One COMMIT per proposal up to ``zxid``; a reconfig's is COMMITANDACTIVATE, which is
        what makes a Java member switch to the new membership."""
        packets = []
        uncommitted = self.uncommitted
        while uncommitted and uncommitted[0][0] <= zxid:
            committed, reconfig = uncommitted.popleft()
            if reconfig:
                packets.append(q.Packet(q.COMMITANDACTIVATE, committed, self._leader_bytes()))
            else:
                packets.append(q.Packet(q.COMMIT, committed))
        return packets

    def _leader_bytes(self) -> bytes:
        return self.my_id.to_bytes(8, "big", signed=True)
