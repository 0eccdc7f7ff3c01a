"""ZooKeeper 3.8's data-tree digest (``zookeeper.digest.enabled``, on by default).

Pure functions, no state: the digest of one znode as ZooKeeper's DigestCalculator (digest
version 2) computes it, and the digest of a whole tree as DataTree.getTreeDigest reports it.

A node's digest is the CRC32 (an unsigned 32-bit value held in a Java long) of, in this order:

1. the path's bytes (UTF-8, Java's String.getBytes on a UTF-8 platform), with the root ``/``
   taken as the empty string;
2. the node's data, when it has any (null and empty data add nothing);
3. 60 bytes of the persisted Stat, big-endian (java.nio.ByteBuffer's default order):
   czxid, mzxid, pzxid, ctime, mtime (5 longs), version, cversion, aversion (3 ints),
   ephemeralOwner (long).

The Stat fields are the persisted ones, not what a client reads: ``cversion`` is the number of
child creations (zkpy's ``Node.cversion``; a client sees ``2 * cversion - numChildren``) and
``ephemeralOwner`` keeps the container (Long.MIN_VALUE) and TTL (0xFF top byte) markers that a
client sees as 0. ACLs and children are not part of a node's digest.

Paths starting with ``/zookeeper/`` (quota, config and everything below them) are left out
(digest 0); ``/zookeeper`` itself and the root are counted.

The tree digest (ZooKeeper's AdHash over NodeHashMapImpl) is the sum of the node digests of
all nodes, wrapping as a Java long. ZooKeeper keeps it incrementally: a node's digest is added
when it is put in the tree (create, snapshot load) and subtracted when it is removed (delete,
deleteContainer, ephemerals of a closed session); a node whose Stat or data changes has its old
digest subtracted before and its new one added after the change. The changes that do that are
setData on the node (data, mtime, mzxid, version), setACL on it (aversion; the ACL itself is not
hashed), a create under it (parent's cversion and pzxid, when the txn's cversion is higher) and
a delete under it (parent's pzxid, when the zxid is higher); as the sum is over current values,
``tree_digest`` of the tree after a txn equals ZooKeeper's incremental value after it. Errors,
checks, createSession and reconfig (``/zookeeper/config`` is excluded) leave it unchanged.
"""

from __future__ import annotations

import struct
import zlib

DIGEST_VERSION = 2

EXCLUDED_PREFIX = "/zookeeper/"

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
_STAT = struct.Struct(">QQQQQIIIQ")  # 5 longs, 3 ints, 1 long: 60 bytes


def to_java_long(value: int) -> int:
    """``value`` wrapped to a signed 64-bit integer, as Java long arithmetic leaves it."""
    value &= _MASK64
    return value - (1 << 64) if value >= (1 << 63) else value


def add_digest(total: int, digest: int) -> int:
    """AdHash.addDigest: ``total + digest`` with Java long overflow."""
    return to_java_long(total + digest)


def remove_digest(total: int, digest: int) -> int:
    """AdHash.removeDigest: ``total - digest`` with Java long overflow."""
    return to_java_long(total - digest)


def is_digested(path: str) -> bool:
    """False for the paths ZooKeeper leaves out of the digest (``/zookeeper/...``)."""
    return not path.startswith(EXCLUDED_PREFIX)


def stat_digest(path: str, data: bytes | None, czxid: int, mzxid: int, pzxid: int, ctime: int,
                mtime: int, version: int, cversion: int, aversion: int,
                ephemeral_owner: int) -> int:
    """The digest of a node given its persisted Stat fields (see the module docstring)."""
    if path.startswith(EXCLUDED_PREFIX):
        return 0
    if path == "/":
        path = ""
    crc = zlib.crc32(path.encode("utf-8"))
    if data:
        crc = zlib.crc32(data, crc)
    return zlib.crc32(_STAT.pack(
        czxid & _MASK64, mzxid & _MASK64, pzxid & _MASK64, ctime & _MASK64, mtime & _MASK64,
        version & _MASK32, cversion & _MASK32, aversion & _MASK32, ephemeral_owner & _MASK64),
        crc)


_SIGNED_STAT = struct.Struct(">qqqqqiiiq")  # the same bytes for in-range values, unmasked
_crc32 = zlib.crc32


def node_digest(path: str, node) -> int:
    """The digest of zkpy tree node ``node`` at ``path`` (0 for an excluded path). A tree
    that keeps its digest calls this twice per node changed, so it packs the Stat's signed
    fields as they are (a node's values are always in range) and falls back on
    ``stat_digest`` only for one that is not."""
    if path.startswith(EXCLUDED_PREFIX):
        return 0
    crc = 0 if path == "/" else _crc32(path.encode())  # the CRC32 of no bytes is 0
    data = node.data
    if data:
        crc = _crc32(data, crc)
    try:
        stat = _SIGNED_STAT.pack(node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime,
                                 node.version, node.cversion, node.aversion,
                                 node.ephemeral_owner)
    except struct.error:
        return stat_digest(path, node.data, node.czxid, node.mzxid, node.pzxid, node.ctime,
                           node.mtime, node.version, node.cversion, node.aversion,
                           node.ephemeral_owner)
    return _crc32(stat, crc)


def tree_digest(tree) -> int:
    """The digest of a whole zkpy DataTree, as ZooKeeper's getTreeDigest reports it for the
    same nodes: the sum of every node's digest, as a signed Java long."""
    total = 0
    for path, node in tree.nodes.items():
        if not path.startswith(EXCLUDED_PREFIX):
            total += node_digest(path, node)
    return to_java_long(total)
