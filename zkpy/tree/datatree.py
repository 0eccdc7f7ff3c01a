"""The data tree: znodes, their Stat, and how each transaction changes them.

Ordering and durability duties: ``apply`` must be called with transactions in zxid order, each
exactly once, and only after the transaction is durable in the log (the pipeline guarantees
this). Applying is deterministic: every value it writes comes from the transaction (zxid, time,
versions, parent cversion settled by prep), so every replica that applies the same log holds the
same tree. The tree knows nothing of watches: each apply returns the changes it made as
``(event_type, path)`` pairs and the caller decides whom to notify.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from jute import Err, EventType, OpCode, Perms
from jute import records as r
from zkpy.tree import paths
from zkpy.tree.digest import node_digest, to_java_long, tree_digest
from zkpy.tree.txncodec import (decode_set_data_txn, decode_sub_txn, split_logged_txn,
                                split_multi_txn)
from zkpy.tree.ephemeral import CONTAINER_OWNER, is_session_owner, ttl_of, ttl_owner

OPEN_ACL = (r.ACL(int(Perms.ALL), r.Id("world", "anyone")),)
READ_ACL = (r.ACL(int(Perms.READ), r.Id("world", "anyone")),)

NODE_CREATED = int(EventType.NodeCreated)
NODE_DELETED = int(EventType.NodeDeleted)
NODE_DATA_CHANGED = int(EventType.NodeDataChanged)
NODE_CHILDREN_CHANGED = int(EventType.NodeChildrenChanged)


class Node:
    """One znode. ``children`` is None until the node has had a child (saves a set per leaf)."""

    __slots__ = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "cversion",
                 "aversion", "ephemeral_owner", "pzxid", "children")

    def __init__(self, data, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion,
                 ephemeral_owner, pzxid) -> None:
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.pzxid = pzxid
        self.children: set[str] | None = None

    def stat(self) -> r.Stat:
        data = self.data
        num_children = len(self.children) if self.children else 0
        owner = self.ephemeral_owner
        if owner < 0 and not is_session_owner(owner):
            owner = 0  # containers and TTL nodes show no owner (getClientEphemeralOwner)
        # ``cversion`` is stored as the number of child creations (it also numbers sequential
        # children); clients see creations plus deletions, 2 * creations - children, as
        # ZooKeeper's DataNode.copyStat reports it.
        return tuple.__new__(r.Stat, (
            self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
            2 * self.cversion - num_children, self.aversion, owner,
            len(data) if data else 0, num_children, self.pzxid))

    def num_children(self) -> int:
        return len(self.children) if self.children else 0


class TxnResult(NamedTuple):
    """What applying one (sub)transaction produced.

    ``type`` is the result type reported to the client (create2 for creates that return a
    Stat); ``path`` the node created or changed; ``stat`` its Stat afterwards, where the
    operation returns one; ``err`` non-zero for an error txn; ``changes`` the watch triggers
    as (event_type, path, acl), the ACL a watcher needs READ on to be told.
    """

    type: int
    err: int
    path: str | None
    stat: r.Stat | None
    changes: tuple
    sub_results: tuple = ()


def _owner_of(txn_type: int, txn, session_id: int) -> int:
    """The ephemeral_owner a create gives its node (0: persistent)."""
    if txn_type == _CREATE_CONTAINER:
        return CONTAINER_OWNER
    if txn_type == _CREATE_TTL:
        return ttl_owner(txn.ttl_ms)
    return session_id if txn.ephemeral else 0


def _failed_multi(sub_types) -> bool:
    """A multi with an error among its sub-txns' types failed as a whole. zkpy's prep writes
    every sub-txn of a failed multi as an error; ZooKeeper's keeps the ones before the failure
    as they were prepared (a create, a setData) and its DataTree applies none of them."""
    return _ERROR in sub_types


def _as_failed(subs) -> list:
    """The sub-txns of a failed multi as ZooKeeper's DataTree turns them before applying:
    every one that is not an error becomes ErrorTxn(OK) before the first error and
    ErrorTxn(RUNTIMEINCONSISTENCY) after it, so the results match the failure."""
    failed = []
    after_failure = False
    for sub in subs:
        if sub.type == _ERROR:
            after_failure = True
            failed.append(sub)
        else:
            code = int(Err.RUNTIMEINCONSISTENCY) if after_failure else 0
            failed.append(r.Txn(_ERROR, r.ErrorTxn.encode((code,))))
    return failed


# Plain ints: reading an IntEnum member costs about 50 ns, on paths run per txn.
_ERROR = int(OpCode.error)
_MULTI = int(OpCode.multi)
_SET_DATA = int(OpCode.setData)
_CREATE = int(OpCode.create)
_CREATE2 = int(OpCode.create2)
_CREATE_CONTAINER = int(OpCode.createContainer)
_CREATE_TTL = int(OpCode.createTTL)


class DataTree:
    """All znodes by path, with the indexes that sessions and the reaper need.

    ``digest`` is ZooKeeper's tree digest (zkpy.tree.digest), kept incrementally once
    ``keep_digest`` has computed it (a follower that checks a Java leader's TxnDigests needs
    it after every txn), and None until then: a tree nobody checks pays nothing for it."""

    def __init__(self, acl_cache_limit: int = 1 << 20) -> None:
        self.digest: int | None = None
        self.nodes: dict[str, Node] = {}
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.last_zxid = 0
        self._acl_cache: dict[tuple, tuple] = {}
        self._acl_cache_limit = acl_cache_limit
        # The last list interned, by identity: a bulk load or its replay brings the same
        # list object (txncodec's memo) a million times, and hashing it costs more.
        self._last_acl_given: object = None
        self._last_acl_interned: tuple = ()
        self._install_system_nodes()

    # -- set-up ------------------------------------------------------------------------------

    def _install_system_nodes(self) -> None:
        # The values match a fresh ZooKeeper 3.8, quirks included (no child was ever created,
        # so root and /zookeeper report cversion -1 and -2; /zookeeper/config is read-only
        # with aversion -1).
        def system(acl, aversion=0):
            return Node(b"", self.intern_acl(acl), 0, 0, 0, 0, 0, 0, aversion, 0, 0)

        self.nodes["/"] = system(OPEN_ACL)
        self.nodes["/zookeeper"] = system(OPEN_ACL)
        self.nodes["/zookeeper/quota"] = system(OPEN_ACL)
        self.nodes["/zookeeper/config"] = system(READ_ACL, aversion=-1)
        self.nodes["/"].children = {"zookeeper"}
        self.nodes["/zookeeper"].children = {"quota", "config"}

    def intern_acl(self, acl) -> tuple:
        """Share one tuple per distinct ACL list: most nodes carry the same few."""
        if acl is self._last_acl_given:
            return self._last_acl_interned
        interned = self._intern_acl(acl)
        if type(acl) is tuple:  # immutable: the identity stays meaningful
            self._last_acl_given = acl
            self._last_acl_interned = interned
        return interned

    def _intern_acl(self, acl) -> tuple:
        key = tuple(acl)
        cached = self._acl_cache.get(key)
        if cached is not None:
            return cached
        if len(self._acl_cache) < self._acl_cache_limit:
            self._acl_cache[key] = key
        return key

    # -- reads -------------------------------------------------------------------------------

    def keep_digest(self) -> int:
        """The tree digest now; from here on every change keeps it up to date."""
        if self.digest is None:
            self.digest = tree_digest(self)
        return self.digest

    def _redigest(self, path: str, node: Node, before: int) -> None:
        """``node`` at ``path`` changed, its digest was ``before``: the tree's follows."""
        self.digest = to_java_long(self.digest - before + node_digest(path, node))

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def node_count(self) -> int:
        return len(self.nodes)

    def count_descendants(self, path: str) -> int:
        total = 0
        stack = [path]
        nodes = self.nodes
        while stack:
            current = stack.pop()
            children = nodes[current].children
            if children:
                total += len(children)
                stack.extend(paths.join(current, name) for name in children)
        return total

    def approximate_data_bytes(self) -> int:
        return sum(len(p) + (len(n.data) if n.data else 0) for p, n in self.nodes.items())

    # -- transactions --------------------------------------------------------------------------

    def apply(self, hdr: r.TxnHeader, txn) -> TxnResult:
        """Apply one transaction (see the class docstring for the ordering duty)."""
        handler = self._HANDLERS.get(hdr.type)
        if handler is None:
            raise ValueError(f"no handler for txn type {hdr.type}")
        result = handler(self, hdr.zxid, hdr.time_ms, hdr.client_id, hdr.type, txn)
        if hdr.zxid > self.last_zxid:
            self.last_zxid = hdr.zxid
        return result

    # Plain ints: membership tests of IntEnum members cost more per replayed txn.
    _CREATES = frozenset(map(int, (OpCode.create, OpCode.create2, OpCode.createContainer,
                                   OpCode.createTTL)))
    _ON_EXISTING = frozenset(map(int, (OpCode.delete, OpCode.deleteContainer, OpCode.setData,
                                       OpCode.setACL, OpCode.reconfig)))

    def apply_replayed(self, hdr: r.TxnHeader, txn) -> None:
        """Apply a txn read back from the log over a snapshot that may be fuzzy (taken while
        txns kept applying): a create whose node the snapshot already has, or a change to a
        node it no longer has, is skipped, as ZooKeeper's replay does. Every txn carries
        absolute values (versions, parent cversion), so what remains ends in the same tree.
        Nothing is reported (no results, no watch triggers): replay has nobody to tell."""
        zxid, time_ms, session_id = hdr.zxid, hdr.time_ms, hdr.client_id
        if hdr.type == _MULTI:
            if not _failed_multi(sub.type for sub in txn.txns):
                for sub in txn.txns:
                    self._replay_one(sub.type, zxid, time_ms, session_id,
                                     decode_sub_txn(sub.type, sub.data))
        else:
            self._replay_one(hdr.type, zxid, time_ms, session_id, txn)
        if zxid > self.last_zxid:
            self.last_zxid = zxid

    def replay_encoded(self, buf: bytes) -> bool:
        """``apply_replayed`` for a logged txn (TxnHeader and record bytes) that is a setData
        or a multi, most of a log, without building their generic records. Returns False,
        having applied nothing, for any other txn or a malformed one: the caller then decodes
        it and replays it the generic way (which also reports what is malformed)."""
        try:
            session_id, zxid, time_ms, txn_type, offset = split_logged_txn(buf)
        except struct.error:
            return False
        if txn_type == _SET_DATA:
            decoded = decode_set_data_txn(buf, offset)
            if decoded is None:
                return False
            path, data, version = decoded
            node = self.nodes.get(path)
            if node is not None:  # else deleted after a fuzzy snapshot encoded it: skipped
                self._set_data(path, node, data, version, zxid, time_ms)
        elif txn_type == _MULTI:
            subs = split_multi_txn(buf, offset)
            if subs is None:
                return False
            if _failed_multi(sub_type for sub_type, _ in subs):
                subs = []  # a failed multi (see _apply_multi) changes nothing
            # Every sub-txn is decoded before the first is applied, so a malformed one
            # raises with the tree untouched, as the generic path does.
            records = [decode_sub_txn(sub_type, data) for sub_type, data in subs]
            replay_one = self._replay_one
            for (sub_type, _), record in zip(subs, records):
                replay_one(sub_type, zxid, time_ms, session_id, record)
        else:
            return False
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        return True

    def _replay_one(self, txn_type, zxid, time_ms, session_id, txn) -> None:
        path = getattr(txn, "path", None)
        if txn_type in self._CREATES:
            if path in self.nodes or paths.parent_of(path) not in self.nodes:
                # The parent may have been encoded before this create while the child (deleted
                # and created again later) was encoded after: the parent still takes the txn's
                # cversion and pzxid, as ZooKeeper's replay does on NODEEXISTS.
                self._raise_parent_counters(path, getattr(txn, "parent_cversion", -1), zxid)
                return
            owner = _owner_of(txn_type, txn, session_id)
            self._insert_node(path, txn.data, txn.acl, owner, txn.parent_cversion, zxid, time_ms)
            return
        if txn_type in self._ON_EXISTING and path not in self.nodes:
            if txn_type in self._DELETES:
                # Deleted after its parent was encoded but before it was: the parent's pzxid
                # must still record the deletion.
                self._raise_parent_counters(path, -1, zxid)
            return
        if txn_type == _SET_DATA:  # the common replayed change: no result to build
            self._set_data(path, self.nodes[path], txn.data, txn.version, zxid, time_ms)
            return
        handler = self._HANDLERS.get(txn_type)
        if handler is None:
            raise ValueError(f"no handler for txn type {txn_type}")
        handler(self, zxid, time_ms, session_id, txn_type, txn)

    _DELETES = frozenset(map(int, (OpCode.delete, OpCode.deleteContainer)))

    def _raise_parent_counters(self, path: str, parent_cversion: int, zxid: int) -> None:
        """Fuzzy replay: counters only ever grow, so a skipped txn's values win when newer."""
        parent_path = paths.parent_of(path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            return
        before = 0 if self.digest is None else node_digest(parent_path, parent)
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        if self.digest is not None:
            self._redigest(parent_path, parent, before)

    def _apply_create(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        return self.create_node(txn.path, txn.data, txn.acl, _owner_of(txn_type, txn, session_id),
                                txn.parent_cversion, zxid, time_ms, txn_type)

    def create_node(self, path, data, acl, owner, parent_cversion, zxid, time_ms,
                    txn_type=_CREATE) -> TxnResult:
        node, parent, parent_path = self._insert_node(path, data, acl, owner, parent_cversion,
                                                      zxid, time_ms)
        # Inside a multi ZooKeeper reports create2 as a plain create, and createTTL and
        # createContainer as create2 (path and Stat); top-level replies follow the opcode.
        result_type = _CREATE if txn_type == _CREATE or txn_type == _CREATE2 else _CREATE2
        # A plain create answers with the path alone (in a multi too): no Stat to build.
        stat = None if txn_type == _CREATE else node.stat()
        return TxnResult(result_type, 0, path, stat,
                         ((NODE_CREATED, path, node.acl),
                          (NODE_CHILDREN_CHANGED, parent_path, parent.acl)))

    def _insert_node(self, path, data, acl, owner, parent_cversion, zxid, time_ms):
        """The tree changes of a create; returns (node, parent, parent path)."""
        cut = path.rfind("/")
        parent_path = path[:cut] if cut > 0 else "/"
        parent = self.nodes[parent_path]
        node = Node(data, self.intern_acl(acl), zxid, zxid, time_ms, time_ms, 0, 0, 0, owner, zxid)
        digest = self.digest
        if digest is not None:
            self.digest = to_java_long(digest + node_digest(path, node)
                                       - node_digest(parent_path, parent))
        if parent.children is None:
            parent.children = set()
        parent.children.add(path[cut + 1:])
        if parent_cversion == -1:
            parent_cversion = parent.cversion + 1
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        if digest is not None:
            self.digest = to_java_long(self.digest + node_digest(parent_path, parent))
        self.nodes[path] = node
        if owner:
            self.index_owner(path, owner)
        return node, parent, parent_path

    def index_owner(self, path: str, owner: int) -> None:
        """Index a node by its non-zero ephemeral_owner: a container, a TTL node or a
        session's ephemeral (created, or loaded from a snapshot)."""
        if owner == CONTAINER_OWNER:
            self.containers.add(path)
        elif ttl_of(owner):
            self.ttls.add(path)
        else:
            owned = self.ephemerals.get(owner)
            if owned is None:
                self.ephemerals[owner] = {path}
            else:
                owned.add(path)

    def _apply_delete(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        return self.delete_node(txn.path, zxid)

    def delete_node(self, path: str, zxid: int) -> TxnResult:
        node = self.nodes.pop(path)
        parent_path = paths.parent_of(path)
        parent = self.nodes[parent_path]
        parent.children.discard(paths.name_of(path))
        if self.digest is not None:
            before = node_digest(parent_path, parent) + node_digest(path, node)
            if zxid > parent.pzxid:
                parent.pzxid = zxid
            self._redigest(parent_path, parent, before)
        elif zxid > parent.pzxid:
            parent.pzxid = zxid
        owner = node.ephemeral_owner
        if owner == CONTAINER_OWNER:
            self.containers.discard(path)
        elif ttl_of(owner):
            self.ttls.discard(path)
        elif owner:
            owned = self.ephemerals.get(owner)
            if owned is not None:
                owned.discard(path)
                if not owned:
                    del self.ephemerals[owner]
        return TxnResult(OpCode.delete, 0, path, None,
                         ((NODE_DELETED, path, node.acl),
                          (NODE_CHILDREN_CHANGED, parent_path, parent.acl)))

    def _apply_set_data(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        node = self.nodes[txn.path]
        self._set_data(txn.path, node, txn.data, txn.version, zxid, time_ms)
        return TxnResult(OpCode.setData, 0, txn.path, node.stat(),
                         ((NODE_DATA_CHANGED, txn.path, node.acl),))

    def _set_data(self, path: str, node: Node, data, version: int, zxid: int,
                  time_ms: int) -> None:
        before = 0 if self.digest is None else node_digest(path, node)
        node.data = data
        node.version = version
        node.mzxid = zxid
        node.mtime = time_ms
        if self.digest is not None:
            self._redigest(path, node, before)

    def _apply_set_acl(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        node = self.nodes[txn.path]
        before = 0 if self.digest is None else node_digest(txn.path, node)
        node.acl = self.intern_acl(txn.acl)
        node.aversion = txn.version
        if self.digest is not None:
            self._redigest(txn.path, node, before)
        return TxnResult(OpCode.setACL, 0, txn.path, node.stat(), ())

    def _apply_check(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        return TxnResult(OpCode.check, 0, txn.path, None, ())

    def _apply_error(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        return TxnResult(OpCode.error, txn.err, None, None, ())

    def _apply_create_session(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        return TxnResult(OpCode.createSession, 0, None, None, ())

    def _apply_close_session(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        # Delete what the session owns now, in a fixed order so every replica agrees.
        changes = []
        doomed = set(txn.paths_to_delete or ()) | self.ephemerals.get(session_id, set())
        for path in sorted(doomed, reverse=True):
            if path not in self.nodes:
                continue
            changes.extend(self.delete_node(path, zxid).changes)
        return TxnResult(OpCode.closeSession, 0, None, None, tuple(changes))

    def _apply_multi(self, zxid, time_ms, session_id, txn_type, txn) -> TxnResult:
        results = []
        changes = []
        subs = txn.txns
        if _failed_multi(sub.type for sub in subs):
            subs = _as_failed(subs)
        for sub in subs:
            record = decode_sub_txn(sub.type, sub.data)
            handler = self._HANDLERS[sub.type]
            result = handler(self, zxid, time_ms, session_id, sub.type, record)
            results.append(result)
            changes.extend(result.changes)
        return TxnResult(OpCode.multi, 0, None, None, tuple(changes), tuple(results))

    _HANDLERS = {
        OpCode.create: _apply_create,
        OpCode.create2: _apply_create,
        OpCode.createContainer: _apply_create,
        OpCode.createTTL: _apply_create,
        OpCode.delete: _apply_delete,
        OpCode.deleteContainer: _apply_delete,
        OpCode.setData: _apply_set_data,
        OpCode.reconfig: _apply_set_data,
        OpCode.setACL: _apply_set_acl,
        OpCode.check: _apply_check,
        OpCode.error: _apply_error,
        OpCode.createSession: _apply_create_session,
        OpCode.closeSession: _apply_close_session,
        OpCode.multi: _apply_multi,
    }

    # -- snapshots -----------------------------------------------------------------------------

    def iter_nodes(self):
        """(path, node) pairs, parents before children (for snapshots)."""
        stack = ["/"]
        nodes = self.nodes
        while stack:
            path = stack.pop()
            node = nodes[path]
            yield path, node
            if node.children:
                stack.extend(paths.join(path, name) for name in node.children)

    def load_node(self, path: str, node: Node) -> None:
        """Insert a node read from a snapshot (parents first); indexes are rebuilt."""
        node.acl = self.intern_acl(node.acl)
        node.children = None
        self.nodes[path] = node
        if self.digest is not None:
            self.digest = to_java_long(self.digest + node_digest(path, node))
        if path != "/":
            parent = self.nodes[paths.parent_of(path)]
            if parent.children is None:
                parent.children = set()
            parent.children.add(paths.name_of(path))
        if node.ephemeral_owner:
            self.index_owner(path, node.ephemeral_owner)

    def clear(self) -> None:
        if self.digest is not None:
            self.digest = 0
        self.nodes.clear()
        self.ephemerals.clear()
        self.containers.clear()
        self.ttls.clear()
        self.last_zxid = 0
