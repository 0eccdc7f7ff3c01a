"""zkpy's digest functions against a running reference ZooKeeper 3.8.

* The tree digest: a varied workload (data, binary and large data, a non-ASCII path, ephemeral,
  sequential, container, TTL, setData, setACL, deletes, a closed session's ephemerals, a reaped
  container, committed and failed multis, changes to the root) runs on the reference; every
  node is then read back with kazoo (data, Stat, ACL), rebuilt as a zkpy DataTree, and its
  ``tree_digest`` must equal the digest ZooKeeper reports for that zxid with the ``hash``
  four-letter word. ZooKeeper keeps a "zxid: digest" line only for zxids that are multiples of
  128 (DataTree.logZxidDigest, DIGEST_LOG_INTERVAL), so each checkpoint pads with setData up to
  the next such zxid and checks that no txn came after it while the tree was read.
* Session passwords: ``java_session_password(session_id)`` is the password the reference hands
  out (ZooKeeperServer.generatePasswd).
"""

from __future__ import annotations

import re

from kazoo.security import ACL as KazooACL
from kazoo.security import Id as KazooId
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from jute import records as r
from jute.constants import CreateMode
from tests.support.servers import four_letter_word
from zkpy.sessions.tracker import java_session_password
from zkpy.tree import paths
from zkpy.tree.datatree import DataTree, Node
from zkpy.tree.digest import node_digest, tree_digest
from zkpy.tree.ephemeral import CONTAINER_OWNER, ttl_owner

HASH_LINE = re.compile(r"^([0-9a-f]+):\s*(-?\d+)$")
DIGEST_LOG_INTERVAL = 128
TTL_MS = 3_600_000  # far beyond the test: the container manager must not reap it


def reference_digests(server) -> dict[int, int]:
    """The ``hash`` word's "zxid: digest" lines (zxid in hex, digest a signed decimal long)."""
    digests = {}
    for line in four_letter_word(server.port, "hash").splitlines():
        match = HASH_LINE.match(line.strip())
        assert match, f"unexpected hash line {line!r}"
        digests[int(match.group(1), 16)] = int(match.group(2))
    return digests


def last_zxid(server) -> int:
    match = re.search(r"^Zxid: 0x([0-9a-f]+)$", four_letter_word(server.port, "srvr"), re.M)
    assert match
    return int(match.group(1), 16)


def pad_to_digest_boundary(zk) -> int:
    """setData on /pad until the last txn's zxid is a multiple of 128; returns that zxid."""
    if zk.exists("/pad") is None:
        zk.create("/pad", b"")
    zxid = zk.set("/pad", b"p").mzxid
    while zxid % DIGEST_LOG_INTERVAL:
        zxid = zk.set("/pad", b"p%d" % (zxid % DIGEST_LOG_INTERVAL)).mzxid
    return zxid


def read_tree(zk, special_owners: dict[str, int]) -> DataTree:
    """Every node of the server, parents first, as a zkpy DataTree.

    The persisted Stat is recovered from what a client sees: cversion is stored as the number
    of child creations (clients see ``2 * stored - numChildren``), and containers and TTL nodes
    show ephemeralOwner 0 where the tree holds their marker (``special_owners``)."""
    tree = DataTree()
    tree.clear()
    stack = ["/"]
    seen = {}
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        acls, _ = zk.get_acls(path)
        children = zk.get_children(path)
        assert stat.numChildren == len(children), path
        assert (stat.cversion + stat.numChildren) % 2 == 0, path
        stored_cversion = (stat.cversion + stat.numChildren) // 2
        owner = stat.ephemeralOwner
        if path in special_owners:
            assert owner == 0, path
            owner = special_owners[path]
        acl = tuple(r.ACL(a.perms, r.Id(a.id.scheme, a.id.id)) for a in acls)
        node = Node(data, acl, stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.version,
                    stored_cversion, stat.aversion, owner, stat.pzxid)
        tree.load_node(path, node)
        seen[path] = r.Stat(stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.version,
                            stat.cversion, stat.aversion, stat.ephemeralOwner, stat.dataLength,
                            stat.numChildren, stat.pzxid)
        stack.extend(paths.join(path, name) for name in children)
    # The rebuilt nodes show clients exactly the Stat the reference showed.
    assert {path: node.stat() for path, node in tree.nodes.items()} == seen
    return tree


def check_digest(server, zk, special_owners) -> int:
    zxid = pad_to_digest_boundary(zk)
    tree = read_tree(zk, special_owners)
    assert last_zxid(server) == zxid, "a txn ran while the tree was read"
    digests = reference_digests(server)
    assert zxid in digests, (hex(zxid), digests)
    assert max(digests) == zxid
    assert tree_digest(tree) == digests[zxid], hex(zxid)
    # The sum is over every node but /zookeeper/...; each node counts once.
    assert tree_digest(tree) == sum(node_digest(p, n) for p, n in tree.nodes.items()
                                    if not p.startswith("/zookeeper/"))
    return zxid


def test_tree_digest_matches_reference(server_factory, kazoo_factory, raw_factory, wait_until):
    server = server_factory("zookeeper")
    zk = kazoo_factory(server)
    zk.add_auth("digest", "alice:secret")
    special: dict[str, int] = {}

    # Round 1: creates of every kind, data changes, ACLs, deletes, multis.
    zk.create("/app", b"config-v1")
    zk.create("/app/child", b"c")
    zk.create("/app/child/grand", bytes(range(256)) * 4)
    zk.create("/app/big", b"x" * 50_000)
    zk.create("/\u00fcn\u00ef-\u20ac", "\u00e9t\u00e9".encode())
    zk.set("/app", b"config-v2")
    zk.set("/app/child", b"")
    zk.create("/app/eph", b"e", ephemeral=True)
    sequential = [zk.create("/app/q-", b"%d" % i, sequence=True) for i in range(3)]
    zk.create("/app/eseq-", b"", ephemeral=True, sequence=True)
    zk.delete(sequential[1])
    zk.set_acls("/app/child", [make_digest_acl("alice", "secret", all=True)])
    zk.set_acls("/app/big", [KazooACL(1, KazooId("world", "anyone"))])
    zk.set("/", b"root-data")

    raw = raw_factory(server)
    assert raw.create_container("/app/box").ok
    special["/app/box"] = CONTAINER_OWNER
    assert raw.create("/app/box/item", b"i").ok
    assert raw.create_container("/app/emptybox", b"never used").ok
    special["/app/emptybox"] = CONTAINER_OWNER
    assert raw.create_ttl("/app/ttl", b"t", ttl_ms=TTL_MS).ok
    special["/app/ttl"] = ttl_owner(TTL_MS)
    assert raw.create_ttl("/app/ttlseq-", b"", ttl_ms=TTL_MS,
                          flags=CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL).ok
    special.update({paths.join("/app", name): ttl_owner(TTL_MS)
                    for name in zk.get_children("/app") if name.startswith("ttlseq-")})
    assert raw.create("/app/raw-eph", b"r", flags=CreateMode.EPHEMERAL).ok
    assert raw.delete("/app/box/item").ok  # the container is now empty: the reaper deletes it
    raw.close_session()  # deletes /app/raw-eph
    wait_until(lambda: zk.exists("/app/box") is None, message="container not reaped")
    assert zk.exists("/app/raw-eph") is None

    txn = zk.transaction()
    txn.create("/app/tx1", b"1")
    txn.set_data("/app", b"in-a-multi")
    txn.check("/app/child", 1)
    txn.delete(sequential[0])
    assert not any(isinstance(result, Exception) for result in txn.commit())
    failed = zk.transaction()
    failed.create("/app/tx2", b"2")
    failed.delete("/no/such/node")
    assert any(isinstance(result, Exception) for result in failed.commit())
    assert zk.exists("/app/tx2") is None

    first = check_digest(server, zk, special)

    # Round 2: removals, the root's ACL, a TTL node's data, a container used and reaped.
    zk.delete("/app/child", recursive=True)
    zk.delete("/\u00fcn\u00ef-\u20ac")
    zk.set_acls("/", OPEN_ACL_UNSAFE, version=0)
    zk.set("/app/ttl", b"t2")
    zk.create("/app/emptybox/x", b"")
    zk.delete("/app/emptybox/x")
    wait_until(lambda: zk.exists("/app/emptybox") is None, message="container not reaped")
    del special["/app/emptybox"]
    zk.create("/app/tx1/deep", b"d")
    zk.set("/app/tx1", b"changed")

    second = check_digest(server, zk, special)
    assert second > first


def test_session_password_matches_reference(server_factory, kazoo_factory, raw_factory):
    server = server_factory("zookeeper")
    zk = kazoo_factory(server)
    session_id, password = zk.client_id
    assert password == java_session_password(session_id)
    for _ in range(3):
        raw = raw_factory(server)
        assert raw.passwd == java_session_password(raw.session_id)
