"""Planning an etcd txn on the front end's view of the keyspace: the branch etcd's compares take,
and the ZooKeeper multi that writes it with a check on everything the plan relied on.

A ``MultiBuilder`` walks the txn as etcd would run it: compares first, then the taken
branch's ops in order, nested txns included. Each key it reads or writes is noted: an existing
one with the znode version it saw (a check op, or the versioned setData/delete that writes it),
a missing one as a path that must still be missing (a create and delete of that znode, unless
the plan creates it anyway). The multi is then valid only on the state the plan saw: if
anything it relied on changed before the leader's prep, the whole multi is refused and the
front end plans again. Reads are not answered here; the front end answers them from its MVCC
index once the multi is applied.
"""

from __future__ import annotations

from typing import NamedTuple

from jute import CreateMode, OpCode
from jute import records as r
from jute.opcodes import MultiOp

from zkpy.frontends.etcd.errors import (DUPLICATE_KEY, EMPTY_KEY, KEY_NOT_FOUND,
                                        LEASE_NOT_FOUND, MIXED_LEASES, TOO_MANY_OPS, err)
from zkpy.frontends.etcd.keys import in_range, znode_name
from zkpy.frontends.etcd.mvcc import KeyValue
from zkpy.frontends.etcd.proto import rpc_pb2
from zkpy.tree.datatree import OPEN_ACL

_CREATE = int(OpCode.create)
_DELETE = int(OpCode.delete)
_SET_DATA = int(OpCode.setData)
_CHECK = int(OpCode.check)
_PERSISTENT = int(CreateMode.PERSISTENT)
_EPHEMERAL = int(CreateMode.EPHEMERAL)


class Plan(NamedTuple):
    """A write txn planned on a view: the multi's ops, the session it runs in, and what the
    answer is built from once it is applied."""
    ops: list
    session_id: int
    succeeded: bool
    branch: list  # the RequestOps taken, with nested plans for nested txns



class MultiBuilder:
    """Plans one TxnRequest on the front end's view: the branch etcd's compares take, and
    the multi that writes it with a version check on everything the plan relied on."""

    def __init__(self, frontend) -> None:
        self.frontend = frontend
        self.index = frontend.index
        self.kv_root = frontend.kv_root
        self.ops: list = []
        self.checks: dict[str, int] = {}  # path -> the znode version the plan saw
        self.absent: set[str] = set()  # paths the plan saw missing and must still be
        self.written: set[bytes] = set()
        self.session_id = 0  # the lease session the multi must run in, if any
        self.changed: dict[bytes, KeyValue | None] = {}  # this txn's writes so far

    def path(self, key: bytes) -> str:
        return self.kv_root + "/" + znode_name(key)

    def current(self, key: bytes) -> KeyValue | None:
        if key in self.changed:
            return self.changed[key]
        return self.index.latest(key)

    def relied_on(self, key: bytes, kv: KeyValue | None) -> None:
        path = self.path(key)
        if kv is None:
            self.absent.add(path)
        else:
            self.checks.setdefault(path, kv.version - 1)

    def txn(self, request: rpc_pb2.TxnRequest):
        succeeded = all(self.compare(c) for c in request.compare)
        branch = []
        for op in (request.success if succeeded else request.failure):
            branch.append((op, self.op(op)))
        return succeeded, branch

    def compare(self, compare: rpc_pb2.Compare) -> bool:
        if compare.range_end:
            keys = list(self.index.keys_in(compare.key, compare.range_end))
            kvs = [(k, self.current(k)) for k in keys]
            for key, kv in kvs:
                self.relied_on(key, kv)
            return all(compare_holds(compare, kv) for _k, kv in kvs if kv is not None) \
                if any(kv is not None for _k, kv in kvs) else compare_holds(compare, None)
        kv = self.current(compare.key)
        self.relied_on(compare.key, kv)
        return compare_holds(compare, kv)

    def op(self, op: rpc_pb2.RequestOp):
        which = op.WhichOneof("request")
        if which == "request_put":
            self.put(op.request_put)
        elif which == "request_delete_range":
            self.delete(op.request_delete_range)
        elif which == "request_txn":
            succeeded, branch = self.txn(op.request_txn)
            return Plan([], 0, succeeded, branch)
        return None

    def put(self, put: rpc_pb2.PutRequest) -> None:
        key = put.key
        current = self.current(key)
        value, lease = put.value, put.lease
        if put.ignore_value or put.ignore_lease:
            if current is None:
                raise err(*KEY_NOT_FOUND)
            if put.ignore_value:
                value = current.value
            if put.ignore_lease:
                lease = current.lease
        if lease:
            if not self.frontend.is_lease(lease):
                raise err(*LEASE_NOT_FOUND)
            if self.session_id and self.session_id != lease:
                raise err(*MIXED_LEASES)
            self.session_id = lease
        path = self.path(key)
        self.relied_on(key, current)
        flags = _EPHEMERAL if lease else _PERSISTENT
        if current is None:
            self.ops.append(MultiOp(_CREATE, r.CreateRequest(path, value, OPEN_ACL, flags)))
            self.absent.discard(path)  # the create itself fails if the key appeared
        elif current.lease == lease:
            self.ops.append(MultiOp(_SET_DATA, r.SetDataRequest(path, value, current.version - 1)))
            self.checks.pop(path, None)  # the versioned setData checks it
        else:  # a lease moves only with a new znode (the owner is fixed at creation)
            self.ops.append(MultiOp(_DELETE, r.DeleteRequest(path, current.version - 1)))
            self.ops.append(MultiOp(_CREATE, r.CreateRequest(path, value, OPEN_ACL, flags)))
            self.checks.pop(path, None)
        self.changed[key] = KeyValue(key, 0, 0, (current.version + 1) if current else 1,
                                     value, lease)

    def delete(self, delete: rpc_pb2.DeleteRangeRequest) -> None:
        keys = list(self.index.keys_in(delete.key, delete.range_end))
        keys.extend(k for k in self.changed if k not in self.index.versions
                    and in_delete_range(k, delete))
        for key in keys:
            current = self.current(key)
            if current is None:
                continue
            path = self.path(key)
            if key in self.changed:
                self.ops.append(MultiOp(_DELETE, r.DeleteRequest(path, -1)))
            else:
                self.ops.append(MultiOp(_DELETE, r.DeleteRequest(path, current.version - 1)))
                self.checks.pop(path, None)
            self.changed[key] = None

    def finish(self) -> list:
        """The multi: missing parents, checks for what was read, then the writes."""
        if not self.ops:
            return []
        frontend = self.frontend
        ops = frontend.parent_creates([self.kv_root + "/x"])
        for path, version in sorted(self.checks.items()):
            ops.append(MultiOp(_CHECK, r.CheckVersionRequest(path, version)))
        for path in sorted(self.absent):
            # ZooKeeper has no "is absent" check: a create and delete of the same znode in
            # the multi fails if it exists, and leaves nothing behind if it does not.
            ops.append(MultiOp(_CREATE, r.CreateRequest(path, b"", OPEN_ACL, _PERSISTENT)))
            ops.append(MultiOp(_DELETE, r.DeleteRequest(path, -1)))
        ops.extend(self.ops)
        return ops


def in_delete_range(key: bytes, delete: rpc_pb2.DeleteRangeRequest) -> bool:
    return in_range(key, delete.key, delete.range_end)


def check_txn(request: rpc_pb2.TxnRequest, max_ops: int) -> None:
    """etcd's checks before a txn runs: size, empty keys, duplicate written keys per
    branch."""
    if len(request.compare) > max_ops or len(request.success) > max_ops \
            or len(request.failure) > max_ops:
        raise err(*TOO_MANY_OPS)
    for compare in request.compare:
        if not compare.key:
            raise err(*EMPTY_KEY)
    for branch in (request.success, request.failure):
        puts: set[bytes] = set()
        deletes = []
        for op in branch:
            which = op.WhichOneof("request")
            if which == "request_put":
                if not op.request_put.key:
                    raise err(*EMPTY_KEY)
                if op.request_put.key in puts:
                    raise err(*DUPLICATE_KEY)
                puts.add(op.request_put.key)
            elif which == "request_delete_range":
                if not op.request_delete_range.key:
                    raise err(*EMPTY_KEY)
                deletes.append(op.request_delete_range)
            elif which == "request_range":
                if not op.request_range.key:
                    raise err(*EMPTY_KEY)
            elif which == "request_txn":
                check_txn(op.request_txn, max_ops)
        for delete in deletes:
            if any(in_delete_range(key, delete) for key in puts):
                raise err(*DUPLICATE_KEY)


def compare_holds(compare: rpc_pb2.Compare, kv: KeyValue | None) -> bool:
    target = compare.target
    C = rpc_pb2.Compare
    if target == C.VALUE:
        if kv is None:
            return False  # etcd: a value compare on a missing key is false
        ours, theirs = kv.value, compare.value
    elif target == C.VERSION:
        ours, theirs = (kv.version if kv else 0), compare.version
    elif target == C.CREATE:
        ours, theirs = (kv.create_revision if kv else 0), compare.create_revision
    elif target == C.MOD:
        ours, theirs = (kv.mod_revision if kv else 0), compare.mod_revision
    else:
        ours, theirs = (kv.lease if kv else 0), compare.lease
    result = compare.result
    if result == C.EQUAL:
        return ours == theirs
    if result == C.NOT_EQUAL:
        return ours != theirs
    if result == C.GREATER:
        return ours > theirs
    return ours < theirs


def writes(op: rpc_pb2.RequestOp) -> bool:
    which = op.WhichOneof("request")
    return which in ("request_put", "request_delete_range", "request_txn")
