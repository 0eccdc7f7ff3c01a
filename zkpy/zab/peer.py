"""ZAB for one ensemble member, with no I/O: messages and ticks in, a ``Ready`` out.

Phases, as in the ZAB paper and ZooKeeper's implementation:
* election (LOOKING): votes ordered by (epoch, last zxid, server id); a vote that a quorum
  shares wins after ``finalize_wait_ms`` without a better one;
* discovery: followers send FollowerInfo(acceptedEpoch, lastZxid); once a quorum has, the leader
  proposes epoch = max(acceptedEpoch) + 1 (LeaderInfo) and collects AckEpoch;
* synchronisation: the leader brings each follower to its history by DIFF, TRUNC then DIFF, or
  SNAP, then NewLeader; a quorum of NewLeader acks establishes the epoch (UpToDate);
* broadcast: Proposal -> Ack from a quorum -> Commit, zxid = epoch << 32 | counter. Acks and
  commits are cumulative, as Raft's match and commit indexes are: a follower acks the newest
  zxid of each durable batch (it logs proposals in the order the leader sent them, so that
  covers every earlier one), and the leader sends one Commit for the newest zxid a quorum
  holds after each round of acks. Per-txn acks and commits, as ZooKeeper sends them, cost
  four messages per txn on a 3-node ensemble for no extra safety.

The caller processes each ``Ready`` in this order (``Ready``'s fields say the same):
1. ``persist_epochs``: write acceptedEpoch/currentEpoch durably;
2. ``truncate_to`` / ``install_snapshot``: cut the log (and reload the tree if asked) or replace
   the tree and log by a snapshot;
3. ``append``: append txns to the log, sync, then call ``log_durable(last zxid)``;
4. ``commit_to``: apply the logged txns up to that zxid to the tree, in order;
5. ``messages``: send them, filling ``SyncDiff``/``SyncSnap`` placeholders from the log and tree
   as they stand now.
Acks for appended txns are only produced by ``log_durable``, so a follower never acknowledges
a proposal it could lose.
"""

from __future__ import annotations

import bisect

from zkpy.zab import messages as m
from zkpy.zab.membership import parse_membership
from zkpy.zab.quorum import Majority

RECONFIG_TXN_TYPE = 16  # OpCode.reconfig

EPOCH_SHIFT = 32
_LEARNING = (m.FOLLOWING, m.OBSERVING)


def epoch_of(zxid: int) -> int:
    return zxid >> EPOCH_SHIFT


def vote_key(epoch: int, zxid: int, server_id: int) -> tuple[int, int, int]:
    return (epoch, zxid, server_id)


class PeerSettings:
    __slots__ = ("my_id", "voters", "observers", "tick_ms", "init_limit", "sync_limit",
                 "finalize_wait_ms", "election_resend_ms")

    def __init__(self, my_id: int, voters, tick_ms: int = 2000, init_limit: int = 10,
                 sync_limit: int = 5, finalize_wait_ms: int = 200,
                 election_resend_ms: int = 400, observers=()) -> None:
        self.my_id = my_id
        self.voters = frozenset(voters)
        self.observers = frozenset(observers)
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.finalize_wait_ms = finalize_wait_ms
        self.election_resend_ms = election_resend_ms


class Ready:
    """What the caller must do, in the order of the module docstring."""

    __slots__ = ("persist_epochs", "truncate_to", "reload_tree", "install_snapshot", "append",
                 "commit_to", "messages", "forwarded", "touched_sessions", "sync_done",
                 "state_changed", "reset_links", "reset_outgoing")

    def __init__(self) -> None:
        self.persist_epochs: tuple[int, int] | None = None
        self.truncate_to: int | None = None
        self.reload_tree = False
        self.install_snapshot: m.SyncSnap | None = None
        self.append: list[tuple] = []
        self.commit_to: int | None = None
        self.messages: list[tuple[int, object]] = []
        self.forwarded: list[tuple[int, m.Forward]] = []
        self.touched_sessions: list[int] = []
        self.sync_done: list[tuple[int, int]] = []
        self.state_changed = False
        # Peers whose connections must be dropped (with whatever is queued or in flight on
        # them): a leader we gave up on, a learner the leader gave up on. A fresh connection
        # then starts clean, as ZooKeeper's learner and LearnerHandler sockets do.
        self.reset_links: list[int] = []
        # Peers whose connection from us must start afresh before we send more (a learner
        # (re)joining: what we queued to it before may be stuck in a dead socket).
        self.reset_outgoing: list[int] = []

    def empty(self) -> bool:
        return not (self.persist_epochs or self.truncate_to is not None or self.install_snapshot
                    or self.append or self.commit_to is not None or self.messages
                    or self.forwarded or self.touched_sessions or self.sync_done
                    or self.state_changed or self.reset_links or self.reset_outgoing)


class _Learner:
    """The leader's view of one follower."""

    __slots__ = ("server_id", "accepted_epoch", "last_zxid", "acked_epoch", "current_epoch",
                 "synced", "up_to_date", "last_heard_ms", "newleader_zxid", "observer",
                 "acked_zxid")

    def __init__(self, server_id: int, now_ms: int) -> None:
        self.server_id = server_id
        self.accepted_epoch = -1
        self.last_zxid = -1
        self.acked_epoch = False
        self.current_epoch = -1
        self.synced = False
        self.up_to_date = False
        self.last_heard_ms = now_ms
        self.newleader_zxid = -1
        self.observer = False
        self.acked_zxid = -1  # every proposal up to this one is durable at the learner


class ZabPeer:
    """One member's ZAB state machine (see the module docstring for the caller's duties)."""

    def __init__(self, settings: PeerSettings, accepted_epoch: int, current_epoch: int,
                 logged_zxids: list[int], log_floor_zxid: int, applied_zxid: int,
                 now_ms: int) -> None:
        self.settings = settings
        self.my_id = settings.my_id
        self.quorum = Majority(settings.voters)
        # An observer never votes or acks; it learns the leader from established voters and
        # receives committed txns (Inform) instead of proposals.
        self.is_observer = settings.my_id in settings.observers
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        # Every zxid in the log after the floor (the floor is a snapshot's zxid or 0).
        self.logged = list(logged_zxids)
        self.log_floor = log_floor_zxid
        self.durable_zxid = self.last_logged
        self.applied_zxid = applied_zxid
        self.commit_zxid = applied_zxid
        self.now_ms = now_ms
        self.ready = Ready()
        self.state = m.LOOKING
        self.leader_id: int | None = None
        # election
        self.round = 0
        self.vote = m.Vote(0, self.my_id, self.last_logged, current_epoch, m.LOOKING)
        self.received: dict[int, m.Vote] = {}
        self.outside: dict[int, m.Vote] = {}
        self.decide_at_ms: int | None = None
        self.last_vote_sent_ms = 0
        # leading
        self.learners: dict[int, _Learner] = {}
        self.epoch = 0
        self.proposed_epoch = False
        self.established = False
        # Proposed, not yet committed: zxid -> (hdr, txn), in zxid order (dicts keep the order
        # of insertion, and proposals are made in zxid order).
        self.outstanding: dict[int, tuple] = {}
        self.pending_syncs: dict[int, list[tuple[int, int, int]]] = {}
        # following
        self.follow_phase = ""
        self.last_leader_contact_ms = now_ms
        self.ack_newleader_when_durable: int | None = None
        # Highest Commit heard from the leader; applied as far as our own log is durable.
        self.leader_commit_zxid = 0
        self.touched: set[int] = set()
        self.last_ping_ms = 0
        self.early_follower_info: dict[int, m.FollowerInfo] = {}
        self.last_acked_zxid = 0  # a follower acks what it logged after this, once durable
        # A proposed reconfig commits only with a quorum of the old and of the new voters.
        self.pending_reconfig: tuple[int, Majority] | None = None
        self.removed = False  # a reconfig took this member out: it never leads or follows
        self.start_election()

    # -- small helpers ---------------------------------------------------------------------------

    @property
    def last_logged(self) -> int:
        return self.logged[-1] if self.logged else self.log_floor

    def take_ready(self) -> Ready:
        ready, self.ready = self.ready, Ready()
        return ready

    def _send(self, to: int, message) -> None:
        self.ready.messages.append((to, message))

    def _broadcast(self, message, to=None) -> None:
        for peer in sorted(to if to is not None else self.settings.voters):
            if peer != self.my_id:
                self._send(peer, message)

    def _persist(self) -> None:
        self.ready.persist_epochs = (self.accepted_epoch, self.current_epoch)

    def _commit_to(self, zxid: int) -> None:
        if zxid > self.applied_zxid:
            self.ready.commit_to = zxid
            self.applied_zxid = zxid
        if zxid > self.commit_zxid:
            self.commit_zxid = zxid

    def _log_append(self, hdr, txn) -> None:
        self.logged.append(hdr.zxid)
        self.ready.append.append((hdr, txn))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.ready.state_changed = True

    @property
    def serving(self) -> bool:
        """True when clients may be served: an established leader or an up-to-date follower."""
        if self.state == m.LEADING:
            return self.established
        return self.state in _LEARNING and self.follow_phase == "broadcast"

    # -- election ------------------------------------------------------------------------------

    def start_election(self) -> None:
        if self.state in _LEARNING and self.leader_id is not None:
            self.ready.reset_links.append(self.leader_id)
        elif self.state == m.LEADING:
            self.ready.reset_links.extend(sorted(self.learners))
        self._set_state(m.LOOKING)
        self.leader_id = None
        self.learners.clear()
        self.established = False
        self.proposed_epoch = False
        self.outstanding.clear()
        self.pending_syncs.clear()
        self.pending_reconfig = None
        self.follow_phase = ""
        self.ack_newleader_when_durable = None
        self.leader_commit_zxid = 0
        self.round += 1
        self.early_follower_info = {}
        self.vote = m.Vote(self.round, self.my_id, self.last_logged, self.current_epoch, m.LOOKING)
        self.received = {self.my_id: self.vote}
        self.outside = {}
        self.decide_at_ms = None
        self._send_votes()
        self._check_election()

    def _send_votes(self) -> None:
        self.last_vote_sent_ms = self.now_ms
        self._broadcast(self.vote)

    def _better(self, vote: m.Vote, than: m.Vote) -> bool:
        return vote_key(vote.epoch, vote.zxid, vote.leader) > vote_key(than.epoch, than.zxid, than.leader)

    def _on_vote(self, sender: int, vote: m.Vote) -> None:
        if sender not in self.settings.voters:
            # An observer looking for the leader: established members tell it.
            if self.state != m.LOOKING and vote.state == m.LOOKING:
                self._send(sender, self._current_vote())
            return
        if self.is_observer and self.state == m.LOOKING:
            if vote.state != m.LOOKING:
                self.outside[sender] = vote
                self._check_outside(vote.leader)
            return
        if self.state != m.LOOKING:
            # An established member tells a looking one whom it follows.
            if vote.state == m.LOOKING:
                self._send(sender, self._current_vote())
            return
        if vote.state != m.LOOKING:
            self.outside[sender] = vote
            self._check_outside(vote.leader)
            return
        if vote.round > self.round:
            self.round = vote.round
            self.received = {}
            mine = m.Vote(self.round, self.my_id, self.last_logged, self.current_epoch, m.LOOKING)
            self.vote = vote._replace(state=m.LOOKING) if self._better(vote, mine) else mine
            self.received[self.my_id] = self.vote
            self._send_votes()
        elif vote.round < self.round:
            self._send(sender, self.vote)
            return
        elif self._better(vote, self.vote):
            self.vote = m.Vote(self.round, vote.leader, vote.zxid, vote.epoch, m.LOOKING)
            self.received[self.my_id] = self.vote
            self.decide_at_ms = None
            self._send_votes()
        self.received[sender] = vote
        self._check_election()

    def _current_vote(self) -> m.Vote:
        leader = self.my_id if self.state == m.LEADING else self.leader_id
        return m.Vote(self.round, leader, self.last_logged, self.current_epoch, self.state)

    def _agrees(self, vote: m.Vote) -> bool:
        mine = self.vote
        return (vote.leader, vote.zxid, vote.epoch) == (mine.leader, mine.zxid, mine.epoch)

    def _check_election(self) -> None:
        if self.is_observer:
            return
        supporters = {sid for sid, vote in self.received.items() if self._agrees(vote)}
        if self.quorum.reached(supporters):
            if self.decide_at_ms is None:
                self.decide_at_ms = self.now_ms + self.settings.finalize_wait_ms
        else:
            self.decide_at_ms = None

    def _check_outside(self, leader: int) -> None:
        supporters = {sid for sid, vote in self.outside.items() if vote.leader == leader}
        leader_vote = self.outside.get(leader)
        if leader_vote is None or leader_vote.state != m.LEADING:
            return
        if self.removed:
            return
        voters_for_leader = supporters if self.is_observer else supporters | {self.my_id}
        if self.quorum.reached(voters_for_leader):
            self._follow(leader)

    def _decide(self) -> None:
        if self.removed:
            return
        leader = self.vote.leader
        if leader == self.my_id:
            self._lead()
        else:
            self._follow(leader)

    # -- following ------------------------------------------------------------------------------

    def _follow(self, leader: int) -> None:
        self._set_state(m.OBSERVING if self.is_observer else m.FOLLOWING)
        self.leader_id = leader
        self.follow_phase = "discovery"
        self.last_leader_contact_ms = self.now_ms
        self._send(leader, m.FollowerInfo(self.accepted_epoch, self.last_logged, self.is_observer))

    def _from_leader(self, sender: int) -> bool:
        if self.state not in _LEARNING or sender != self.leader_id:
            return False
        self.last_leader_contact_ms = self.now_ms
        return True

    def _on_leader_info(self, sender: int, message: m.LeaderInfo) -> None:
        if not self._from_leader(sender):
            return
        if message.epoch < self.accepted_epoch:
            self.start_election()  # a stale leader
            return
        if message.epoch > self.accepted_epoch:
            self.accepted_epoch = message.epoch
            self._persist()
        self.follow_phase = "sync"
        self._send(sender, m.AckEpoch(self.current_epoch, self.last_logged))

    def _on_sync_diff(self, sender: int, message: m.SyncDiff) -> None:
        if not self._from_leader(sender):
            return
        for hdr, txn in message.txns:
            if hdr.zxid > self.last_logged:
                self._log_append(hdr, txn)

    def _on_sync_trunc(self, sender: int, message: m.SyncTrunc) -> None:
        if not self._from_leader(sender):
            return
        zxid = message.zxid
        if zxid < self.log_floor or not self._has_logged(zxid):
            # We cannot cut to exactly that point (our snapshot is past it, or we never had
            # that txn): start over from the leader's snapshot.
            self._reset_to_empty()
            self._send(sender, m.FollowerInfo(self.accepted_epoch, 0))
            self.follow_phase = "discovery"
            return
        cut = bisect.bisect_right(self.logged, zxid)
        del self.logged[cut:]
        self.durable_zxid = min(self.durable_zxid, self.last_logged)
        self.ready.truncate_to = zxid
        if self.applied_zxid > zxid:
            self.ready.reload_tree = True
            self.applied_zxid = zxid
            self.commit_zxid = zxid

    def _reset_to_empty(self) -> None:
        self.logged = []
        self.log_floor = 0
        self.durable_zxid = 0
        self.applied_zxid = 0
        self.commit_zxid = 0
        self.ready.truncate_to = 0
        self.ready.reload_tree = True

    def _on_sync_snap(self, sender: int, message: m.SyncSnap) -> None:
        if not self._from_leader(sender):
            return
        self.logged = []
        self.log_floor = message.zxid
        self.durable_zxid = message.zxid
        self.applied_zxid = message.zxid
        self.commit_zxid = message.zxid
        self.ready.append = []
        self.ready.commit_to = None
        self.ready.install_snapshot = message

    def _on_new_leader(self, sender: int, message: m.NewLeader) -> None:
        if not self._from_leader(sender):
            return
        self.current_epoch = message.epoch
        self._persist()
        self.ack_newleader_when_durable = message.zxid
        self._maybe_ack_newleader()

    def _maybe_ack_newleader(self) -> None:
        if self.ack_newleader_when_durable is not None and self.durable_zxid >= self.last_logged:
            self._send(self.leader_id, m.Ack(self.ack_newleader_when_durable))
            self.ack_newleader_when_durable = None

    def _on_up_to_date(self, sender: int, message: m.UpToDate) -> None:
        if not self._from_leader(sender):
            return
        self._commit_to(min(message.commit_zxid, self.last_logged))
        self.follow_phase = "broadcast"
        self.ready.state_changed = True

    def _on_proposal(self, sender: int, message: m.Proposal) -> None:
        if not self._from_leader(sender) or self.follow_phase == "discovery":
            return
        if message.hdr.zxid <= self.last_logged:
            return  # already have it (e.g. from a snapshot taken after it was sent)
        self._log_append(message.hdr, message.txn)

    def _on_commit(self, sender: int, message: m.Commit) -> None:
        if not self._from_leader(sender) or self.follow_phase == "discovery":
            return
        self.leader_commit_zxid = max(self.leader_commit_zxid, message.zxid)
        # Applied at once, synced here or not: a quorum has it, so a crash before our own sync
        # only means a resync. Waiting for the local sync would let a sync (and the read after
        # it) be answered before a commit the leader had sent ahead of its SyncReply.
        self._commit_to(min(message.zxid, self.last_logged))

    def _on_ping(self, sender: int, message: m.Ping) -> None:
        if not self._from_leader(sender):
            return
        touched = tuple(sorted(self.touched))
        self.touched.clear()
        self._send(sender, m.PingReply(touched))

    def _on_inform(self, sender: int, message: m.Inform) -> None:
        """Observer: a committed txn."""
        if not self._from_leader(sender) or self.follow_phase == "discovery":
            return
        if message.hdr.zxid > self.last_logged:
            self._log_append(message.hdr, message.txn)
        self._commit_to(message.hdr.zxid)

    def _on_sync_reply(self, sender: int, message: m.SyncReply) -> None:
        if self._from_leader(sender):
            self.ready.sync_done.append((message.session_id, message.xid))

    # -- leading --------------------------------------------------------------------------------

    def _lead(self) -> None:
        self._set_state(m.LEADING)
        self.leader_id = self.my_id
        self.learners = {}
        self.established = False
        self.proposed_epoch = False
        # The new leader's whole log will be committed by the new epoch: apply it now.
        self._commit_to(self.last_logged)
        early, self.early_follower_info = self.early_follower_info, {}
        for sender, info in sorted(early.items()):
            self._on_follower_info(sender, info)
        self._check_epoch_quorum()

    def _learner(self, sender: int) -> _Learner:
        learner = self.learners.get(sender)
        if learner is None:
            learner = self.learners[sender] = _Learner(sender, self.now_ms)
        learner.last_heard_ms = self.now_ms
        return learner

    def _on_follower_info(self, sender: int, message: m.FollowerInfo) -> None:
        if self.state != m.LEADING:
            if self.state == m.LOOKING:
                # The follower decided first; keep its info for when we decide to lead.
                self.early_follower_info[sender] = message
            return
        if message.observer != (sender in self.settings.observers):
            return  # a member claiming the wrong role (a joining server follows without a vote)
        if self.proposed_epoch and message.accepted_epoch > self.epoch:
            # It promised a later epoch to a leader that never established it, so it refuses
            # ours, and would refuse it at every retry. Step down: the next election proposes
            # an epoch past every promise it hears of, and everyone can follow that one.
            self.start_election()
            return
        if sender not in self.learners or self.learners[sender].synced:
            self.ready.reset_outgoing.append(sender)
        learner = self._learner(sender)
        learner.observer = message.observer
        learner.accepted_epoch = message.accepted_epoch
        learner.last_zxid = message.last_zxid
        learner.acked_epoch = False
        learner.synced = False
        learner.up_to_date = False
        learner.acked_zxid = -1  # a resync may cut its log: earlier acks count no more
        if self.proposed_epoch:
            self._send(sender, m.LeaderInfo(self.epoch))
        else:
            self._check_epoch_quorum()

    def _check_epoch_quorum(self) -> None:
        connected = {sid for sid, learner in self.learners.items()
                     if learner.accepted_epoch >= 0 and not learner.observer}
        if self.proposed_epoch or not self.quorum.reached(connected | {self.my_id}):
            return
        highest = max([self.accepted_epoch] + [self.learners[s].accepted_epoch for s in connected])
        self.epoch = highest + 1
        self.accepted_epoch = self.epoch
        self._persist()
        self.proposed_epoch = True
        for sid in sorted(s for s, l in self.learners.items() if l.accepted_epoch >= 0):
            self._send(sid, m.LeaderInfo(self.epoch))

    def _on_ack_epoch(self, sender: int, message: m.AckEpoch) -> None:
        if self.state != m.LEADING or sender not in self.learners:
            return
        learner = self._learner(sender)
        learner.acked_epoch = True
        learner.current_epoch = message.current_epoch
        learner.last_zxid = message.last_zxid
        if (message.current_epoch, message.last_zxid) > (self.current_epoch, self.last_logged) \
                and not self.established:
            # A follower knows more than we do: this leader must not establish its epoch.
            self.start_election()
            return
        if self.established:
            self._sync_learner(learner)
            return
        acked = {sid for sid, l in self.learners.items() if l.acked_epoch}
        if self.quorum.reached(acked | {self.my_id}):
            if self.current_epoch != self.epoch:
                self.current_epoch = self.epoch
                self._persist()
            for sid in sorted(acked):
                if not self.learners[sid].synced:
                    self._sync_learner(self.learners[sid])

    def _sync_learner(self, learner: _Learner) -> None:
        """Send DIFF, TRUNC+DIFF or SNAP up to the commit point, then outstanding proposals
        and NewLeader."""
        sid = learner.server_id
        commit = self.commit_zxid
        peer_last = learner.last_zxid
        if peer_last == commit:
            self._send(sid, m.SyncDiff(()))
        elif peer_last > commit:
            self._send(sid, m.SyncTrunc(commit))
        elif peer_last >= self.log_floor and self._has_logged(peer_last):
            self._send(sid, m.SyncDiff((peer_last, commit)))
        elif peer_last >= self.log_floor:
            index = bisect.bisect_right(self.logged, peer_last)
            common = self.logged[index - 1] if index else self.log_floor
            self._send(sid, m.SyncTrunc(common))
            self._send(sid, m.SyncDiff((common, commit)))
        else:
            self._send(sid, m.SyncSnap(commit))
        if not learner.observer:
            # Observers get outstanding txns as Inform once they commit.
            for hdr, txn in self.outstanding.values():
                self._send(sid, m.Proposal(hdr, txn))
        learner.synced = True
        learner.newleader_zxid = self.epoch << EPOCH_SHIFT
        self._send(sid, m.NewLeader(self.epoch, learner.newleader_zxid))

    def _has_logged(self, zxid: int) -> bool:
        if zxid == self.log_floor:
            return True
        index = bisect.bisect_left(self.logged, zxid)
        return index < len(self.logged) and self.logged[index] == zxid

    def _on_ack(self, sender: int, message: m.Ack) -> None:
        if self.state != m.LEADING or sender not in self.learners:
            return
        learner = self._learner(sender)
        if message.zxid == learner.newleader_zxid and not learner.up_to_date:
            learner.up_to_date = True
            if self.established:
                self._send(sender, m.UpToDate(self.commit_zxid))
            else:
                self._check_established()
            return
        if message.zxid > learner.acked_zxid:
            learner.acked_zxid = message.zxid
            self._commit_ready()

    def _check_established(self) -> None:
        acked = {sid for sid, l in self.learners.items() if l.up_to_date}
        if not self.quorum.reached(acked | {self.my_id}):
            return
        self.established = True
        self.ready.state_changed = True
        for sid in sorted(acked):
            self._send(sid, m.UpToDate(self.commit_zxid))

    def propose(self, hdr, txn) -> None:
        """Leader only: order a prepared txn (its zxid comes from the caller's prep)."""
        assert self.state == m.LEADING and self.established, "propose on a non-leader"
        zxid = hdr.zxid
        self._log_append(hdr, txn)
        self.outstanding[zxid] = (hdr, txn)
        if hdr.type == RECONFIG_TXN_TYPE:
            membership = parse_membership(txn.data.decode())
            if membership is not None:
                self.pending_reconfig = (zxid, Majority(membership.voters))
        proposal = m.Proposal(hdr, txn)
        for sid, learner in sorted(self.learners.items()):
            if learner.synced and not learner.observer:
                self._send(sid, proposal)

    def _commit_ready(self) -> None:
        """Commit, in zxid order, every outstanding proposal a quorum holds; then one Commit
        for the newest to the followers (a SyncReply waits for the Commit it follows)."""
        outstanding = self.outstanding
        committed = None
        while outstanding:
            zxid = next(iter(outstanding))
            votes = self._votes_for(zxid)
            if not self.quorum.reached(votes):
                break
            if self.pending_reconfig is not None and self.pending_reconfig[0] == zxid \
                    and not self.pending_reconfig[1].reached(votes):
                break
            hdr, txn = outstanding.pop(zxid)
            self._commit_to(zxid)
            committed = zxid
            self._inform_observers(hdr, txn)
            waiters = self.pending_syncs.pop(zxid, ())
            if waiters:
                self._send_commit(zxid)
                committed = None
                for waiter_sid, session_id, xid in waiters:
                    self._send(waiter_sid, m.SyncReply(session_id, xid))
        if committed is not None:
            self._send_commit(committed)

    def _votes_for(self, zxid: int) -> set[int]:
        votes = {sid for sid, learner in self.learners.items() if learner.acked_zxid >= zxid}
        if self.durable_zxid >= zxid:
            votes.add(self.my_id)
        return votes

    def _send_commit(self, zxid: int) -> None:
        commit = m.Commit(zxid)
        for sid, learner in sorted(self.learners.items()):
            if learner.synced and not learner.observer:
                self._send(sid, commit)

    def _inform_observers(self, hdr, txn) -> None:
        inform = None
        for sid, learner in sorted(self.learners.items()):
            if learner.synced and learner.observer:
                inform = inform or m.Inform(hdr, txn)
                self._send(sid, inform)

    def _on_forward(self, sender: int, message: m.Forward) -> None:
        # Only from a synced learner: a request that sat in a connection we gave up on must
        # not come back to life (its client was told the connection was lost).
        learner = self.learners.get(sender)
        if self.state == m.LEADING and self.established and learner is not None and learner.synced:
            learner.last_heard_ms = self.now_ms
            self.ready.forwarded.append((sender, message))

    def _on_sync_request(self, sender: int, message: m.SyncRequest) -> None:
        learner = self.learners.get(sender)
        if self.state != m.LEADING or not self.established or learner is None or not learner.synced:
            return
        if self.outstanding:
            last = next(reversed(self.outstanding))  # proposals are kept in zxid order
            self.pending_syncs.setdefault(last, []).append((sender, message.session_id, message.xid))
        else:
            self._send(sender, m.SyncReply(message.session_id, message.xid))

    def _on_ping_reply(self, sender: int, message: m.PingReply) -> None:
        if self.state == m.LEADING and sender in self.learners:
            self._learner(sender)
            self.ready.touched_sessions.extend(message.touched_sessions)

    # -- inputs -------------------------------------------------------------------------------

    _HANDLERS = {
        m.Vote: _on_vote,
        m.FollowerInfo: _on_follower_info,
        m.LeaderInfo: _on_leader_info,
        m.AckEpoch: _on_ack_epoch,
        m.SyncDiff: _on_sync_diff,
        m.SyncTrunc: _on_sync_trunc,
        m.SyncSnap: _on_sync_snap,
        m.NewLeader: _on_new_leader,
        m.Ack: _on_ack,
        m.UpToDate: _on_up_to_date,
        m.Proposal: _on_proposal,
        m.Commit: _on_commit,
        m.Inform: _on_inform,
        m.Ping: _on_ping,
        m.PingReply: _on_ping_reply,
        m.Forward: _on_forward,
        m.SyncRequest: _on_sync_request,
        m.SyncReply: _on_sync_reply,
    }

    def step(self, sender: int, message, now_ms: int) -> None:
        """Handle one message from ``sender``."""
        self.now_ms = now_ms
        handler = self._HANDLERS.get(type(message))
        if handler is not None:
            handler(self, sender, message)

    def log_durable(self, zxid: int, now_ms: int) -> None:
        """Everything appended up to ``zxid`` is synced to the log."""
        self.now_ms = now_ms
        if zxid <= self.durable_zxid:
            return
        self.durable_zxid = zxid
        if self.state == m.LEADING:
            self._commit_ready()
        elif self.state in _LEARNING:
            if self.is_observer:
                self._maybe_ack_newleader()
                return
            if self.follow_phase == "broadcast" or self.ack_newleader_when_durable is None:
                # One cumulative ack for the batch: its newest zxid (while syncing, only a
                # proposal of the new epoch is acked; those are the newest entries).
                fresh = self.logged_between(self.last_acked_zxid, zxid)
                if fresh and (self.follow_phase == "broadcast" or epoch_of(fresh[-1]) == self.current_epoch):
                    self._send(self.leader_id, m.Ack(fresh[-1]))
            self._maybe_ack_newleader()
            self.last_acked_zxid = zxid
            if self.follow_phase == "broadcast" and self.leader_commit_zxid > self.applied_zxid:
                # A Commit that came before our own log sync left this part unapplied.
                self._commit_to(min(self.leader_commit_zxid, zxid))

    def logged_between(self, low: int, high: int) -> list[int]:
        start = bisect.bisect_right(self.logged, low)
        end = bisect.bisect_right(self.logged, high)
        return self.logged[start:end]

    def forward(self, request: m.Forward) -> bool:
        """Follower only: send a client write to the leader; False if not possible now."""
        if not self.serving or self.state not in _LEARNING:
            return False
        self._send(self.leader_id, request)
        return True

    def revalidate(self, session_id: int, timeout_ms: int) -> bool:
        """Follower or observer: tell the leader a client reconnected here with this session
        (see ``m.Revalidate``); False if there is no leader to tell."""
        if not self.serving or self.state not in _LEARNING:
            return False
        self._send(self.leader_id, m.Revalidate(session_id, timeout_ms))
        return True

    def request_sync(self, session_id: int, xid: int) -> bool:
        if not self.serving or self.state not in _LEARNING:
            return False
        self._send(self.leader_id, m.SyncRequest(session_id, xid))
        return True

    def activate(self, voters, observers) -> None:
        """A committed reconfig is now in force (the caller applied it to the tree)."""
        self.settings.voters = frozenset(voters)
        self.settings.observers = frozenset(observers)
        self.quorum = Majority(voters)
        self.pending_reconfig = None
        self.is_observer = self.my_id in self.settings.observers
        for sid, learner in self.learners.items():
            learner.observer = sid in self.settings.observers
        if self.my_id not in self.settings.voters and not self.is_observer:
            # Taken out: as ZooKeeper, a following member goes on as a non-voting follower
            # until it restarts or loses its leader; it never leads or joins again.
            self.removed = True
            if self.state != m.FOLLOWING:
                self.start_election()
        elif self.state == m.LEADING and self.my_id not in self.settings.voters:
            self.start_election()  # a leader voted out hands over
        elif self.state == m.FOLLOWING and self.is_observer:
            self._set_state(m.OBSERVING)
        elif self.state == m.OBSERVING and not self.is_observer:
            self._set_state(m.FOLLOWING)

    def set_log_floor(self, zxid: int) -> None:
        """The log was purged: it is complete only after ``zxid`` now (a snapshot's zxid)."""
        if zxid <= self.log_floor:
            return
        cut = bisect.bisect_right(self.logged, zxid)
        del self.logged[:cut]
        self.log_floor = zxid

    def link_lost(self, other: int, now_ms: int, incoming: bool = False) -> None:
        """A connection with ``other`` broke (what was in flight on it is lost). ``incoming``:
        the one it opened to us. Before the leader has told us anything (discovery), losing
        an old connection from it loses nothing of this round: the leader opens a fresh one
        when we join, and the init limit covers a LeaderInfo that never comes."""
        self.now_ms = now_ms
        if self.state in _LEARNING and other == self.leader_id:
            if incoming and self.follow_phase == "discovery":
                return
            self.start_election()
        elif self.state == m.LEADING:
            self.learners.pop(other, None)

    def touch_sessions(self, session_ids) -> None:
        self.touched.update(session_ids)

    def tick(self, now_ms: int) -> None:
        self.now_ms = now_ms
        tick_ms = self.settings.tick_ms
        if self.state == m.LOOKING:
            if self.decide_at_ms is not None and now_ms >= self.decide_at_ms:
                self._decide()
            elif now_ms - self.last_vote_sent_ms >= self.settings.election_resend_ms:
                self._send_votes()
        elif self.state in _LEARNING:
            limit = self.settings.sync_limit if self.follow_phase == "broadcast" else self.settings.init_limit
            if now_ms - self.last_leader_contact_ms > limit * tick_ms:
                self.start_election()
        elif self.state == m.LEADING:
            self._lead_tick(now_ms)

    def _lead_tick(self, now_ms: int) -> None:
        tick_ms = self.settings.tick_ms
        limit = (self.settings.sync_limit if self.established else self.settings.init_limit) * tick_ms
        alive = {sid for sid, l in self.learners.items() if now_ms - l.last_heard_ms <= limit}
        for sid in [s for s in self.learners if s not in alive]:
            del self.learners[sid]
            self.ready.reset_links.append(sid)
        if not self.quorum.reached(alive | {self.my_id}):
            if self.established or now_ms - self.last_vote_sent_ms > limit:
                self.start_election()
            return
        if now_ms - self.last_ping_ms < tick_ms // 2:
            return
        self.last_ping_ms = now_ms
        for sid, learner in sorted(self.learners.items()):
            if learner.synced:
                self._send(sid, m.Ping(self.commit_zxid))
