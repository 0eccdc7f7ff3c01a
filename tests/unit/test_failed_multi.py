"""A failed multi as a ZooKeeper 3.8 leader writes it: the sub-txns before the failure stay as
prepared (a create, a setData), then the error, then RUNTIMEINCONSISTENCY errors
(PrepRequestProcessor), and its DataTree applies none of them (DataTree.processTxn turns every
sub-txn that is not an error into one). A zkpy follower of a Java leader applies such txns,
and so does a tree replaying a Java member's log: the tree must not change."""

from __future__ import annotations

from jute import Err, OpCode
from jute import records as r
from zkpy.tree.datatree import OPEN_ACL, DataTree
from zkpy.tree.digest import tree_digest
from zkpy.tree.txncodec import encode_txn

RUNTIME = int(Err.RUNTIMEINCONSISTENCY)


def _tree() -> DataTree:
    tree = DataTree()
    tree.apply(r.TxnHeader(1, 1, 2, 100, int(OpCode.create)),
               r.CreateTxn("/base", b"v1", list(OPEN_ACL), False, -1))
    return tree


def _java_failed_multi(zxid: int) -> tuple[r.TxnHeader, r.MultiTxn]:
    subs = [r.Txn(int(OpCode.create), r.CreateTxn.encode(("/b", b"B", list(OPEN_ACL), False, 2))),
            r.Txn(int(OpCode.setData), r.SetDataTxn.encode(("/base", b"v2", 1))),
            r.Txn(int(OpCode.error), r.ErrorTxn.encode((int(Err.NONODE),))),
            r.Txn(int(OpCode.error), r.ErrorTxn.encode((RUNTIME,)))]
    return r.TxnHeader(1, 2, zxid, 200, int(OpCode.multi)), r.MultiTxn(subs)


def _view(tree: DataTree) -> dict:
    return {path: (node.data, node.stat()) for path, node in tree.nodes.items()}


def test_a_java_leaders_failed_multi_changes_nothing_and_reports_each_op():
    tree = _tree()
    before = _view(tree)
    tree.keep_digest()
    hdr, txn = _java_failed_multi(3)
    result = tree.apply(hdr, txn)
    assert _view(tree) == before
    assert tree.digest == tree_digest(tree)
    assert [sub.err for sub in result.sub_results] == [0, 0, int(Err.NONODE), RUNTIME]
    assert not result.changes  # no watch fires
    assert tree.last_zxid == 3


def test_replaying_a_java_failed_multi_changes_nothing():
    for replay in ("decoded", "encoded"):
        tree = _tree()
        before = _view(tree)
        hdr, txn = _java_failed_multi(3)
        if replay == "decoded":
            tree.apply_replayed(hdr, txn)
        else:
            assert tree.replay_encoded(encode_txn(hdr, txn))
        assert _view(tree) == before, replay
        assert tree.last_zxid == 3
