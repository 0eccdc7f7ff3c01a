"""zkpy's own on-disk records, declared like the wire records (jute's declaration style)."""

from jute import records as wire
from jute.codegen import make_record
from jute.primitives import Buffer, Int, Long, UString, Vector, record_struct as S

SnapshotNode = make_record("SnapshotNode", S(
    "path" / UString, "data" / Buffer, "acl" / Vector(wire.ACL.construct),
    "stat" / wire.StatPersisted.construct,
))
SnapshotSession = make_record("SnapshotSession", S("session_id" / Long, "timeout_ms" / Int))


def encode_node(path: str, node) -> bytes:
    """One znode as a snapshot record (the stored cversion is the count of child creations)."""
    return SnapshotNode.encode((path, node.data, list(node.acl), (
        node.czxid, node.mzxid, node.ctime, node.mtime, node.version, node.cversion,
        node.aversion, node.ephemeral_owner, node.pzxid)))


def node_from_record(record):
    """The znode a snapshot record describes, for DataTree.load_node."""
    from zkpy.tree.datatree import Node

    stat = record.stat
    return Node(record.data, record.acl, stat.czxid, stat.mzxid, stat.ctime, stat.mtime,
                stat.version, stat.cversion, stat.aversion, stat.ephemeral_owner, stat.pzxid)
