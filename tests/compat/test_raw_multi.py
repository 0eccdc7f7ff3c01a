"""multi and multiRead over the raw protocol, per server kind (expectations: ZooKeeper 3.8.0).

A multi either applies every op or none. On failure the reply header's err is still 0 and
every op has an error result: ops before the failing one report 0 (OK), the failing op its
code, later ops RUNTIMEINCONSISTENCY (-2).
"""

from __future__ import annotations

from jute.constants import CreateMode, Err, OpCode
from jute.opcodes import encode_multi_request
from tests.support.rawclient import (
    CREATOR_ALL_ACL, op_check, op_create, op_create2, op_create_ttl, op_delete, op_get_children,
    op_get_data, op_set_data,
)

OK = Err.OK
ERROR = OpCode.error
RTI = Err.RUNTIMEINCONSISTENCY


def results(reply):
    return [(res.type, res.err) for res in reply.response]


def client(server_factory, server_kind, raw_factory):
    return raw_factory(server_factory(server_kind))


def test_multi_success_results(server_factory, server_kind, raw_factory):
    c = client(server_factory, server_kind, raw_factory)
    reply = c.multi([
        op_create("/m", b"root"),
        op_create("/m/a", b"1"),
        op_set_data("/m/a", b"2", version=0),
        op_check("/m/a", 1),
        op_delete("/m/a", version=1),
        op_create2("/m/b"),
        op_create("/m/s-", flags=CreateMode.PERSISTENT_SEQUENTIAL),
        op_create("/m/e-", flags=CreateMode.EPHEMERAL_SEQUENTIAL),
    ])
    assert reply.err == OK
    assert results(reply) == [(OpCode.create, 0), (OpCode.create, 0), (OpCode.setData, 0),
                              (OpCode.check, 0), (OpCode.delete, 0),
                              # create2 inside a multi reports a plain create result
                              (OpCode.create, 0), (OpCode.create, 0), (OpCode.create, 0)]
    res = reply.response
    assert res[0].response.path == "/m"
    assert res[1].response.path == "/m/a"
    stat = res[2].response.stat
    assert (stat.version, stat.data_length) == (1, 1)
    # One txn: every op of the multi has the same zxid, the reply's.
    assert stat.mzxid == stat.czxid == reply.zxid
    assert res[3].response is None and res[4].response is None
    assert res[5].response.path == "/m/b"
    # Sequence numbers see the creates and ignore the delete before them in the same multi.
    assert res[6].response.path == "/m/s-0000000002"
    assert res[7].response.path == "/m/e-0000000003"
    parent = c.exists("/m").response.stat
    assert parent.num_children == 3 and parent.pzxid == reply.zxid
    assert parent.cversion == 2 * 4 - 3
    assert c.exists("/m/e-0000000003").response.stat.ephemeral_owner == c.session_id
    assert c.get_data("/m/a").err == Err.NONODE


def test_multi_rollback_results(server_factory, server_kind, raw_factory):
    c = client(server_factory, server_kind, raw_factory)
    c.create("/m")
    before = c.exists("/m").response.stat
    reply = c.multi([op_create("/m/x"), op_set_data("/m", b"q"), op_check("/m", 5),
                     op_create("/m/y"), op_delete("/nonode")])
    assert reply.err == OK, "the reply header of a failed multi says OK"
    assert results(reply) == [(ERROR, 0), (ERROR, 0), (ERROR, Err.BADVERSION), (ERROR, RTI),
                              (ERROR, RTI)]
    assert [res.response.err for res in reply.response] == [0, 0, Err.BADVERSION, RTI, RTI]
    # Nothing was applied, though the failed multi used a zxid.
    assert c.exists("/m/x").err == Err.NONODE
    after = c.exists("/m")
    assert after.response.stat == before
    assert after.zxid == reply.zxid > before.mzxid

    reply = c.multi([op_delete("/nonode"), op_create("/m/z")])
    assert results(reply) == [(ERROR, Err.NONODE), (ERROR, RTI)]
    reply = c.multi([op_create("/m/q"), op_delete("/m", version=99)])
    assert results(reply) == [(ERROR, 0), (ERROR, Err.BADVERSION)]
    reply = c.multi([op_create("/m/ok1"), op_create("bad"), op_create("/m/ok2")])
    assert results(reply) == [(ERROR, 0), (ERROR, Err.BADARGUMENTS), (ERROR, RTI)]
    reply = c.multi([op_create("/m"), op_create("/m2")])
    assert results(reply) == [(ERROR, Err.NODEEXISTS), (ERROR, RTI)]
    reply = c.multi([op_create("/m/c"), op_create("/m/c")])
    assert results(reply) == [(ERROR, 0), (ERROR, Err.NODEEXISTS)], "ops see earlier ops"
    reply = c.multi([op_create("/m/c"), op_delete("/m")])
    assert results(reply) == [(ERROR, 0), (ERROR, Err.NOTEMPTY)]
    c.create("/m/eph", flags=CreateMode.EPHEMERAL)
    reply = c.multi([op_create("/m/eph/kid")])
    assert results(reply) == [(ERROR, Err.NOCHILDRENFOREPHEMERALS)]
    assert sorted(c.get_children("/m").response.children) == ["eph"]
    # Sequence numbers are not used up by a rolled-back multi.
    assert c.create("/m/s-", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path == \
        "/m/s-0000000001"


def test_multi_ops_see_each_other(server_factory, server_kind, raw_factory):
    c = client(server_factory, server_kind, raw_factory)
    reply = c.multi([op_create("/a"), op_create("/a/b"), op_set_data("/a/b", b"x"),
                     op_check("/a/b", 1), op_delete("/a/b"), op_delete("/a"),
                     op_create("/a", b"again")])
    assert reply.err == OK and all(res.err == 0 for res in reply.response)
    got = c.get_data("/a").response
    assert got.data == b"again" and got.stat.version == 0
    assert got.stat.czxid == reply.zxid


def test_empty_multi(server_factory, server_kind, raw_factory):
    c = client(server_factory, server_kind, raw_factory)
    first = c.create("/x")
    reply = c.multi([])
    assert (reply.err, reply.response) == (OK, [])
    assert reply.zxid == first.zxid + 1, "an empty multi still takes a zxid"
    reply = c.multi_read([])
    assert (reply.err, reply.response) == (OK, [])
    assert reply.zxid == first.zxid + 1


def test_multi_read(server_factory, server_kind, raw_factory):
    c = client(server_factory, server_kind, raw_factory)
    c.create("/r", b"data")
    c.create("/r/k")
    reply = c.multi_read([op_get_data("/r"), op_get_children("/r"), op_get_data("/nonode"),
                          op_get_children("/nonode"), op_get_data("/r/k")])
    assert reply.err == OK
    assert results(reply) == [(OpCode.getData, 0), (OpCode.getChildren, 0), (ERROR, Err.NONODE),
                              (ERROR, Err.NONODE), (OpCode.getData, 0)]
    res = reply.response
    assert res[0].response.data == b"data" and res[0].response.stat.num_children == 1
    assert res[1].response.children == ["k"]
    assert res[2].response.err == Err.NONODE
    assert res[4].response.data == b""


def test_mixed_read_and_write_ops_are_rejected(server_factory, server_kind, raw_factory):
    c = client(server_factory, server_kind, raw_factory)
    reply = c.call(OpCode.multi, encode_multi_request([op_create("/w"), op_get_data("/")]))
    assert (reply.err, reply.body) == (Err.MARSHALLINGERROR, b"")
    reply = c.call(OpCode.multiRead, encode_multi_request([op_get_data("/"), op_create("/w2")]))
    assert (reply.err, reply.body) == (Err.MARSHALLINGERROR, b"")
    assert c.exists("/w").err == Err.NONODE and c.exists("/w2").err == Err.NONODE
    assert c.exists("/").err == OK, "the connection stays open"


def test_multi_extended_creates(server_factory, server_kind, raw_factory):
    c = client(server_factory, server_kind, raw_factory)
    reply = c.multi([op_create_ttl("/ttl", ttl_ms=60000),
                     op_create("/cont", flags=CreateMode.CONTAINER, op=OpCode.createContainer),
                     op_create("/cont/kid")])
    assert reply.err == OK
    # createTTL and createContainer report create2 results (path and stat).
    assert results(reply) == [(OpCode.create2, 0), (OpCode.create2, 0), (OpCode.create, 0)]
    assert reply.response[0].response.path == "/ttl"
    assert reply.response[0].response.stat.czxid == reply.zxid
    assert reply.response[1].response.stat.ephemeral_owner == 0
    reply = c.multi([op_create("/ok"), op_create_ttl("/bad-ttl", ttl_ms=0)])
    assert results(reply) == [(ERROR, 0), (ERROR, Err.BADARGUMENTS)]


def test_multi_acl_failures(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    owner, other = raw_factory(server), raw_factory(server)
    owner.add_auth("digest", "owner:pw")
    owner.create("/locked", b"x", acl=CREATOR_ALL_ACL)
    reply = other.multi([op_create("/free"), op_set_data("/locked", b"y")])
    assert results(reply) == [(ERROR, 0), (ERROR, Err.NOAUTH)]
    reply = other.multi([op_create("/locked/kid")])
    assert results(reply) == [(ERROR, Err.NOAUTH)]
    reply = other.multi([op_create("/x", acl=CREATOR_ALL_ACL)])
    assert results(reply) == [(ERROR, Err.INVALIDACL)]
    assert other.exists("/free").err == Err.NONODE
    reply = other.multi_read([op_get_data("/locked"), op_get_children("/locked")])
    assert results(reply) == [(ERROR, Err.NOAUTH), (ERROR, Err.NOAUTH)]
    reply = owner.multi([op_set_data("/locked", b"y"), op_create("/locked/kid")])
    assert results(reply) == [(OpCode.setData, 0), (OpCode.create, 0)]
