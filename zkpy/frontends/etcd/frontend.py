"""etcd's v3 API as a front end of the replica core, with no I/O.

The etcd keyspace is part of the znode tree (``zkpy.frontends.etcd.keys``): every etcd write is
a ZooKeeper multi that prep validates and ZAB orders like any other, so a Java member of a mixed
ensemble logs and applies it too, and ZooKeeper clients see etcd's keys. Revisions are zxids;
a key's create and mod revisions are its znode's czxid and mzxid, its version the znode's
version plus one, its lease the session that owns the (ephemeral) znode.

A write is planned against this member's view of the keyspace (its ``MvccIndex``, as of the
last applied txn): etcd's compares decide the branch there, and the multi carries a version
check for every key the plan read, so the leader's prep refuses it if any of them changed
before it was ordered. A refused plan is planned again on the newer view; it never half
applies. The answer is computed once the multi is applied, from the index at that revision:
prev_kv and the reads of a txn are exact, as they are in etcd.

Leases are sessions: a grant is a createSession with the TTL as its timeout plus an ephemeral
marker znode under ``<root>/leases`` (what tells a lease from a ZooKeeper client's session);
keys put with the lease are ephemeral znodes of that session, so an expiry or revoke removes
them all in the session's one closeSession txn. A keep-alive is a session touch.

Duties of the caller (the runtime), in this order for every loop turn:
1. feed requests in (``range``, ``write``, ``compact``, ``lease_*``, ``watch``, ``tick``);
2. let the replica core log and apply what was submitted;
3. take ``completions`` (token, response or EtcdError) and ``watch_out`` (stream, response)
   and deliver them, then clear both.

Ordering duties: completions of writes come in zxid order; a watcher gets every event in the
range once, in revision order, history before live events.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import structlog

from jute import CreateMode, Err, OpCode
from jute import records as r
from jute.opcodes import MultiOp

from zkpy.frontends.etcd import auth as auth_rules
from zkpy.frontends.etcd import auth_plans
from zkpy.frontends.etcd.errors import (COMPACTED, FUTURE_REV, INVALID_ARGUMENT, LEADER_CHANGED,
                                        LEASE_EXISTS, LEASE_NOT_FOUND, LEASE_TTL_TOO_LARGE,
                                        NO_LEADER, REQUEST_TOO_LARGE, UNAVAILABLE, EtcdError, err)
from zkpy.frontends.etcd.keys import key_of, znode_name
from zkpy.frontends.etcd.mvcc import Event, KeyValue, MvccIndex
from zkpy.frontends.etcd.plans import MultiBuilder, Plan, check_txn, writes
from zkpy.frontends.etcd.proto import auth_pb2, kv_pb2, rpc_pb2
from zkpy.frontends.etcd.records import (at_revision, passes_filters, pb_event, pb_kv, signed,
                                         sorted_kvs, txn_error, unwrap)
from zkpy.frontends.etcd.watchers import Watcher
from zkpy.replica.core import FOLLOWER, LEADER, STANDALONE, ReplicaCore
from zkpy.replica.request import ETCD, Request
from zkpy.tree.acl import digest_of
from zkpy.tree.datatree import OPEN_ACL, TxnResult
from zkpy.tree.ephemeral import is_session_owner

log = structlog.get_logger("zkpy.etcd")

MAX_TXN_OPS = 128  # etcd's --max-txn-ops default
MIN_LEASE_TTL_S = 2  # etcd's minimum with its default election timeout (1 s) and heartbeat
MAX_LEASE_TTL_S = (2**31 - 1) // 1000  # a session timeout is an int32 of milliseconds
MAX_PLAN_ATTEMPTS = 64
FRONTEND_SESSION_TIMEOUT_MS = 30_000

_CREATE = int(OpCode.create)
_DELETE = int(OpCode.delete)
_SET_DATA = int(OpCode.setData)
_CHECK = int(OpCode.check)
_MULTI = int(OpCode.multi)
_SYNC = int(OpCode.sync)
_CREATE_SESSION = int(OpCode.createSession)
_CLOSE_SESSION = int(OpCode.closeSession)
_PERSISTENT = int(CreateMode.PERSISTENT)
_EPHEMERAL = int(CreateMode.EPHEMERAL)
# Refusals of a plan whose view was stale: plan it again on the newer view.
_STALE = frozenset((int(Err.NODEEXISTS), int(Err.NONODE), int(Err.BADVERSION),
                    int(Err.NOTEMPTY)))


class EtcdSettings(NamedTuple):
    root: str = "/etcd"  # the znode under which the etcd keyspace lives
    cluster_id: int = 0
    member_id: int = 0
    max_txn_ops: int = MAX_TXN_OPS
    client_urls: tuple = ()  # where this member serves etcd, published for MemberList
    # etcd's --max-request-bytes (1.5 MiB), or less: a txn is one ZooKeeper packet between
    # members, which jute.maxbuffer bounds on every member, a Java one included.
    max_request_bytes: int = 1536 * 1024
    # How often a watch created with progress_notify hears the revision when it had no event
    # (etcd's --experimental-watch-progress-notify-interval, 10 minutes by default).
    progress_notify_interval_ms: int = 600_000
    # The secret behind the ZooKeeper id whose ACL guards the auth znodes (users, roles):
    # only the front end's requests carry that id.
    auth_secret: bytes = b"zkpy"
    # The most key versions a member keeps in memory: past it, the member compacts its own
    # history down to half (as etcd's auto-compaction bounds its database), logged.
    max_history_versions: int = 1_000_000


class _Pending:
    __slots__ = ("token", "kind", "request", "attempts", "plan", "lease_id", "ttl_s")

    def __init__(self, token, kind, request, lease_id=0, ttl_s=0) -> None:
        self.token = token
        self.kind = kind  # "txn", "compact", "grant", "grant-marker", "revoke", "barrier"
        self.request = request
        self.attempts = 0
        self.plan = None
        self.lease_id = lease_id
        self.ttl_s = ttl_s


class EtcdFrontEnd:
    """The etcd clients of one member over its replica core (see the module doc)."""

    tag = ETCD

    def __init__(self, replica: ReplicaCore, settings: EtcdSettings) -> None:
        self.replica = replica
        self.settings = settings
        self.root = settings.root
        self.kv_root = settings.root + "/kv"
        self.leases_root = settings.root + "/leases"
        self.compact_path = settings.root + "/compact"
        self.members_root = settings.root + "/members"
        self.auth_root = settings.root + "/auth"
        self.auth_id = r.Id("digest", digest_of("zkpy-etcd:" + settings.auth_secret.hex()))
        self.auth_acl = (r.ACL(0x1F, self.auth_id),)
        self.tokens = auth_rules.Tokens()
        self._auth_cache: tuple = (None, auth_rules.EMPTY)
        self.index = MvccIndex()
        self.completions: list[tuple[object, object]] = []
        self.watch_out: list[tuple[object, rpc_pb2.WatchResponse]] = []
        self.watchers: dict[tuple, Watcher] = {}
        self.pending: dict[tuple[int, int], _Pending] = {}
        self.barrier_waiting: list[_Pending] = []  # reads waiting for a sync to come back
        self.barrier_in_flight: list[_Pending] | None = None
        self.session_id = 0  # the front end's own session, for writes without a lease
        self._session_ready = False
        self._xids = 0
        self.waiting_for_session: list[_Pending] = []
        self._tree = None
        # When each lease was last kept alive through this member (for TimeToLive's remaining
        # TTL: the session tracker's deadline is rounded up to its expiry tick).
        self.lease_renewed_ms: dict[int, int] = {}
        # The clock: the runtime sets it before each call (and ``tick`` and the change feed
        # move it), so that sessions opened here get their deadline from now.
        self.now_ms = 0
        replica.attach(self)
        self.rebuild()

    # -- the index ----------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Load the keyspace from the tree as it stands (start-up, a snapshot from the
        leader); what came before counts as compacted."""
        tree = self.replica.tree
        index = MvccIndex(tree.last_zxid)
        kv_node = tree.nodes.get(self.kv_root)
        if kv_node is not None:
            loaded = []
            for name in kv_node.children or ():
                key = key_of(name)
                if key is not None:
                    loaded.append(self._kv_of(key, tree.nodes[self.kv_root + "/" + name]))
            for kv in sorted(loaded, key=lambda kv: kv.mod_revision):
                index.put(kv)
        index.revision = max(index.revision, tree.last_zxid)
        index.compact_revision = index.revision
        self.index = index
        self._tree = tree
        for watcher in list(self.watchers.values()):
            if watcher.next_revision <= index.compact_revision:
                self._cancel_compacted(watcher)

    def _fresh(self) -> None:
        """A reloaded tree (a leader's snapshot, a truncation) is a new keyspace to index."""
        if self.replica.tree is not self._tree:
            log.info("keyspace reloaded; revisions before it count as compacted",
                     zxid=hex(self.replica.tree.last_zxid))
            self.rebuild()

    def hash_kv(self, revision: int) -> int:
        """A CRC-32 of the keyspace as of ``revision`` (0: now), the same on every member
        that has applied as far."""
        crc = 0
        for kv in self.index.range(b"\x00", b"\x00", revision):
            crc = zlib.crc32(kv.key, crc)
            crc = zlib.crc32(kv.value, crc)
            crc = zlib.crc32(b"%d/%d/%d" % (kv.create_revision, kv.mod_revision, kv.version), crc)
        return crc

    def _kv_of(self, key: bytes, node) -> KeyValue:
        owner = node.ephemeral_owner
        lease = owner if is_session_owner(owner) else 0
        return KeyValue(key, node.czxid, node.mzxid, node.version + 1, node.data, lease)

    def header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        rev = self.index.revision if revision is None else revision
        return rpc_pb2.ResponseHeader(cluster_id=self.settings.cluster_id,
                                      member_id=self.settings.member_id, revision=rev,
                                      raft_term=self.term())

    def term(self) -> int:
        """etcd's raft term: ZAB's epoch (a standalone server's is 0; etcd's terms start at 1)."""
        return max(1, self.replica.tree.last_zxid >> 32, self.replica.prep.next_zxid >> 32)

    # -- reads --------------------------------------------------------------------------------

    def range(self, token, request: rpc_pb2.RangeRequest) -> None:
        """A Range; linearizable ones on a follower wait for a sync with the leader first."""
        self._fresh()
        if self.replica.role == FOLLOWER and not request.serializable:
            self._after_barrier(_Pending(token, "range", request))
            return
        self._complete(token, self._range_now(request))

    def _range_now(self, request: rpc_pb2.RangeRequest):
        try:
            return self.evaluate_range(request, self.index.revision)
        except EtcdError as error:
            return error

    def evaluate_range(self, request: rpc_pb2.RangeRequest, current: int) -> rpc_pb2.RangeResponse:
        index = self.index
        revision = request.revision
        if revision > 0:
            if revision > index.revision:
                raise err(*FUTURE_REV)
            if revision < index.compact_revision:
                raise err(*COMPACTED)
        else:
            revision = current
        kvs = [kv for kv in index.range(request.key, request.range_end, revision)
               if passes_filters(kv, request)]
        response = rpc_pb2.RangeResponse(header=self.header(current), count=len(kvs))
        if request.count_only:
            return response
        kvs = sorted_kvs(kvs, request.sort_order, request.sort_target)
        if request.limit and len(kvs) > request.limit:
            kvs = kvs[:request.limit]
            response.more = True
        for kv in kvs:
            response.kvs.append(pb_kv(kv, request.keys_only))
        return response

    def _after_barrier(self, pending: _Pending) -> None:
        self.barrier_waiting.append(pending)
        if self.barrier_in_flight is None:
            self._send_barrier()

    def _send_barrier(self) -> None:
        if not self._session_ready:
            return  # sent once the session exists (see _session_created)
        self.barrier_in_flight, self.barrier_waiting = self.barrier_waiting, []
        xid = self._next_xid()
        self.pending[(self.session_id, xid)] = _Pending(None, "barrier", None)
        self.replica.forward_sync(Request(self.session_id, xid, _SYNC,
                                          r.SyncRequest(self.kv_root), frontend=ETCD))

    def sync_done(self, session_id: int, xid: int, now_ms: int) -> None:
        if self.pending.pop((session_id, xid), None) is None:
            return
        released, self.barrier_in_flight = self.barrier_in_flight or [], None
        for pending in released:
            self._run_after_barrier(pending)
        if self.barrier_waiting:
            self._send_barrier()

    def _run_after_barrier(self, pending: _Pending) -> None:
        if pending.kind == "range":
            self._complete(pending.token, self._range_now(pending.request))
        else:
            self._complete(pending.token, self._txn_read_only(pending.request, pending.kind))

    # -- writes -------------------------------------------------------------------------------

    def put(self, token, request: rpc_pb2.PutRequest) -> None:
        self.txn(token, rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=request)]),
                 kind="put")

    def delete_range(self, token, request: rpc_pb2.DeleteRangeRequest) -> None:
        self.txn(token, rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_delete_range=request)]), kind="delete")

    def txn(self, token, request: rpc_pb2.TxnRequest, kind: str = "txn") -> None:
        self._fresh()
        try:
            check_txn(request, self.settings.max_txn_ops)
        except EtcdError as error:
            self._complete(token, error)
            return
        self._start_write(_Pending(token, kind, request))

    def _start_write(self, pending: _Pending) -> None:
        """Submit a write now, or once the front end's session is open; refuse it with no
        leader to take it."""
        if self.replica.role not in (LEADER, FOLLOWER, STANDALONE):
            self._complete(pending.token, err(*NO_LEADER))
        elif not self._session_ready:
            self.waiting_for_session.append(pending)
            self._open_session()
        else:
            self._dispatch(pending)

    def _dispatch(self, pending: _Pending) -> None:
        """(Re)submit a write by its kind: a first try, after the session opened, or after
        a refusal of a stale plan."""
        kind = pending.kind
        if kind == "compact":
            self._submit_compact(pending)
        elif kind == "grant":
            self._submit_grant(pending)
        elif kind == "revoke":
            self._submit_revoke(pending)
        elif kind == "auth":
            self._submit_auth(pending)
        else:
            self._plan_and_submit(pending)

    def _plan_and_submit(self, pending: _Pending) -> None:
        try:
            plan = self._plan_txn(pending.request)
        except EtcdError as error:
            self._complete(pending.token, error)
            return
        if not plan.ops:
            # A txn that writes nothing: answered from the view (after a barrier on a
            # follower, so that it is linearizable like etcd's).
            if self.replica.role == FOLLOWER:
                self._after_barrier(_Pending(pending.token, pending.kind, pending.request))
            else:
                revision = self.index.revision
                self._complete(pending.token,
                               unwrap(self._txn_response(plan, revision, revision), pending.kind))
            return
        pending.plan = plan
        pending.attempts += 1
        self._submit(pending, plan.session_id, _MULTI, plan.ops)

    def _submit(self, pending: _Pending, session_id: int, op_type: int, body) -> None:
        xid = self._next_xid()
        self.pending[(session_id, xid)] = pending
        self.replica.submit(Request(session_id, xid, op_type, body, (self.auth_id,),
                                    frontend=ETCD), self.now_ms)

    def _next_xid(self) -> int:
        self._xids = (self._xids + 1) & 0x7FFFFFFF or 1
        return self._xids

    def _txn_read_only(self, request: rpc_pb2.TxnRequest, kind: str):
        try:
            plan = self._plan_txn(request)
            return unwrap(self._txn_response(plan, self.index.revision, self.index.revision),
                           kind)
        except EtcdError as error:
            return error

    # -- planning -------------------------------------------------------------------------------

    def _plan_txn(self, request: rpc_pb2.TxnRequest) -> Plan:
        if request.ByteSize() > self.settings.max_request_bytes:
            raise err(*REQUEST_TOO_LARGE)
        builder = MultiBuilder(self)
        succeeded, branch = builder.txn(request)
        return Plan(builder.finish(), builder.session_id or self.session_id, succeeded, branch)

    # -- answers --------------------------------------------------------------------------------

    def _txn_response(self, plan: Plan, revision: int, before: int) -> rpc_pb2.TxnResponse:
        response = rpc_pb2.TxnResponse(header=self.header(revision), succeeded=plan.succeeded)
        wrote = False
        for op, nested in plan.branch:
            response.responses.append(self._op_response(op, nested, revision, before, wrote))
            wrote = wrote or writes(op)
        return response

    def _op_response(self, op, nested, revision: int, before: int, wrote: bool):
        which = op.WhichOneof("request")
        if which == "request_range":
            # A read sees the txn's earlier writes, not its later ones.
            at = revision if wrote else before
            inner = op.request_range
            result = self.evaluate_range(at_revision(inner, at), revision)
            result.header.CopyFrom(rpc_pb2.ResponseHeader(revision=revision))
            return rpc_pb2.ResponseOp(response_range=result)
        if which == "request_put":
            put = op.request_put
            result = rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=revision))
            if put.prev_kv:
                prev = self.index.at(put.key, before)
                if prev is not None:
                    result.prev_kv.CopyFrom(pb_kv(prev))
            return rpc_pb2.ResponseOp(response_put=result)
        if which == "request_delete_range":
            delete = op.request_delete_range
            result = rpc_pb2.DeleteRangeResponse(header=rpc_pb2.ResponseHeader(revision=revision))
            gone = [kv for kv in self.index.range(delete.key, delete.range_end, before)
                    if self.index.at(kv.key, revision) is None]
            result.deleted = len(gone)
            if delete.prev_kv:
                result.prev_kvs.extend(pb_kv(kv) for kv in gone)
            return rpc_pb2.ResponseOp(response_delete_range=result)
        sub = self._txn_response(nested, revision, before)
        sub.header.CopyFrom(rpc_pb2.ResponseHeader(revision=revision))
        return rpc_pb2.ResponseOp(response_txn=sub)

    def _complete(self, token, outcome) -> None:
        if token is not None:
            self.completions.append((token, outcome))

    # -- compaction ---------------------------------------------------------------------------

    def compact(self, token, request: rpc_pb2.CompactionRequest) -> None:
        revision = request.revision
        if revision > self.index.revision:
            self._complete(token, err(*FUTURE_REV))
            return
        if revision <= self.index.compact_revision:
            self._complete(token, err(*COMPACTED))
            return
        self._start_write(_Pending(token, "compact", request))

    def _submit_compact(self, pending: _Pending) -> None:
        data = str(pending.request.revision).encode()
        ops = self.parent_creates([self.compact_path])
        if self.compact_path in self.replica.tree.nodes:
            ops.append(MultiOp(_SET_DATA, r.SetDataRequest(self.compact_path, data, -1)))
        else:
            ops.append(MultiOp(_CREATE, r.CreateRequest(self.compact_path, data, OPEN_ACL,
                                                        _PERSISTENT)))
        pending.attempts += 1
        self._submit(pending, self.session_id, _MULTI, ops)

    def parent_creates(self, paths) -> list:
        """Creates for the missing znodes above ``paths`` (the keyspace's own)."""
        nodes = self.replica.tree.nodes
        ops, seen = [], set()
        for path in paths:
            parent = path.rsplit("/", 1)[0]
            chain = []
            while parent and parent not in nodes and parent not in seen:
                chain.append(parent)
                seen.add(parent)
                parent = parent.rsplit("/", 1)[0]
            for missing in reversed(chain):
                ops.append(MultiOp(_CREATE, r.CreateRequest(missing, b"", OPEN_ACL, _PERSISTENT)))
        return ops

    # -- leases -------------------------------------------------------------------------------

    def lease_grant(self, token, request: rpc_pb2.LeaseGrantRequest) -> None:
        ttl_s = max(request.TTL, MIN_LEASE_TTL_S)
        if ttl_s > MAX_LEASE_TTL_S:
            self._complete(token, err(*LEASE_TTL_TOO_LARGE))
            return
        lease_id = request.ID
        if lease_id and (self.replica.sessions.get(lease_id) is not None
                         or self._marker(lease_id) in self.replica.tree.nodes):
            self._complete(token, err(*LEASE_EXISTS))
            return
        if lease_id < 0:
            self._complete(token, err(INVALID_ARGUMENT, "etcdserver: invalid lease ID"))
            return
        self._start_write(_Pending(token, "grant", request, ttl_s=ttl_s))

    def _submit_grant(self, pending: _Pending) -> None:
        sessions = self.replica.sessions
        lease_id = pending.request.ID
        if not lease_id:
            lease_id = sessions.next_session_id()
        pending.lease_id = lease_id
        timeout_ms = pending.ttl_s * 1000
        sessions.add(lease_id, timeout_ms, self.now_ms)
        self.lease_renewed_ms[lease_id] = self.now_ms
        self._submit(pending, lease_id, _CREATE_SESSION, timeout_ms)

    def _marker(self, lease_id: int) -> str:
        return f"{self.leases_root}/{lease_id & 0xFFFFFFFFFFFFFFFF:016x}"

    def _submit_marker(self, pending: _Pending) -> None:
        marker = self._marker(pending.lease_id)
        ops = self.parent_creates([marker])
        ops.append(MultiOp(_CREATE, r.CreateRequest(marker, str(pending.ttl_s).encode(),
                                                    OPEN_ACL, _EPHEMERAL)))
        pending.kind = "grant-marker"
        pending.attempts += 1
        self._submit(pending, pending.lease_id, _MULTI, ops)

    def is_lease(self, lease_id: int) -> bool:
        return lease_id != 0 and self._marker(lease_id) in self.replica.tree.nodes

    def lease_revoke(self, token, request: rpc_pb2.LeaseRevokeRequest) -> None:
        if not self.is_lease(request.ID):
            self._complete(token, err(*LEASE_NOT_FOUND))
            return
        self._start_write(_Pending(token, "revoke", request, lease_id=request.ID))

    def _submit_revoke(self, pending: _Pending) -> None:
        self.replica.sessions.set_closing(pending.lease_id)
        self._submit(pending, pending.lease_id, _CLOSE_SESSION, None)

    def lease_keep_alive(self, lease_id: int, now_ms: int) -> rpc_pb2.LeaseKeepAliveResponse:
        """A keep-alive is answered at once: the session's deadline moves here (and, on a
        follower, on the leader with the next ping), as a ZooKeeper client's ping does."""
        session = self.replica.sessions.get(lease_id)
        if not self.is_lease(lease_id) or session is None or session.closing:
            return rpc_pb2.LeaseKeepAliveResponse(header=self.header(), ID=lease_id, TTL=0)
        self._touch(lease_id, now_ms)
        self.lease_renewed_ms[lease_id] = now_ms
        return rpc_pb2.LeaseKeepAliveResponse(header=self.header(), ID=lease_id,
                                              TTL=session.timeout_ms // 1000)

    def _touch(self, session_id: int, now_ms: int) -> None:
        self.replica.sessions.touch(session_id, now_ms)
        if self.replica.role == FOLLOWER:
            self.replica.touched.add(session_id)

    def lease_time_to_live(self, request: rpc_pb2.LeaseTimeToLiveRequest,
                           now_ms: int) -> rpc_pb2.LeaseTimeToLiveResponse:
        lease_id = request.ID
        session = self.replica.sessions.get(lease_id)
        if not self.is_lease(lease_id) or session is None:
            return rpc_pb2.LeaseTimeToLiveResponse(header=self.header(), ID=lease_id, TTL=-1)
        granted = session.timeout_ms // 1000
        renewed_ms = self.lease_renewed_ms.get(lease_id)
        if renewed_ms is None:  # kept alive through other members only: the session's deadline
            remaining_ms = max(0, session.expires_at_ms - now_ms - self.replica.settings.tick_ms)
        else:
            remaining_ms = max(0, session.timeout_ms - (now_ms - renewed_ms))
        response = rpc_pb2.LeaseTimeToLiveResponse(
            header=self.header(), ID=lease_id, grantedTTL=granted,
            TTL=min(granted, remaining_ms // 1000))
        if request.keys:
            response.keys.extend(sorted(self.lease_keys(lease_id)))
        return response

    def lease_keys(self, lease_id: int) -> list[bytes]:
        prefix = self.kv_root + "/"
        keys = []
        for path in self.replica.tree.ephemerals.get(lease_id, ()):
            if path.startswith(prefix):
                key = key_of(path[len(prefix):])
                if key is not None:
                    keys.append(key)
        return keys

    def leases(self) -> rpc_pb2.LeaseLeasesResponse:
        node = self.replica.tree.nodes.get(self.leases_root)
        ids = sorted(int(name, 16) for name in ((node.children or ()) if node else ()))
        return rpc_pb2.LeaseLeasesResponse(
            header=self.header(),
            leases=[rpc_pb2.LeaseStatus(ID=signed(i)) for i in ids])

    # -- the front end's own session ----------------------------------------------------------

    def _open_session(self) -> None:
        if self.session_id or self.replica.role not in (LEADER, FOLLOWER, STANDALONE):
            return
        sessions = self.replica.sessions
        self.session_id = sessions.next_session_id()
        sessions.add(self.session_id, FRONTEND_SESSION_TIMEOUT_MS, self.now_ms)
        xid = self._next_xid()
        self.pending[(self.session_id, xid)] = _Pending(None, "session", None)
        self.replica.submit(Request(self.session_id, xid, _CREATE_SESSION,
                                    FRONTEND_SESSION_TIMEOUT_MS, frontend=ETCD), self.now_ms)
        log.info("opening the etcd front end's session",
                 session=hex(self.session_id & 0xFFFFFFFFFFFFFFFF))

    def _publish_member(self) -> None:
        """This member's client URLs, as an ephemeral of the front end's session: MemberList
        on any member shows where each live member serves etcd."""
        path = f"{self.members_root}/{self.settings.member_id:x}"
        ops = self.parent_creates([path])
        if path in self.replica.tree.nodes:
            ops.append(MultiOp(_DELETE, r.DeleteRequest(path, -1)))
        ops.append(MultiOp(_CREATE, r.CreateRequest(path, "\n".join(self.settings.client_urls).encode(),
                                                    OPEN_ACL, _EPHEMERAL)))
        self._submit(_Pending(None, "member", None), self.session_id, _MULTI, ops)

    def member_urls(self, member_id: int) -> list[str]:
        node = self.replica.tree.nodes.get(f"{self.members_root}/{member_id:x}")
        return node.data.decode().split("\n") if node is not None and node.data else []

    def _session_created(self) -> None:
        self._session_ready = True
        self._publish_member()
        waiting, self.waiting_for_session = self.waiting_for_session, []
        for pending in waiting:
            self._dispatch(pending)
        if self.barrier_waiting and self.barrier_in_flight is None:
            self._send_barrier()

    def tick(self, now_ms: int) -> None:
        """Keep the front end's session alive, and open it once the member serves; tell idle
        progress-notify watches the revision."""
        self.now_ms = now_ms
        if self.watchers:
            self._notify_progress(now_ms)
        if self.session_id and self._session_ready:
            session = self.replica.sessions.get(self.session_id)
            if session is None or session.closing:
                self._session_lost()
            else:
                self._touch(self.session_id, now_ms)
        if not self.session_id and (self.waiting_for_session or self.barrier_waiting):
            self._open_session()

    def _session_lost(self) -> None:
        log.info("the etcd front end's session ended; opening another",
                 session=hex(self.session_id & 0xFFFFFFFFFFFFFFFF))
        self.session_id = 0
        self._session_ready = False
        self._open_session()

    # -- auth -----------------------------------------------------------------------------------

    def auth(self) -> auth_rules.AuthState:
        """The users, roles and the enabled flag as the tree holds them (parsed again only
        when an auth change, which always sets ``<root>/auth``, has been applied)."""
        tree = self.replica.tree
        node = tree.nodes.get(self.auth_root)
        key = (id(tree), node.version if node is not None else -1,
               node.cversion if node is not None else -1)
        if self._auth_cache[0] != key:
            self._auth_cache = (key, self._load_auth(node))
        return self._auth_cache[1]

    def _load_auth(self, node) -> auth_rules.AuthState:
        if node is None:
            return auth_rules.EMPTY
        nodes = self.replica.tree.nodes
        users, roles = {}, {}
        for name, target, parse in (("users", users, auth_rules.parse_user),
                                    ("roles", roles, None)):
            parent = nodes.get(f"{self.auth_root}/{name}")
            for child in ((parent.children or ()) if parent is not None else ()):
                raw = key_of(child)
                if raw is None:
                    continue
                data = nodes[f"{self.auth_root}/{name}/{child}"].data or b""
                text = raw.decode(errors="replace")
                value = parse(text, data) if parse else auth_rules.parse_role(data)
                if value is not None:
                    target[text] = value
        enabled = nodes.get(f"{self.auth_root}/enabled")
        return auth_rules.AuthState(enabled is not None and enabled.data == b"1", node.version,
                                    users, roles)

    def user_of_token(self, token: str | None):
        """(user, None) for a request's token, or (None, EtcdError) when auth is on and the
        token is missing or unknown; (None, None) when auth is off."""
        if not self.auth().enabled:
            return None, None
        if not token:
            return None, err(*auth_rules.USER_EMPTY)
        user = self.tokens.user_of(token, self.now_ms)
        if user is None or user not in self.auth().users:
            return None, err(*auth_rules.INVALID_TOKEN)
        return user, None

    def permitted(self, user: str | None, key: bytes, range_end: bytes, write: bool) -> bool:
        return user is None or auth_rules.permitted(self.auth(), user, key, range_end, write)

    def txn_permitted(self, user: str | None, request: rpc_pb2.TxnRequest) -> bool:
        """etcd's check of a txn: read on every compare, and every op of both branches."""
        if user is None:
            return True
        for compare in request.compare:
            if not self.permitted(user, compare.key, compare.range_end, False):
                return False
        for op in list(request.success) + list(request.failure):
            which = op.WhichOneof("request")
            if which == "request_range":
                ok = self.permitted(user, op.request_range.key, op.request_range.range_end, False)
            elif which == "request_put":
                ok = self.permitted(user, op.request_put.key, b"", True)
            elif which == "request_delete_range":
                ok = self.permitted(user, op.request_delete_range.key,
                                    op.request_delete_range.range_end, True)
            else:
                ok = self.txn_permitted(user, op.request_txn)
            if not ok:
                return False
        return True

    def authenticate(self, request: rpc_pb2.AuthenticateRequest):
        state = self.auth()
        if not state.enabled:
            return err(*auth_rules.AUTH_NOT_ENABLED)
        user = state.users.get(request.name)
        if user is None or user.no_password or \
                not auth_rules.password_matches(user.password, request.password):
            return err(*auth_rules.AUTH_FAILED)
        return rpc_pb2.AuthenticateResponse(header=self.header(),
                                            token=self.tokens.issue(request.name, self.now_ms))

    def auth_read(self, op: str, request):
        """The auth RPCs that change nothing: AuthStatus, UserGet/List, RoleGet/List."""
        state = self.auth()
        if op == "AuthStatus":
            return rpc_pb2.AuthStatusResponse(header=self.header(), enabled=state.enabled,
                                              authRevision=state.revision)
        if op == "UserList":
            return rpc_pb2.AuthUserListResponse(header=self.header(), users=sorted(state.users))
        if op == "RoleList":
            return rpc_pb2.AuthRoleListResponse(header=self.header(), roles=sorted(state.roles))
        if op == "UserGet":
            user = state.users.get(request.name)
            if user is None:
                return err(*auth_rules.USER_NOT_FOUND)
            return rpc_pb2.AuthUserGetResponse(header=self.header(), roles=sorted(user.roles))
        role = state.roles.get(request.role)
        if role is None:
            return err(*auth_rules.ROLE_NOT_FOUND)
        return rpc_pb2.AuthRoleGetResponse(header=self.header(), perm=[
            auth_pb2.Permission(permType=p.type, key=p.key, range_end=p.range_end) for p in role])

    def auth_change(self, token, op: str, request) -> None:
        """An auth RPC that changes users, roles or the enabled flag: one multi, guarded by
        the version of ``<root>/auth`` (so concurrent changes are applied one after the
        other, each planned on the state the one before left)."""
        self._start_write(_Pending(token, "auth", (op, request)))

    def _submit_auth(self, pending: _Pending) -> None:
        op, request = pending.request
        try:
            ops, response = self._plan_auth(op, request)
        except EtcdError as error:
            self._complete(pending.token, error)
            return
        pending.plan = response
        pending.attempts += 1
        self._submit(pending, self.session_id, _MULTI, ops)

    def _retry_auth(self, pending: _Pending, code: int) -> None:
        if code in _STALE and pending.attempts < MAX_PLAN_ATTEMPTS:
            self._submit_auth(pending)
            return
        self._complete(pending.token, err(UNAVAILABLE, f"zkpy: auth change refused ({code})"))

    def _plan_auth(self, op: str, request):
        state = self.auth()
        changes, response = auth_plans.plan(op, request, state)
        return self._auth_ops(changes), response

    def _auth_ops(self, changes) -> list:
        """The multi for ``changes`` [(kind, name, data or None)]: the auth znodes created as
        needed, then ``<root>/auth`` set at the version the plan saw, then each change."""
        nodes = self.replica.tree.nodes
        ops = [MultiOp(_CREATE, r.CreateRequest(path, b"", OPEN_ACL, _PERSISTENT))
               for path in self._missing_parents(self.root)]
        root_node = nodes.get(self.auth_root)
        if root_node is None:
            ops.append(MultiOp(_CREATE, r.CreateRequest(self.auth_root, b"", self.auth_acl,
                                                        _PERSISTENT)))
            ops.append(MultiOp(_SET_DATA, r.SetDataRequest(self.auth_root, b"", 0)))
        else:
            ops.append(MultiOp(_SET_DATA, r.SetDataRequest(self.auth_root, b"",
                                                           root_node.version)))
        for folder in ("users", "roles"):
            path = f"{self.auth_root}/{folder}"
            if path not in nodes:
                ops.append(MultiOp(_CREATE, r.CreateRequest(path, b"", self.auth_acl,
                                                            _PERSISTENT)))
        for kind, name, data in changes:
            path = (f"{self.auth_root}/enabled" if kind == "enabled"
                    else f"{self.auth_root}/{kind}/{znode_name(name.encode())}")
            exists = path in nodes
            if data is None:
                if exists:
                    ops.append(MultiOp(_DELETE, r.DeleteRequest(path, -1)))
            elif exists:
                ops.append(MultiOp(_SET_DATA, r.SetDataRequest(path, data, -1)))
            else:
                ops.append(MultiOp(_CREATE, r.CreateRequest(path, data, self.auth_acl,
                                                            _PERSISTENT)))
        return ops

    def _missing_parents(self, path: str) -> list:
        nodes = self.replica.tree.nodes
        chain = []
        while path and path not in nodes:
            chain.append(path)
            path = path.rsplit("/", 1)[0]
        return list(reversed(chain))

    # -- the change feed ----------------------------------------------------------------------

    def applied(self, hdr: r.TxnHeader, txn, result: TxnResult, now_ms: int) -> None:
        """Fold the txn's changes to the keyspace into the index, tell the watchers, then
        complete this front end's request if the txn is one."""
        self._fresh()
        self.now_ms = now_ms
        zxid = hdr.zxid
        before = self.index.revision
        if hdr.type == _CLOSE_SESSION:
            self.lease_renewed_ms.pop(hdr.client_id, None)
        # Only a change to the keyspace moves etcd's revision: a lease grant or a ZooKeeper
        # client's write elsewhere in the tree does not, as neither would in etcd.
        events = self._index_changes(result.changes, zxid) if result.changes else ()
        if events and hdr.type == _CLOSE_SESSION:
            events.sort(key=lambda event: event.key)  # etcd revokes a lease's keys in key order
        if events:
            self._notify(events, zxid)
        pending = self.pending.pop((hdr.client_id, hdr.cxid), None)
        if pending is not None:
            self._finish(pending, hdr, result, before)

    def _index_changes(self, changes, zxid: int) -> list[Event]:
        prefix = self.kv_root + "/"
        nodes = self.replica.tree.nodes
        index = self.index
        events = []
        seen = set()
        for _event_type, path, _acl in changes:
            if path == self.compact_path:
                self._compacted_to(nodes.get(path))
                continue
            if not path.startswith(prefix) or path in seen:
                continue
            seen.add(path)
            key = key_of(path[len(prefix):])
            if key is None:
                continue
            node = nodes.get(path)
            event = (index.put(self._kv_of(key, node)) if node is not None
                     else index.delete(key, zxid))
            if event is not None:
                events.append(event)
        return events

    def _compacted_to(self, node) -> None:
        if node is None:
            return
        try:
            revision = int(node.data)
        except ValueError:
            return
        self.index.compact(min(revision, self.index.revision))

    def _finish(self, pending: _Pending, hdr: r.TxnHeader, result: TxnResult,
                before: int) -> None:
        code = txn_error(result)
        kind = pending.kind
        if kind == "session":
            if code:
                log.warning("the etcd front end's session was refused", code=code)
                self.session_id = 0
                return
            self._session_created()
            return
        if kind == "auth":
            if code:
                self._retry_auth(pending, code)
                return
            response = pending.plan
            response.header.CopyFrom(self.header())
            if pending.request[0] in ("UserDelete", "AuthDisable"):
                self.tokens.clear() if pending.request[0] == "AuthDisable" else \
                    self.tokens.forget_user(pending.request[1].name)
            self._complete(pending.token, response)
            return
        if kind == "member":
            if code:
                log.info("could not publish this member's etcd URLs", code=code)
            return
        if kind == "grant":
            if code:
                self._complete(pending.token, err(*LEASE_EXISTS))
                return
            self._submit_marker(pending)
            return
        if kind == "grant-marker":
            if code in _STALE and pending.attempts < MAX_PLAN_ATTEMPTS:
                self._submit_marker(pending)  # another grant created <root>/leases first
                return
            if code:
                self._complete(pending.token, err(*LEASE_NOT_FOUND))
                return
            self._complete(pending.token, rpc_pb2.LeaseGrantResponse(
                header=self.header(hdr.zxid), ID=signed(pending.lease_id), TTL=pending.ttl_s))
            return
        if kind == "revoke":
            self._complete(pending.token, rpc_pb2.LeaseRevokeResponse(header=self.header(hdr.zxid)))
            return
        if code:
            self._retry(pending, code)
            return
        if kind == "compact":
            self._complete(pending.token, rpc_pb2.CompactionResponse(header=self.header(hdr.zxid)))
            return
        self._complete(pending.token,
                       unwrap(self._txn_response(pending.plan, hdr.zxid, before), kind))

    def _retry(self, pending: _Pending, code: int) -> None:
        if code == int(Err.SESSIONEXPIRED) and pending.plan is not None \
                and pending.plan.session_id != self.session_id:
            self._complete(pending.token, err(*LEASE_NOT_FOUND))
            return
        if code == int(Err.SESSIONEXPIRED):
            self.waiting_for_session.append(pending)
            self._session_lost()
            return
        if code not in _STALE or pending.attempts >= MAX_PLAN_ATTEMPTS:
            log.warning("etcd write refused", code=code, attempts=pending.attempts,
                        session=hex(self.session_id & 0xFFFFFFFFFFFFFFFF))
            self._complete(pending.token, err(UNAVAILABLE, f"zkpy: write refused ({code})"))
            return
        self._dispatch(pending)

    def batch_applied(self, now_ms: int) -> None:
        compacted = self.index.bound(self.settings.max_history_versions)
        if compacted is not None:
            log.info("etcd history over its bound; compacted on this member",
                     revision=compacted, versions=self.index.version_count,
                     bound=self.settings.max_history_versions)

    def not_passed_on(self, request: Request, now_ms: int) -> None:
        pending = self.pending.pop((request.session_id, request.xid), None)
        if pending is None:
            return
        if pending.kind == "barrier":
            released, self.barrier_in_flight = self.barrier_in_flight or [], None
            for waiting in released:
                self._complete(waiting.token, err(*NO_LEADER))
            return
        self._complete(pending.token, err(*NO_LEADER))

    def session_closed(self, session_id: int) -> None:
        pass

    def role_changed(self, role: str, now_ms: int) -> None:
        """The member changed role: what waited on the old pipeline fails (its client
        retries), as etcd fails requests across a leader change."""
        for pending in list(self.pending.values()) + self.waiting_for_session \
                + self.barrier_waiting + (self.barrier_in_flight or []):
            self._complete(pending.token, err(*LEADER_CHANGED))
        self.pending.clear()
        self.waiting_for_session = []
        self.barrier_waiting = []
        self.barrier_in_flight = None
        self._session_ready = bool(self.session_id) and \
            self.replica.sessions.get(self.session_id) is not None
        if not self._session_ready:
            self.session_id = 0

    # -- watches ------------------------------------------------------------------------------

    def watch(self, stream_id, request: rpc_pb2.WatchCreateRequest, watch_id: int) -> None:
        """Create a watch; its history (from start_revision) follows the created response."""
        self._fresh()
        filters = set(request.filters)
        current = self.index.revision
        start = request.start_revision or current + 1
        watcher = Watcher(stream_id, watch_id, request.key, request.range_end, request.prev_kv,
                          rpc_pb2.WatchCreateRequest.NOPUT in filters,
                          rpc_pb2.WatchCreateRequest.NODELETE in filters, start,
                          request.progress_notify, self.now_ms, request.fragment)
        self.watch_out.append((stream_id, rpc_pb2.WatchResponse(
            header=self.header(), watch_id=watch_id, created=True)))
        if start <= self.index.compact_revision:
            self._cancel_compacted(watcher)
            return
        self.watchers[(stream_id, watch_id)] = watcher
        if start <= current:
            history = [e for e in self.index.events_since(start, request.key, request.range_end)
                       if watcher.wants(e)]
            self._send_events(watcher, history, current)
        watcher.next_revision = current + 1

    def _cancel_compacted(self, watcher: Watcher) -> None:
        self.watchers.pop((watcher.stream_id, watcher.watch_id), None)
        self.watch_out.append((watcher.stream_id, rpc_pb2.WatchResponse(
            header=self.header(), watch_id=watcher.watch_id, canceled=True,
            compact_revision=self.index.compact_revision)))

    def cancel_watch(self, stream_id, watch_id: int) -> bool:
        if self.watchers.pop((stream_id, watch_id), None) is None:
            return False
        self.watch_out.append((stream_id, rpc_pb2.WatchResponse(
            header=self.header(), watch_id=watch_id, canceled=True)))
        return True

    def drop_stream(self, stream_id) -> None:
        for key in [k for k in self.watchers if k[0] == stream_id]:
            del self.watchers[key]

    def progress(self, stream_id) -> None:
        """A progress request: the revision every watch of the stream has caught up to."""
        self.watch_out.append((stream_id, rpc_pb2.WatchResponse(header=self.header(),
                                                                watch_id=-1)))

    def _notify(self, events: list[Event], revision: int) -> None:
        # One txn's events become protobuf messages once (with and without prev_kv), however
        # many watchers they go to.
        encoded: dict[tuple[int, bool], kv_pb2.Event] = {}
        header = self.header(revision)
        for watcher in self.watchers.values():
            wanted = [e for e in events if watcher.wants(e)]
            if wanted:
                self._send_events(watcher, wanted, revision, encoded, header)
            watcher.next_revision = revision + 1

    def _send_events(self, watcher: Watcher, events: list[Event], revision: int,
                     encoded: dict | None = None, header=None) -> None:
        if not events:
            return
        watcher.last_sent_ms = self.now_ms
        response = rpc_pb2.WatchResponse(header=header or self.header(revision),
                                         watch_id=watcher.watch_id)
        with_prev = watcher.prev_kv
        for event in events:
            cache_key = (id(event), with_prev)
            pb = encoded.get(cache_key) if encoded is not None else None
            if pb is None:
                pb = pb_event(event, with_prev)
                if encoded is not None:
                    encoded[cache_key] = pb
            response.events.append(pb)
        if watcher.fragment and response.ByteSize() > self.settings.max_request_bytes:
            self._send_fragments(watcher, response)
            return
        self.watch_out.append((watcher.stream_id, response))

    def _send_fragments(self, watcher: Watcher, whole: rpc_pb2.WatchResponse) -> None:
        """A revision's events split over responses of at most max_request_bytes, every one
        but the last marked ``fragment`` (the client joins them), as etcd does when asked."""
        limit = self.settings.max_request_bytes
        pieces, current, size = [], [], 0
        for event in whole.events:
            event_size = event.ByteSize()
            if current and size + event_size > limit:
                pieces.append(current)
                current, size = [], 0
            current.append(event)
            size += event_size
        pieces.append(current)
        for i, events in enumerate(pieces):
            response = rpc_pb2.WatchResponse(header=whole.header, watch_id=whole.watch_id,
                                             fragment=i < len(pieces) - 1)
            response.events.extend(events)
            self.watch_out.append((watcher.stream_id, response))

    def _notify_progress(self, now_ms: int) -> None:
        interval = self.settings.progress_notify_interval_ms
        for watcher in self.watchers.values():
            if watcher.progress_notify and now_ms - watcher.last_sent_ms >= interval:
                watcher.last_sent_ms = now_ms
                self.watch_out.append((watcher.stream_id, rpc_pb2.WatchResponse(
                    header=self.header(), watch_id=watcher.watch_id)))


