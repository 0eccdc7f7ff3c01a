"""One ensemble member: the ZAB peer, the replica core and the storage, glued together.

No sockets and no clock: the owner (the asyncio runtime, or the simulator) delivers messages,
ticks and log syncs, and sends what ``process`` returns. ``process`` carries out the peer's
``Ready`` in the order ``ZabPeer`` requires (epochs, truncation/snapshot, appends, commits,
messages), then moves the replica core's outputs (prepared txns, forwarded commands, syncs, session
touches) into the peer, until neither has more to say. It never sees a front end: forwarded
commands travel as the core's neutral ``Request``s, tagged with the front end that made them.
"""

from __future__ import annotations

import structlog

from jute import Err, OpCode

from zkpy.ensemble.storage import Storage
from zkpy.replica.core import FOLLOWER, LEADER, READ_ONLY, ReplicaCore, Revalidation
from zkpy.replica.request import KeeperError, Request
from zkpy.storage.records import decode_snapshot, encode_snapshot
from zkpy.tree.digest import DIGEST_VERSION
from zkpy.zab import messages as m
from zkpy.zab.membership import (Membership, ReconfigError, format_membership,
                                 parse_membership, plan)
from zkpy.zab.peer import ZabPeer
from zkpy.zab.quorum import Majority

log = structlog.get_logger("zkpy.ensemble")

_SYNC = int(OpCode.sync)

NOT_SERVING = "not-serving"
# A ZooKeeper leader's TxnDigests held for txns not yet applied: more than it can have in
# flight; beyond it the oldest go unchecked.
MAX_EXPECTED_DIGESTS = 1 << 16
# The messages whose Ready effects keep their order when carried out together (see step_all).
_BATCHED = frozenset((m.Ack, m.Proposal, m.Commit, m.Forward, m.Ping, m.PingReply))


class EnsembleNode:
    def __init__(self, peer: ZabPeer, core: ReplicaCore, storage: Storage,
                 read_only_when_not_serving: bool = False,
                 membership: Membership | None = None, on_membership=None) -> None:
        self.peer = peer
        self.core = core
        self.storage = storage
        self.server_id = peer.my_id
        self.read_only_when_not_serving = read_only_when_not_serving
        self.membership = membership
        self.on_membership = on_membership  # called with the new Membership after a reconfig
        self.reconfig_prepared_zxid: int | None = None
        self.on_reset_link = None  # called with a peer id whose connections must be dropped
        # A SNAP's payload is the tree encoded here, unless the peer encoding serialises the
        # tree itself as it writes (ZooKeeper's protocol does: zkpy.runtime.zkpeers).
        self.fill_snapshots = True
        # Appended but not yet applied txns, by zxid: commits are applied from here.
        self.unapplied: dict[int, tuple] = {}
        # A ZooKeeper leader's TxnDigests for txns not yet applied, by zxid, in zxid order:
        # (digest version, tree digest after the txn). Checked after each applied batch.
        self.expected_digests: dict[int, tuple[int, int]] = {}
        self.digest_mismatches = 0
        self.role = NOT_SERVING
        self.role_since_ms = 0
        self.appended_zxid = peer.last_logged
        core.role = NOT_SERVING
        if read_only_when_not_serving:
            self.role = READ_ONLY
            core.role = READ_ONLY

    @property
    def serving(self) -> bool:
        """True when read-write clients are served."""
        return self.role in (LEADER, FOLLOWER)

    @property
    def accepting_clients(self) -> bool:
        return self.role != NOT_SERVING

    # -- inputs ----------------------------------------------------------------------------------

    def step(self, sender: int, message, now_ms: int) -> list:
        return self.step_all(sender, (message,), now_ms)

    def step_all(self, sender: int, messages, now_ms: int) -> list:
        """Handle ``messages`` from ``sender`` in order (a read from a peer's socket brings
        many acks or proposals at a time). ``process`` carries out a Ready in a fixed order
        (appends, commits, forwarded writes, touches, syncs), which keeps the order of the
        messages only among the kinds in ``_BATCHED``: any other message (a sync, above all:
        its reply must follow the commits before it and precede those after) is carried out
        on its own, after what came before it."""
        peer = self.peer
        outgoing: list = []
        for message in messages:
            kind = type(message)
            if kind is m.ExpectedDigest:
                self._expect_digest(message)
            elif kind in _BATCHED:
                peer.step(sender, message, now_ms)
            else:
                outgoing += self.process(now_ms)
                peer.step(sender, message, now_ms)
                outgoing += self.process(now_ms)
        outgoing += self.process(now_ms)
        return outgoing

    def tick(self, now_ms: int) -> list:
        if self.role == FOLLOWER:
            self.peer.touch_sessions(self.core.take_touched())
        self.peer.tick(now_ms)
        if self.role in (LEADER, READ_ONLY):
            self.core.tick(now_ms)
        return self.process(now_ms)

    def link_lost(self, other: int, now_ms: int, incoming: bool = False) -> list:
        self.peer.link_lost(other, now_ms, incoming)
        return self.process(now_ms)

    def log_durable(self, zxid: int, now_ms: int) -> list:
        self.peer.log_durable(zxid, now_ms)
        return self.process(now_ms)

    def reap_containers(self, now_ms: int) -> list:
        if self.role == LEADER:
            self.core.reap_containers(now_ms)
        return self.process(now_ms)

    # -- the loop --------------------------------------------------------------------------------

    def process(self, now_ms: int) -> list:
        """Carry out everything pending; returns the (to, message) pairs to send."""
        outgoing: list = []
        for _ in range(1000):
            ready = self.peer.take_ready()
            if ready.empty() and not self._core_has_output():
                break
            outgoing.extend(self._carry_out(ready, now_ms))
            self._feed_core_outputs(now_ms)
        return outgoing

    def _core_has_output(self) -> bool:
        return self.core.has_outputs()

    def _carry_out(self, ready, now_ms: int) -> list:
        storage = self.storage
        if ready.persist_epochs is not None:
            storage.persist_epochs(*ready.persist_epochs)
        if ready.truncate_to is not None:
            self._truncate(ready.truncate_to, ready.reload_tree, now_ms)
        if ready.install_snapshot is not None:
            self._install_snapshot(ready.install_snapshot, now_ms)
        if ready.append:
            storage.append(ready.append)
            for hdr, txn in ready.append:
                self.unapplied[hdr.zxid] = (hdr, txn)
            self.appended_zxid = ready.append[-1][0].zxid
        if ready.commit_to is not None:
            self._apply_up_to(ready.commit_to, now_ms)
        for sender, forward in ready.forwarded:
            self.core.handle_forwarded(_command(forward), now_ms)
        if ready.touched_sessions:
            self.core.touch_sessions(ready.touched_sessions, now_ms)
        for session_id, xid in ready.sync_done:
            self.core.sync_done(session_id, xid, now_ms)
        if self.on_reset_link is not None:
            for peer_id in ready.reset_links:
                self.on_reset_link(peer_id)
            for peer_id in ready.reset_outgoing:
                self.on_reset_link(peer_id, True)
        outgoing = [(to, self._fill(message)) for to, message in ready.messages]
        if ready.state_changed:
            self._update_role(now_ms)
        return outgoing

    def _feed_core_outputs(self, now_ms: int) -> None:
        core = self.core
        batch = core.take_log_batch()
        if batch:
            if self.role == LEADER and self.peer.serving:
                for hdr, txn in batch:
                    self.peer.propose(hdr, txn)
            else:
                log.warning("dropping txns prepared while not leading", count=len(batch),
                            peer=self.server_id)
        if core.forwards:
            # Writes and syncs leave in the order the clients sent them: the leader answers a
            # sync after the commits before it, and the follower matches those commits and
            # that answer to the session's queue in that same order.
            for request in core.take_forwards():
                if type(request) is Revalidation:
                    self.peer.revalidate(request.session_id, request.timeout_ms)
                    continue
                if request.type == _SYNC:
                    passed = self.peer.request_sync(request.session_id, request.xid)
                else:
                    passed = self.peer.forward(_forward(request))
                if not passed:
                    # No leader to take it: the client must not wait for a reply that cannot
                    # come; a lost connection tells it to retry elsewhere.
                    core.not_passed_on(request, now_ms)

    def _apply_up_to(self, zxid: int, now_ms: int) -> None:
        core = self.core
        start = core.tree.last_zxid
        if zxid <= start:
            return
        batch = []
        missing = False
        for logged in self.peer.logged_between(start, zxid):
            entry = self.unapplied.pop(logged, None)
            if entry is None:
                missing = True
                break
            batch.append(entry)
        if missing:
            batch = self.storage.read_txns(start, zxid)
            for hdr, _ in batch:
                self.unapplied.pop(hdr.zxid, None)
        core.apply_committed(batch, now_ms)
        if self.expected_digests and batch:
            self._check_digest(batch[-1][0].zxid)
        for hdr, txn in batch:
            if hdr.type == OpCode.reconfig:
                self._activate(txn.data, hdr.zxid)

    def _expect_digest(self, message: m.ExpectedDigest) -> None:
        digests = self.expected_digests
        if len(digests) >= MAX_EXPECTED_DIGESTS:
            del digests[next(iter(digests))]  # the oldest goes unchecked
        digests[message.zxid] = (message.version, message.tree_digest)

    def _check_digest(self, applied_zxid: int) -> None:
        """The tree digest after ``applied_zxid`` against the leader's, as a ZooKeeper
        learner compares them (DataTree.compareDigest); a mismatch is logged and counted (mntr
        ``zk_digest_mismatches_count``), never fatal. Only a batch's last txn is compared: a
        divergence earlier in the batch stays in the sum. Older expectations are dropped."""
        digests = self.expected_digests
        expected = digests.pop(applied_zxid, None)
        while digests:
            oldest = next(iter(digests))
            if oldest > applied_zxid:
                break
            del digests[oldest]
        if expected is None or expected[0] != DIGEST_VERSION:
            return
        tree = self.core.tree
        if tree.digest is None:
            log.info("keeping the tree digest to check the leader's", peer=self.server_id,
                     zxid=hex(applied_zxid), nodes=len(tree.nodes))
        actual = tree.keep_digest()
        if actual != expected[1]:
            self.digest_mismatches += 1
            log.error("digest mismatch: this member's tree differs from the leader's",
                      peer=self.server_id, zxid=hex(applied_zxid), leader_digest=expected[1],
                      digest=actual, mismatches=self.digest_mismatches)

    def _activate(self, data: bytes, zxid: int) -> None:
        membership = parse_membership(data.decode())
        if membership is None:
            return
        if self.reconfig_prepared_zxid is not None and self.reconfig_prepared_zxid <= zxid:
            self.reconfig_prepared_zxid = None
        self.membership = membership
        self.peer.activate(membership.voters, membership.observers)
        log.info("reconfiguration in force", peer=self.server_id, version=hex(membership.version),
                 voters=sorted(membership.voters), observers=sorted(membership.observers))
        if self.on_membership is not None:
            self.on_membership(membership)

    def _stamp_initial_membership(self, epoch: int) -> None:
        """With reconfig enabled, ZooKeeper gives the configuration it started with the version
        of the first established epoch (epoch << 32), on every member alike."""
        membership = self.membership
        if membership is None or membership.version or not self.core.settings.prep.reconfig_enabled:
            return
        self.membership = Membership(membership.members, epoch << 32)
        node = self.core.tree.nodes["/zookeeper/config"]
        node.data = format_membership(self.membership).encode()
        if self.on_membership is not None:
            self.on_membership(self.membership)

    def plan_reconfig(self, request, zxid: int) -> str:
        """Leader: the new /zookeeper/config text for a reconfig request (prep calls this)."""
        current = self.membership
        if current is None:
            raise KeeperError(Err.RECONFIGDISABLED)
        if request.cur_config_id != -1 and request.cur_config_id != current.version:
            raise KeeperError(Err.BADVERSION)
        if self.reconfig_prepared_zxid is not None or self.peer.pending_reconfig is not None:
            raise KeeperError(Err.RECONFIGINPROGRESS)
        try:
            new = plan(current, request.joining_servers, request.leaving_servers,
                       request.new_members, zxid)
        except ReconfigError as error:
            raise KeeperError(error.code) from None
        synced = {self.server_id} | {sid for sid, learner in self.peer.learners.items()
                                     if learner.up_to_date}
        if not Majority(new.voters).reached(synced):
            raise KeeperError(Err.NEWCONFIGNOQUORUM)
        self.reconfig_prepared_zxid = zxid
        return format_membership(new)

    def snapshots_retained(self, snapshot_zxids: list[int], retain_count: int) -> None:
        """A snapshot was written and the log purged behind the retained snapshots (zxids
        newest first): once as many are kept as retained, the log reaches back only to the
        oldest, and a learner further behind gets a SNAP instead of a DIFF."""
        if len(snapshot_zxids) >= retain_count:
            self.peer.set_log_floor(snapshot_zxids[-1])

    def _fill(self, message):
        """Placeholders become data: a DIFF range becomes txns, a SNAP gets the tree."""
        if type(message) is m.SyncDiff and message.txns and type(message.txns[0]) is int:
            after, upto = message.txns
            txns = [self.unapplied.get(z) for z in self.peer.logged_between(after, upto)]
            if any(t is None for t in txns):
                txns = self.storage.read_txns(after, upto)
            return m.SyncDiff(tuple(txns))
        if type(message) is m.SyncSnap and message.payload is None and self.fill_snapshots:
            tree = self.core.tree
            sessions = [(s.session_id, s.timeout_ms) for s in self.core.sessions.sessions.values()]
            return m.SyncSnap(tree.last_zxid, encode_snapshot(tree, sessions))
        return message

    def _truncate(self, zxid: int, reload_tree: bool, now_ms: int) -> None:
        self.storage.truncate_after(zxid)
        for logged in [z for z in self.unapplied if z > zxid]:
            del self.unapplied[logged]
        self.expected_digests.clear()
        if reload_tree:
            self._reload(now_ms)

    def _reload(self, now_ms: int) -> None:
        tree, sessions, snapshot_zxid = self.storage.load_snapshot()
        core = self.core
        core.reload_tree(tree)
        core.replace_sessions(sessions, now_ms)
        for hdr, txn in self.storage.read_txns(snapshot_zxid, 1 << 63):
            core.replay(hdr, txn, now_ms)
        self.unapplied.clear()
        log.info("tree reloaded from storage", peer=self.server_id, zxid=hex(tree.last_zxid))

    def _install_snapshot(self, snap: m.SyncSnap, now_ms: int) -> None:
        # Decoded once: the storage makes this tree durable before the core starts changing it.
        # A peer encoding that reads the tree as it arrives hands it over decoded.
        if type(snap.payload) is tuple:
            tree, sessions = snap.payload
        else:
            tree, sessions = decode_snapshot(snap.payload, snap.zxid)
        self.storage.install_snapshot(snap.zxid, tree, sessions)
        core = self.core
        core.reload_tree(tree)
        core.replace_sessions(sessions, now_ms)
        self.unapplied.clear()
        log.info("snapshot installed from leader", peer=self.server_id, zxid=hex(snap.zxid))

    def _update_role(self, now_ms: int) -> None:
        peer = self.peer
        if peer.state == m.LEADING and peer.established:
            role = LEADER
        elif peer.state in (m.FOLLOWING, m.OBSERVING) and peer.serving:
            role = FOLLOWER
        else:
            role = READ_ONLY if self.read_only_when_not_serving else NOT_SERVING
        if role == self.role:
            return
        log.info("role changed", peer=self.server_id, role=role, epoch=peer.current_epoch,
                 zxid=hex(self.core.tree.last_zxid))
        self.role = role
        self.role_since_ms = now_ms
        self.reconfig_prepared_zxid = None
        if role in (LEADER, FOLLOWER):
            self._stamp_initial_membership(peer.current_epoch)
        self.core.become(role, now_ms, epoch=peer.epoch if role == LEADER else 0)
        self.core.plan_reconfigs_with(self.plan_reconfig if role == LEADER else None)


def _forward(request: Request) -> m.Forward:
    """A follower's write as the leader gets it: the front end's tag and the neutral command."""
    return m.Forward(request.frontend, request.session_id, request.xid, int(request.type),
                     request.body, request.auth_info)


def _command(forward: m.Forward) -> Request:
    return Request(forward.session_id, forward.xid, forward.type, forward.body,
                   tuple(forward.auth_info), frontend=forward.frontend)
