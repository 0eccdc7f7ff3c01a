"""ZooKeeper 3.8's DataTree digest and session passwords, against values taken from the
reference implementation (Debian's ZooKeeper 3.8.0 on OpenJDK 17: DigestCalculator's
calculateDigest called by reflection, ``new DataTree()`` driven through createNode / setData /
setACL / deleteNode, and ``new java.util.Random(id ^ 0xB3415C00).nextBytes(new byte[16])``)."""

from __future__ import annotations

import pytest

from jute import OpCode
from jute import records as r
from zkpy.sessions.tracker import java_session_password
from zkpy.tree.datatree import OPEN_ACL, READ_ACL, DataTree, Node
from zkpy.tree.digest import (DIGEST_VERSION, add_digest, node_digest, remove_digest,
                              stat_digest, to_java_long, tree_digest)

LONG_MIN = -(1 << 63)
INT_MIN = -(1 << 31)
INT_MAX = (1 << 31) - 1


def _node(data, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid) -> Node:
    return Node(data, OPEN_ACL, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
                pzxid)


# (path, node, DigestCalculator.calculateDigest as the reference computed it)
NODE_CASES = [
    ("/", _node(b"", 0, 0, 0, 0, 0, 0, 0, 0, 0), 68323592),
    ("/zookeeper", _node(b"", 0, 0, 0, 0, 0, 0, 0, 0, 0), 1303661912),
    ("/zookeeper/quota", _node(b"", 0, 0, 0, 0, 0, 0, 0, 0, 0), 0),
    ("/zookeeperx", _node(b"", 0, 0, 0, 0, 0, 0, 0, 0, 0), 1323802418),
    ("/a", _node(b"hello", 2, 5, 1700000000000, 1700000001234, 3, 1, 2, 0, 7), 43774921),
    ("/e-0000000001", _node(None, 0x100000002, 0x100000002, -5, -5, -1, INT_MIN, INT_MAX,
                            0x0100018B2C3D0000, 0x100000002), 2543898615),
    ("/c", _node(bytes([0, 1, 2, 255]), 9, 9, 10, 10, 0, 4, 0, LONG_MIN, 12), 1852352628),
    ("/t", _node(b"", 9, 9, 10, 10, 0, 0, 0, 0xFF00000000003A98 - (1 << 64), 9), 2988464785),
    ("/\u00fc\u00f1\u00ee", _node("\u20ac".encode(), 1, 1, 1, 1, 1, 1, 1, 1, 1), 416122712),
]


def test_digest_version_is_zookeeper_38s():
    assert DIGEST_VERSION == 2


@pytest.mark.parametrize("path,node,expected", NODE_CASES, ids=[c[0] for c in NODE_CASES])
def test_node_digest_matches_reference(path, node, expected):
    assert node_digest(path, node) == expected


def test_root_is_hashed_as_the_empty_path():
    zero = (b"", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert stat_digest("/", *zero) == stat_digest("", *zero) == 68323592


def test_unsigned_ttl_owner_gives_the_same_digest():
    signed = _node(b"", 9, 9, 10, 10, 0, 0, 0, 0xFF00000000003A98 - (1 << 64), 9)
    unsigned = _node(b"", 9, 9, 10, 10, 0, 0, 0, 0xFF00000000003A98, 9)
    assert node_digest("/t", signed) == node_digest("/t", unsigned)


def test_fresh_tree_digest_matches_reference():
    # new DataTree().getTreeDigest(): the root and /zookeeper; quota and config are excluded.
    assert tree_digest(DataTree()) == 1371985504


def test_java_long_wrapping():
    assert to_java_long((1 << 63)) == LONG_MIN
    assert add_digest((1 << 63) - 1, 1) == LONG_MIN
    assert remove_digest(LONG_MIN, 1) == (1 << 63) - 1


def _hdr(zxid, time_ms, txn_type, session_id=0):
    return r.TxnHeader(session_id, 1, zxid, time_ms, int(txn_type))


def test_tree_digest_follows_reference_datatree_through_changes():
    """The same changes applied to ZooKeeper's DataTree and to zkpy's: the digest after each."""
    tree = DataTree()
    steps = [
        # createNode("/a", "hello", OPEN, 0, -1, 2, 1000)
        (_hdr(2, 1000, OpCode.create), r.CreateTxn("/a", b"hello", list(OPEN_ACL), False, -1),
         4407361576),
        # createNode("/a/b", "x", OPEN, ephemeral owner 0x100, -1, 3, 2000)
        (_hdr(3, 2000, OpCode.create, 0x100), r.CreateTxn("/a/b", b"x", list(OPEN_ACL), True, -1),
         5301047424),
        # setData("/a", "world", 1, 4, 3000)
        (_hdr(4, 3000, OpCode.setData), r.SetDataTxn("/a", b"world", 1), 5687484036),
        # setACL("/a", READ_ACL_UNSAFE, 1): aversion counts, the ACL does not
        (_hdr(5, 3000, OpCode.setACL), r.SetACLTxn("/a", list(READ_ACL), 1), 5306526279),
        # createNode("/c", null, OPEN, Long.MIN_VALUE (container), -1, 5, 4000)
        (_hdr(5, 4000, OpCode.createContainer), r.CreateContainerTxn("/c", b"", list(OPEN_ACL), -1),
         8861753902),
        # deleteNode("/a/b", 6): the parent's pzxid moves, its cversion does not
        (_hdr(6, 4500, OpCode.delete), r.DeleteTxn("/a/b"), 5015539420),
        # setData("/", "root", 1, 7, 5000)
        (_hdr(7, 5000, OpCode.setData), r.SetDataTxn("/", b"root", 1), 5210837421),
        # createNode("/ttl", "t", OPEN, 0xFF00000000003A98 (TTL 15000 ms), -1, 8, 6000)
        (_hdr(8, 6000, OpCode.createTTL), r.CreateTTLTxn("/ttl", b"t", list(OPEN_ACL), -1, 15000),
         6831992171),
        # createNode("/zookeeper/quota/q", ...): excluded, and so is its parent
        (_hdr(9, 7000, OpCode.create),
         r.CreateTxn("/zookeeper/quota/q", b"q", list(OPEN_ACL), False, -1), 6831992171),
        # createNode("/a/s0000000005", "", OPEN, 0, parentCVersion 5, 10, 8000)
        (_hdr(10, 8000, OpCode.create),
         r.CreateTxn("/a/s0000000005", b"", list(OPEN_ACL), False, 5), 9417298229),
    ]
    kept = DataTree()  # the same changes on a tree that keeps its digest as it goes
    assert kept.keep_digest() == tree_digest(kept)
    for hdr, txn, expected in steps:
        tree.apply(hdr, txn)
        kept.apply(hdr, txn)
        assert tree_digest(tree) == expected, (hdr, txn)
        assert kept.digest == expected, (hdr, txn)
    # deleteNode("/a/s0000000005", 11); deleteNode("/c", 12)
    for t in (tree, kept):
        t.apply(_hdr(11, 9000, OpCode.delete), r.DeleteTxn("/a/s0000000005"))
        t.apply(_hdr(12, 9000, OpCode.delete), r.DeleteTxn("/c"))
    assert tree_digest(tree) == 7922134542 == kept.digest


@pytest.mark.parametrize("seed", range(5))
def test_a_kept_digest_equals_the_digest_of_the_whole_tree(seed):
    """Random creates (ephemeral too), setData, setACL, deletes, multis, closed sessions and
    replayed txns on a tree keeping its digest: after each the kept value is the full sum."""
    import random
    from zkpy.tree.txncodec import encode_txn
    rng = random.Random(seed)
    tree = DataTree()
    tree.keep_digest()
    zxid = 1
    live = ["/"]
    for step in range(400):
        zxid += 1
        choice = rng.random()
        parent = rng.choice(live)
        name = ("" if parent == "/" else parent) + f"/n{step}"
        session = rng.choice([0, 0x10, 0x20])
        if choice < 0.4 or len(live) < 3:
            hdr = _hdr(zxid, zxid * 10, OpCode.create, session)
            txn = r.CreateTxn(name, bytes([step % 256]) * rng.randint(0, 40), list(OPEN_ACL),
                              session != 0, -1)
            tree.apply(hdr, txn)
            if session == 0:
                live.append(name)
        elif choice < 0.6:
            path = rng.choice(live)
            tree.apply(_hdr(zxid, zxid * 10, OpCode.setData),
                       r.SetDataTxn(path, b"v%d" % step, tree.nodes[path].version + 1))
        elif choice < 0.7:
            path = rng.choice(live)
            tree.apply(_hdr(zxid, zxid * 10, OpCode.setACL),
                       r.SetACLTxn(path, list(READ_ACL), tree.nodes[path].aversion + 1))
        elif choice < 0.8:
            leaves = [p for p in live if p != "/" and not tree.nodes[p].children]
            if leaves:
                path = rng.choice(leaves)
                tree.apply(_hdr(zxid, zxid * 10, OpCode.delete), r.DeleteTxn(path))
                live.remove(path)
        elif choice < 0.9:
            subs = [r.Txn(int(OpCode.create), r.CreateTxn.encode(
                        (name, b"m", list(OPEN_ACL), False, -1))),
                    r.Txn(int(OpCode.setData), r.SetDataTxn.encode((name, b"m2", 1)))]
            tree.apply(_hdr(zxid, zxid * 10, OpCode.multi), r.MultiTxn(subs))
            live.append(name)
        elif choice < 0.95:
            tree.apply(_hdr(zxid, zxid * 10, OpCode.closeSession, rng.choice([0x10, 0x20])),
                       r.CloseSessionTxn([]))
        else:
            hdr = _hdr(zxid, zxid * 10, OpCode.setData)
            path = rng.choice(live)
            txn = r.SetDataTxn(path, b"replayed", tree.nodes[path].version + 1)
            assert tree.replay_encoded(encode_txn(hdr, txn))
        assert tree.digest == tree_digest(tree), f"seed {seed}, step {step}"


@pytest.mark.parametrize("session_id,password_hex", [
    (0, "f22acd4a97e69d6d20a49bb638eadb38"),
    (1, "054cc74a37327db215e702e20c73f005"),
    (-1, "20f62cb5648dc2d771471c8a2486a9ee"),
    (72058979688382464, "6ecb1bc963a39753fc4ea0f5e4512a8a"),
    ((1 << 63) - 1, "20f62cb5648dc2d771471c8a2486a9ee"),
    (LONG_MIN, "f22acd4a97e69d6d20a49bb638eadb38"),
    (0xB3415C00, "60b420bb3851d9d47acb933dbe70399b"),
    (0x1000BC3C2DD0000, "f95cefa6927d9391ff6e36852ba59caa"),
])
def test_java_session_password_matches_reference(session_id, password_hex):
    assert java_session_password(session_id) == bytes.fromhex(password_hex)
