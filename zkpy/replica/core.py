"""The replica core: the protocol-neutral pipeline every front end's writes travel, with no I/O.

Pipeline, the same in every mode: prep (validate, ACL, versions -> txn) -> order -> durable
log -> apply to the tree -> complete. A front end (the ZooKeeper client protocol today) turns
its clients' requests into commands (``zkpy.replica.request.Request``) and ``submit``s the
writes. In standalone mode ordering is a quorum of one: the txns handed out by
``take_log_batch`` are committed once the runtime reports them durable (``log_durable``). In an
ensemble the leader's core prepares (its own front ends' writes and those followers forward,
``handle_forwarded``) and ZAB orders the txns; a follower's core queues its writes for the
leader (``forwards``) and applies them when they commit (``apply_committed``).

Every applied txn goes out on the change feed: each attached front end's ``applied`` is called
with the txn and its result, in zxid order, so the front ends complete their own requests, fire
their watches and keep their histories from one ordered stream. What front ends share is here:
the tree, the sessions (``sessions``: a session's expiry is one replicated closeSession, however
its front end calls it) and the role.

Duties of the caller (the runtime), in this order for every loop turn:
1. feed events in (through the front ends, and ``tick``);
2. write ``take_log_batch()`` to the log and sync it (one sync for the whole batch);
3. call ``log_durable(batch, now_ms)`` so the txns are applied and completed;
4. let the front ends send what they queued.

Ordering duties of the core: txns are applied in zxid order; every front end sees each txn's
result before the next txn is applied; ``forwards`` keeps the order in which front ends
submitted writes and syncs, which is the order the leader must see them in.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import structlog

from jute import Err, OpCode
from jute import records as r

from zkpy.replica.prep import Prep, PrepSettings
from zkpy.replica.request import ETCD, ZOOKEEPER, Request
from zkpy.sessions.tracker import SessionTracker
from zkpy.tree.datatree import DataTree, TxnResult
from zkpy.tree.ephemeral import ttl_of
from zkpy.tree.txncodec import decode_txn

log = structlog.get_logger("zkpy.replica")

STANDALONE = "standalone"
LEADER = "leader"
FOLLOWER = "follower"
READ_ONLY = "read-only"  # an ensemble member without quorum serving read-only clients
FORWARDED = object()  # marks a follower's write that waits for its commit
# The front ends whose commands a leader knows how to prepare.
PREPARED_FRONTENDS = frozenset((ZOOKEEPER, ETCD))

class Revalidation(NamedTuple):
    """Among a follower's forwards: a client reconnected with this session (``revalidate``)."""
    session_id: int
    timeout_ms: int


_CLOSE_SESSION = int(OpCode.closeSession)
_CREATE_SESSION = int(OpCode.createSession)
# The txns that change the session table (the core's own, sessionless, txns are reapings).
_SESSION_TXNS = frozenset((_CLOSE_SESSION, _CREATE_SESSION))


class CoreSettings:
    __slots__ = ("tick_ms", "min_session_timeout_ms", "max_session_timeout_ms", "server_id",
                 "prep", "session_secret", "super_digest", "max_watches_per_session")

    def __init__(self, tick_ms=2000, min_session_timeout_ms=None, max_session_timeout_ms=None,
                 server_id=0, extended_types_enabled=False, session_secret=b"zkpy",
                 super_digest=None, max_watches_per_session=1_000_000,
                 reconfig_enabled=False, acl_checker=None) -> None:
        self.tick_ms = tick_ms
        self.min_session_timeout_ms = min_session_timeout_ms or 2 * tick_ms
        self.max_session_timeout_ms = max_session_timeout_ms or 20 * tick_ms
        self.server_id = server_id
        self.prep = PrepSettings(extended_types_enabled=extended_types_enabled,
                                 super_digest=super_digest, reconfig_enabled=reconfig_enabled,
                                 acl_checker=acl_checker)
        self.session_secret = session_secret
        self.super_digest = super_digest
        self.max_watches_per_session = max_watches_per_session

    @property
    def acl_checker(self):
        return self.prep.acl_checker


class FrontEnd(Protocol):
    """What the replica core needs from a front end it feeds.

    ``applied`` is the change feed: called once per applied txn, in zxid order, before the
    next txn is applied. ``batch_applied`` follows the last txn of a batch. ``sync_done`` and
    ``not_passed_on`` concern a follower's requests to its leader; ``session_closed`` a
    read-only member's local session; ``role_changed`` comes before the core's own reset."""

    tag: str

    def applied(self, hdr: r.TxnHeader, txn, result: TxnResult, now_ms: int) -> None: ...
    def batch_applied(self, now_ms: int) -> None: ...
    def sync_done(self, session_id: int, xid: int, now_ms: int) -> None: ...
    def not_passed_on(self, request: Request, now_ms: int) -> None: ...
    def session_closed(self, session_id: int) -> None: ...
    def role_changed(self, role: str, now_ms: int) -> None: ...


class ReplicaCore:
    """The tree, the sessions and the write pipeline of one member (see the module doc)."""

    def __init__(self, settings: CoreSettings, now_ms: int, tree: DataTree | None = None) -> None:
        self.settings = settings
        self.tree = tree or DataTree()
        self.sessions = SessionTracker(settings.tick_ms, settings.server_id, now_ms)
        self.prep = Prep(self.tree, settings.prep)
        self.role = STANDALONE
        # Follower: what must go to the leader, in the order the front ends submitted it (a
        # session's write and sync must reach the leader in its request order, or a sync's
        # reply would come after the commit of a later write, which then matches no request).
        self.forwards: list[Request | Revalidation] = []
        self.touched: set[int] = set()
        self.frontends: dict[str, FrontEnd] = {}
        self._log_batch: list[tuple[r.TxnHeader, object]] = []
        self._reaping: set[str] = set()

    def attach(self, frontend: FrontEnd) -> None:
        """Feed ``frontend`` the change feed and the role changes from now on."""
        self.frontends[frontend.tag] = frontend

    # -- writes -------------------------------------------------------------------------------

    def submit(self, request: Request, now_ms: int) -> None:
        """A write: prepared at once by a leader or a standalone server (its txn joins the next
        log batch), queued for the leader by a follower (marked FORWARDED)."""
        if not request.received_ms:
            request.received_ms = now_ms
        if request.type == _CLOSE_SESSION:
            self.sessions.set_closing(request.session_id)
        if self.role == FOLLOWER:
            request.hdr = FORWARDED
            self.forwards.append(request)
            return
        hdr, txn = self.prep.prepare(request, now_ms)
        request.hdr = hdr
        request.txn = txn
        self._log_batch.append((hdr, txn))

    def forward_sync(self, request: Request) -> None:
        """Follower: a sync goes to the leader behind the session's earlier writes."""
        self.forwards.append(request)

    def revalidate(self, session_id: int, timeout_ms: int) -> None:
        """A client reconnected here with ``session_id``. A follower tells the leader, ahead of
        the session's requests (``Revalidation`` among the forwards), so that the leader takes
        this member as the session's owner; a leader or standalone server has nobody to tell."""
        if self.role == FOLLOWER:
            self.forwards.append(Revalidation(session_id, timeout_ms))

    def handle_forwarded(self, request: Request, now_ms: int) -> None:
        """Leader: prepare a write a follower received from one of its front ends' clients."""
        request.received_ms = now_ms
        if request.frontend not in PREPARED_FRONTENDS:
            # From a member that runs a front end this one cannot prepare for; nobody here
            # waits for it, and the follower's client sees its connection drop on a timeout.
            log.warning("forwarded command of an unknown front end dropped",
                        frontend=request.frontend, session=_hex(request.session_id))
            return
        if not self._session_is_live(request):
            # Sent before the session expired and delayed (a follower cut off by a partition):
            # refused as ZooKeeper's PrepRequestProcessor refuses it, never applied.
            log.info("write from an expired session refused",
                     session=_hex(request.session_id), opcode=request.type)
            self._log_batch.append(self.prep.prepare_error(request, Err.SESSIONEXPIRED, now_ms))
            return
        if request.type == _CLOSE_SESSION:
            self.sessions.set_closing(request.session_id)
        self._log_batch.append(self.prep.prepare(request, now_ms))

    def _session_is_live(self, request: Request) -> bool:
        if request.type == _CREATE_SESSION or request.type == _CLOSE_SESSION:
            return True
        session = self.sessions.get(request.session_id)
        return session is not None and not session.closing

    def last_prepared_zxid(self) -> int:
        """Leader or standalone: the zxid a sync waits for, the last txn prepared. A new
        leader's counter starts at 1 in its epoch: while it is still 0 nothing was prepared,
        every txn is applied already, and the sync must not wait for a next write that may
        never come."""
        last = self.prep.next_zxid - 1
        if self.role == LEADER and not last & 0xFFFFFFFF:
            return min(last, self.tree.last_zxid)
        return last

    def plan_reconfigs_with(self, planner) -> None:
        """The leader's reconfig planner (None: not leading, reconfig requests are refused)."""
        self.prep.settings.reconfig_planner = planner

    def has_outputs(self) -> bool:
        """Whether txns wait for the log, or (as a follower) requests for the leader."""
        return bool(self._log_batch or self.forwards)

    def take_log_batch(self) -> list[tuple[r.TxnHeader, object]]:
        """Txns prepared since the last call, in zxid order, for the log (or ZAB)."""
        batch, self._log_batch = self._log_batch, []
        return batch

    def take_forwards(self) -> list:
        """Follower: the writes, syncs and revalidations for the leader, in submission
        order."""
        forwards, self.forwards = self.forwards, []
        return forwards

    # -- apply --------------------------------------------------------------------------------

    def apply_committed(self, batch, now_ms: int) -> None:
        """The txns of ``batch`` are committed (and, standalone, synced): apply them in zxid
        order and hand each result to the front ends."""
        frontends = tuple(self.frontends.values())
        tree, prep = self.tree, self.prep
        for hdr, txn in batch:
            result = tree.apply(hdr, txn)
            prep.applied(hdr.zxid)
            if hdr.type in _SESSION_TXNS or not hdr.client_id:
                self._track_sessions(hdr, txn, now_ms)
            for frontend in frontends:
                try:
                    frontend.applied(hdr, txn, result, now_ms)
                except Exception:  # noqa: BLE001 - one front end's bug must not stop the replica
                    log.exception("front end failed on an applied txn", frontend=frontend.tag,
                                  zxid=hex(hdr.zxid), session=_hex(hdr.client_id))
        for frontend in frontends:
            frontend.batch_applied(now_ms)

    log_durable = apply_committed

    def _track_sessions(self, hdr: r.TxnHeader, txn, now_ms: int) -> None:
        session_id = hdr.client_id
        op_type = hdr.type
        if op_type == _CREATE_SESSION:
            if session_id not in self.sessions.sessions:
                self.sessions.add(session_id, txn.timeout_ms, now_ms)
        elif op_type == _CLOSE_SESSION:
            self.sessions.remove(session_id)
            log.info("session closed", session=_hex(session_id))
        elif session_id == 0:
            self._reaping.discard(getattr(txn, "path", None))

    # -- a follower's requests to its leader --------------------------------------------------

    def sync_done(self, session_id: int, xid: int, now_ms: int) -> None:
        """Follower: the leader answered a sync."""
        for frontend in self.frontends.values():
            frontend.sync_done(session_id, xid, now_ms)

    def not_passed_on(self, request: Request, now_ms: int) -> None:
        """Follower: a forwarded write or sync could not be sent to the leader; it will never
        complete, and the front end that made it must tell its client."""
        frontend = self.frontends.get(request.frontend)
        if frontend is not None:
            frontend.not_passed_on(request, now_ms)

    def touch_sessions(self, session_ids, now_ms: int) -> None:
        """Leader: followers report the sessions their clients kept alive."""
        for session_id in session_ids:
            self.sessions.touch(session_id, now_ms)

    def take_touched(self) -> list[int]:
        touched, self.touched = list(self.touched), set()
        return touched

    # -- role ---------------------------------------------------------------------------------

    def become(self, role: str, now_ms: int, epoch: int = 0) -> None:
        """Change role (ZAB elected a leader, or we stopped serving): the front ends drop their
        clients, as ZooKeeper restarts its request pipeline; sessions live on in the tree."""
        for frontend in self.frontends.values():
            frontend.role_changed(role, now_ms)
        self._log_batch = []
        self.forwards = []
        self.touched = set()
        self._reaping.clear()
        self.role = role
        if role == LEADER:
            self.prep = Prep(self.tree, self.settings.prep)
            self.prep.next_zxid = max((epoch << 32) | 1, self.tree.last_zxid + 1)
            # Sessions get a full timeout under the new leader before they can expire.
            for session_id, session in list(self.sessions.sessions.items()):
                session.closing = False
                self.sessions.add(session_id, session.timeout_ms, now_ms)

    def reload_tree(self, tree: DataTree) -> None:
        """After a log truncation or snapshot install: the tree was rebuilt from storage."""
        self.tree = tree
        self.prep = Prep(tree, self.settings.prep)

    def replace_sessions(self, sessions, now_ms: int) -> None:
        """The sessions of a tree loaded from storage or a leader's snapshot: (id, timeout)."""
        self.sessions.sessions.clear()
        for session_id, timeout_ms in sessions:
            self.sessions.add(session_id, timeout_ms, now_ms)

    # -- time ---------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Expire sessions whose deadline passed (each becomes a closeSession txn); only the
        leader (or a standalone server) expires sessions, a read-only member its own."""
        if self.role == FOLLOWER:
            return
        if self.role == READ_ONLY:
            for session_id in self.sessions.expire(now_ms):
                self.close_local_session(session_id)
            return
        for session_id in self.sessions.expire(now_ms):
            log.info("session expired", session=_hex(session_id))
            self.submit(Request(session_id, 0, OpCode.closeSession, None), now_ms)

    def close_local_session(self, session_id: int) -> None:
        """A read-only member's session ends without a txn (it was never replicated)."""
        self.sessions.remove(session_id)
        for frontend in self.frontends.values():
            frontend.session_closed(session_id)
        log.info("session closed", session=_hex(session_id))

    def reap_containers(self, now_ms: int) -> None:
        """Delete empty containers that once had children, and expired empty TTL nodes."""
        if self.role == FOLLOWER:
            return
        nodes = self.tree.nodes
        candidates = []
        for path in self.tree.containers:
            node = nodes[path]
            if node.cversion > 0 and not node.children:
                candidates.append(path)
        for path in self.tree.ttls:
            node = nodes[path]
            if not node.children and now_ms - node.mtime > ttl_of(node.ephemeral_owner):
                candidates.append(path)
        for path in sorted(candidates):
            if path in self._reaping:
                continue
            self._reaping.add(path)
            self.submit(Request(0, 0, OpCode.deleteContainer, r.DeleteRequest(path, -1)), now_ms)

    # -- recovery -----------------------------------------------------------------------------

    def replay(self, hdr: r.TxnHeader, txn, now_ms: int) -> None:
        """Apply a txn read back from the log at start-up, restoring sessions too."""
        self.tree.apply_replayed(hdr, txn)
        if hdr.type == _CREATE_SESSION:
            self.sessions.add(hdr.client_id, txn.timeout_ms, now_ms)
        elif hdr.type == _CLOSE_SESSION:
            self.sessions.remove(hdr.client_id)
        self.prep.next_zxid = max(self.prep.next_zxid, hdr.zxid + 1)

    def replay_encoded(self, buf: bytes, now_ms: int) -> None:
        """``replay`` for a txn as the log stores it (TxnHeader and record bytes). The tree
        replays setData and multis, most of a log, without building generic records."""
        if not self.tree.replay_encoded(buf):
            hdr, txn = decode_txn(buf)
            self.replay(hdr, txn, now_ms)

    def restored(self, now_ms: int) -> None:
        """After replay: sessions get a full timeout from now to reconnect."""
        self.prep.next_zxid = max(self.prep.next_zxid, self.tree.last_zxid + 1)
        for session_id, session in list(self.sessions.sessions.items()):
            self.sessions.add(session_id, session.timeout_ms, now_ms)
        for session_id in list(self.tree.ephemerals):
            if session_id not in self.sessions.sessions:
                # Owner's session is gone (its close was never logged): treat as expired now.
                self.sessions.add(session_id, self.settings.min_session_timeout_ms, now_ms)


def _hex(session_id: int) -> str:
    return hex(session_id & 0xFFFFFFFFFFFFFFFF)
