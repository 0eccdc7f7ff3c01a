"""zkpy's own on-disk records, declared like the wire records (jute's declaration style)."""

from jute import records as wire
from jute.codegen import make_record
from jute.primitives import Buffer, Int, Long, UString, Vector, record_struct as S

SnapshotNode = make_record("SnapshotNode", S(
    "path" / UString, "data" / Buffer, "acl" / Vector(wire.ACL.construct),
    "stat" / wire.StatPersisted.construct,
))
SnapshotSession = make_record("SnapshotSession", S("session_id" / Long, "timeout_ms" / Int))
