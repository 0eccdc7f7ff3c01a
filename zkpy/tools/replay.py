"""Replaying ZooKeeper's transaction log over a fuzzy snapshot, as ZooKeeper does at start-up.

A ZooKeeper snapshot is fuzzy: it is written while the tree keeps changing, so it may already
hold effects of txns logged after its zxid. ZooKeeper replays every txn with a larger zxid
and ignores the failures that this overlap causes (DataTree.processTxn and
FileTxnSnapLog.processTransaction, 3.8):

* a create of an existing node fails with NODEEXISTS; for a plain ``create`` (also inside a
  multi) the parent's cversion/pzxid are still raised to the txn's (setCversionPzxid);
* a create whose parent is missing, a setData/setACL of a missing node fail with NONODE;
* a delete of a missing node still removes the name from its parent and raises the
  parent's pzxid, then fails with NONODE;
* closeSession deletes the paths its txn lists and then whatever the session still owns;
* a multi whose sub-txns include an error applies nothing; otherwise each sub-txn is applied
  on its own, failures included, with no rollback.

``ToleratingReplay`` applies txns that way to a zkpy ``DataTree`` and keeps the session table
(createSession adds, closeSession removes).
"""

from __future__ import annotations

from jute import Err, OpCode
from jute.opcodes import TXN_RECORDS
from zkpy.tree import paths
from zkpy.tree.datatree import DataTree
from zkpy.tree.ephemeral import CONTAINER_OWNER, ttl_owner

_CREATES = frozenset((OpCode.create, OpCode.create2, OpCode.createTTL, OpCode.createContainer))


class ToleratingReplay:
    def __init__(self, tree: DataTree, sessions: dict[int, int]) -> None:
        self.tree = tree
        self.sessions = sessions
        self.failures = 0  # txns (or sub-txns) that failed as ZooKeeper's replay lets them

    def apply(self, hdr, txn) -> None:
        kind = hdr.type
        zxid = hdr.zxid
        if kind == OpCode.createSession:
            self.sessions[hdr.client_id] = txn.timeout_ms
        elif kind == OpCode.closeSession:
            self.sessions.pop(hdr.client_id, None)
            self._close_session(hdr.client_id, zxid, txn)
        elif kind == OpCode.multi:
            subs = [(sub.type, TXN_RECORDS[sub.type].decode(sub.data)) for sub in txn.txns]
            if not any(sub_type == OpCode.error for sub_type, _ in subs):
                for sub_type, record in subs:
                    self._count(self._apply_one(hdr.client_id, sub_type, record, zxid, hdr.time_ms))
        elif kind not in (OpCode.error, OpCode.check):
            self._count(self._apply_one(hdr.client_id, kind, txn, zxid, hdr.time_ms))
        if zxid > self.tree.last_zxid:
            self.tree.last_zxid = zxid

    def _count(self, err: int) -> None:
        if err:
            self.failures += 1

    def _apply_one(self, session_id: int, kind: int, txn, zxid: int, time_ms: int) -> int:
        nodes = self.tree.nodes
        if kind in _CREATES:
            path = txn.path
            parent_path = paths.parent_of(path)
            parent = nodes.get(parent_path)
            if parent is None:
                return Err.NONODE
            if path in nodes:
                if kind == OpCode.create:
                    self._set_cversion_pzxid(parent, txn.parent_cversion, zxid)
                return Err.NODEEXISTS
            if kind == OpCode.createContainer:
                owner = CONTAINER_OWNER
            elif kind == OpCode.createTTL:
                owner = ttl_owner(txn.ttl_ms)
            else:
                owner = session_id if txn.ephemeral else 0
            self.tree.create_node(path, txn.data, txn.acl, owner, txn.parent_cversion, zxid,
                                  time_ms, kind)
            return Err.OK
        if kind in (OpCode.delete, OpCode.deleteContainer):
            return self._delete(txn.path, zxid)
        if kind in (OpCode.setData, OpCode.reconfig):
            node = nodes.get(txn.path)
            if node is None:
                return Err.NONODE
            node.data = txn.data
            node.version = txn.version
            node.mzxid = zxid
            node.mtime = time_ms
            return Err.OK
        if kind == OpCode.setACL:
            node = nodes.get(txn.path)
            if node is None:
                return Err.NONODE
            node.acl = self.tree.intern_acl(txn.acl)
            node.aversion = txn.version
            return Err.OK
        if kind in (OpCode.check, OpCode.error):
            return Err.OK
        raise ValueError(f"cannot replay txn type {kind} at zxid {zxid:#x}")

    @staticmethod
    def _set_cversion_pzxid(node, cversion: int, zxid: int) -> None:
        if cversion == -1:
            cversion = node.cversion + 1
        if cversion > node.cversion:
            node.cversion = cversion
            node.pzxid = zxid

    def _delete(self, path: str, zxid: int) -> int:
        nodes = self.tree.nodes
        parent = nodes.get(paths.parent_of(path))
        if parent is None:
            return Err.NONODE
        if path not in nodes:
            if parent.children:
                parent.children.discard(paths.name_of(path))
            if zxid > parent.pzxid:
                parent.pzxid = zxid
            return Err.NONODE
        self.tree.delete_node(path, zxid)
        return Err.OK

    def _close_session(self, session_id: int, zxid: int, txn) -> None:
        owned = set(self.tree.ephemerals.get(session_id, ()))
        listed = list(txn.paths_to_delete or ()) if txn is not None else []
        for path in listed:
            self._count(self._delete(path, zxid))
            owned.discard(path)
        for path in sorted(owned, reverse=True):
            self._count(self._delete(path, zxid))
