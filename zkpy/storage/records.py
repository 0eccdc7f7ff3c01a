"""zkpy's own on-disk records, declared like the wire records (jute's declaration style), and
the SNAP payload a leader sends a learner (the tree and sessions as those records)."""

from jute import records as wire
from jute.codegen import make_record
from jute.primitives import Buffer, Int, Long, UString, Vector, record_struct as S
from zkpy.tree.datatree import DataTree, Node

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
    stat = record.stat
    return Node(record.data, record.acl, stat.czxid, stat.mzxid, stat.ctime, stat.mtime,
                stat.version, stat.cversion, stat.aversion, stat.ephemeral_owner, stat.pzxid)


def encode_snapshot(tree: DataTree, sessions) -> bytes:
    """The tree (parents first) and the sessions, as Jute records: the SNAP payload."""
    parts = [len(sessions).to_bytes(4, "big")]
    parts.extend(SnapshotSession.encode(s) for s in sessions)
    parts.extend(encode_node(path, node) for path, node in tree.iter_nodes())
    return b"".join(parts)


def decode_snapshot(payload: bytes, zxid: int) -> tuple[DataTree, list]:
    count = int.from_bytes(payload[:4], "big")
    offset = 4
    sessions = []
    for _ in range(count):
        session, offset = SnapshotSession.decode_from(payload, offset)
        sessions.append(session)
    tree = DataTree()
    tree.clear()
    while offset < len(payload):
        record, offset = SnapshotNode.decode_from(payload, offset)
        tree.load_node(record.path, node_from_record(record))
    tree.last_zxid = zxid
    return tree, sessions
