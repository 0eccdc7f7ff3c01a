"""Raw-protocol basics, per server kind: sessions, CRUD error codes, Stat relations,
sequential names, zxids, special paths, malformed input and the newer read opcodes.

Every expectation was taken from the reference ZooKeeper 3.8.0.
"""

from __future__ import annotations

import time

from jute import records as r
from jute.constants import CreateMode, Err, OpCode, Xid
from tests.support.normalize import check_times, sequence_number, stat_problems
from tests.support.rawclient import OPEN_ACL_UNSAFE

OK = Err.OK


def start(server_factory, server_kind, **kwargs):
    return server_factory(server_kind, **kwargs)


def test_connect_ping_and_negotiated_timeout(server_factory, server_kind, raw_factory):
    server = start(server_factory, server_kind, settings={"tickTime": "200"})
    low = raw_factory(server, timeout_ms=1)
    assert low.negotiated_timeout_ms == 400, "minSessionTimeout defaults to 2 * tickTime"
    high = raw_factory(server, timeout_ms=10**6)
    assert high.negotiated_timeout_ms == 4000, "maxSessionTimeout defaults to 20 * tickTime"
    mid = raw_factory(server, timeout_ms=1234)
    assert mid.negotiated_timeout_ms == 1234
    response = mid.connect_response
    assert response.protocol_version == 0
    assert response.session_id != 0 and len(response.passwd) == 16
    assert len({low.session_id, high.session_id, mid.session_id}) == 3
    ping = mid.ping()
    assert (ping.xid, ping.err, ping.body) == (Xid.PING, OK, b"")


def test_crud_error_codes(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    assert c.create("/a", b"x").response.path == "/a"
    assert c.create("/a", b"x").err == Err.NODEEXISTS
    assert c.create("/missing/b").err == Err.NONODE
    assert c.create("/", b"").err == Err.NODEEXISTS
    for bad in ["a", "/a/", "//", "/.", "", "/a\u0000b"]:
        assert c.create(bad).err == Err.BADARGUMENTS, bad
    # "." and ".." components that are not the last one are looked up literally: no parent.
    assert c.create("/a/./b").err == Err.NONODE
    assert c.create("/a//b").err == Err.NONODE
    assert c.create("/e", flags=CreateMode.EPHEMERAL).err == OK
    assert c.create("/e/x").err == Err.NOCHILDRENFOREPHEMERALS
    assert c.create("/a/b").err == OK
    assert c.delete("/a").err == Err.NOTEMPTY
    assert c.delete("/a/b", version=3).err == Err.BADVERSION
    assert c.delete("/nope").err == Err.NONODE
    assert c.set_data("/nope", b"").err == Err.NONODE
    assert c.set_data("/a", b"", version=1).err == Err.BADVERSION
    assert c.set_data("/a", b"", version=-2).err == Err.BADVERSION
    assert c.get_data("/nope").err == Err.NONODE
    assert c.get_children("/nope").err == Err.NONODE
    assert c.get_children2("/nope").err == Err.NONODE
    assert c.exists("/nope").err == Err.NONODE
    assert c.get_acl("/nope").err == Err.NONODE
    assert c.set_acl("/nope", OPEN_ACL_UNSAFE).err == Err.NONODE
    assert c.get_all_children_number("/nope").err == Err.NONODE
    # The root and /zookeeper cannot be deleted.
    assert c.delete("/").err == Err.BADARGUMENTS
    assert c.delete("/zookeeper").err == Err.BADARGUMENTS
    # Error replies carry no body.
    reply = c.get_data("/nope")
    assert reply.body == b"" and reply.response is None
    # The session is still usable after every error.
    assert c.delete("/a/b", version=0).err == OK
    assert c.delete("/a").err == OK


def test_invalid_paths_on_reads(server_factory, server_kind, raw_factory):
    """The reference does not validate paths of reads: an invalid path is simply NONODE."""
    c = raw_factory(start(server_factory, server_kind))
    assert c.exists("a").err == Err.NONODE
    assert c.get_data("a").err == Err.NONODE
    assert c.get_children("/a/").err == Err.NONODE
    assert c.delete("/a/").err == Err.NONODE
    assert c.set_data("a", b"").err == Err.BADARGUMENTS


def test_data_roundtrip(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    blob = bytes(range(256)) * 4
    assert c.create("/bin", blob).err == OK
    got = c.get_data("/bin").response
    assert got.data == blob and got.stat.data_length == len(blob)
    assert c.create("/empty", b"").err == OK
    got = c.get_data("/empty").response
    assert got.data == b"" and got.stat.data_length == 0
    # A null buffer (length -1) is stored as null and read back as null.
    assert c.create("/null", None).err == OK
    got = c.get_data("/null").response
    assert got.data is None and got.stat.data_length == 0
    assert c.set_data("/null", b"now").err == OK
    assert c.get_data("/null").response.data == b"now"
    # Unicode paths.
    assert c.create("/ä-ß-✓", b"u").response.path == "/ä-ß-✓"
    assert sorted(c.get_children("/").response.children) == sorted(
        ["bin", "empty", "null", "ä-ß-✓", "zookeeper"])
    # Nearly jute.maxbuffer of data is accepted.
    large = b"x" * (1024 * 1024 - 1000)
    assert c.create("/large", large).err == OK
    assert c.get_data("/large").response.data == large


def test_oversized_packet_closes_connection(server_factory, server_kind, raw_factory):
    server = start(server_factory, server_kind)
    c = raw_factory(server)
    outcome = c.outcome(OpCode.create, r.CreateRequest("/big", b"x" * (1024 * 1024 + 16),
                                                       OPEN_ACL_UNSAFE, 0))
    assert outcome == "closed"
    other = raw_factory(server)
    assert other.exists("/big").err == Err.NONODE


def test_stat_relations(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    before_ms = int(time.time() * 1000)
    created = c.create2("/n", b"abc")
    stat = created.response.stat
    assert created.zxid == stat.czxid == stat.mzxid == stat.pzxid
    assert (stat.version, stat.cversion, stat.aversion) == (0, 0, 0)
    assert (stat.ephemeral_owner, stat.data_length, stat.num_children) == (0, 3, 0)
    assert stat.ctime == stat.mtime
    check_times(stat, before_ms)
    assert stat == c.exists("/n").response.stat

    set_reply = c.set_data("/n", b"abcdef", version=0)
    after_set = set_reply.response.stat
    assert after_set.mzxid == set_reply.zxid > after_set.czxid == stat.czxid
    assert after_set.version == 1 and after_set.data_length == 6
    assert after_set.ctime == stat.ctime and after_set.mtime >= stat.mtime
    assert after_set.pzxid == stat.pzxid and after_set.cversion == 0
    second_set = c.set_data("/n", b"abcdef", version=1).response.stat
    assert second_set.version == 2

    child = c.create2("/n/c")
    parent = c.exists("/n").response.stat
    assert parent.num_children == 1 and parent.cversion == 1
    assert parent.pzxid == child.response.stat.czxid == child.zxid
    assert parent.mzxid == second_set.mzxid
    assert parent.version == 2, "child changes leave the data version alone"
    assert parent.mzxid < parent.pzxid

    deleted = c.delete("/n/c")
    parent = c.exists("/n").response.stat
    assert parent.num_children == 0 and parent.cversion == 2
    assert parent.pzxid == deleted.zxid > child.zxid

    acl_reply = c.set_acl("/n", OPEN_ACL_UNSAFE, version=0)
    assert acl_reply.response.stat.aversion == 1
    assert c.set_acl("/n", OPEN_ACL_UNSAFE, version=0).err == Err.BADVERSION
    assert c.exists("/n").response.stat.mzxid == parent.mzxid, "setACL does not change mzxid"

    eph = c.create2("/eph", flags=CreateMode.EPHEMERAL).response.stat
    assert eph.ephemeral_owner == c.session_id
    for path in ("/n", "/eph", "/"):
        assert stat_problems(c.exists(path).response.stat) == []

    root = c.exists("/").response.stat
    assert (root.czxid, root.ctime, root.ephemeral_owner) == (0, 0, 0)
    assert root.num_children == 3  # n, eph, zookeeper


def test_getchildren2_and_counts(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    c.create("/p")
    for name in ["b", "a", "c"]:
        c.create(f"/p/{name}", name.encode())
    c.create("/p/a/x")
    c.create("/p/a/x/y")
    reply = c.get_children2("/p").response
    assert sorted(reply.children) == ["a", "b", "c"]
    assert reply.stat == c.exists("/p").response.stat
    assert reply.stat.num_children == 3
    assert c.get_all_children_number("/p").response.total_number == 5
    assert c.get_all_children_number("/p/a/x/y").response.total_number == 0
    # The root count includes /zookeeper and its children (config, quota).
    assert c.get_all_children_number("/").response.total_number == 6 + 3
    assert sorted(c.get_children("/zookeeper").response.children) == ["config", "quota"]


def test_sequential_names(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    c.create("/s")
    names = [c.create("/s/n-", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path
             for _ in range(3)]
    assert names == ["/s/n-0000000000", "/s/n-0000000001", "/s/n-0000000002"]
    # The counter belongs to the parent, whatever the prefix.
    assert c.create("/s/other-", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path == \
        "/s/other-0000000003"
    assert c.create("/s/e-", flags=CreateMode.EPHEMERAL_SEQUENTIAL).response.path == \
        "/s/e-0000000004"
    # A plain create counts too; failed creates do not.
    c.create("/s/plain")
    assert c.create("/s/plain").err == Err.NODEEXISTS
    assert c.create("/s/x-", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path == \
        "/s/x-0000000006"
    # An empty prefix: the name is just the number.
    assert c.create("/s/", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path == \
        "/s/0000000007"
    # Other parents have their own counters.
    c.create("/t")
    assert c.create("/t/n-", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path == \
        "/t/n-0000000000"
    assert sequence_number("/t/n-0000000000") == 0


def test_sequence_counter_ignores_deletes(server_factory, server_kind, raw_factory):
    """The suffix counts the parent's child creations; deletes do not advance it.

    Stat.cversion counts creations and deletions, so after deletes the next suffix is below
    cversion: the reference keeps the number of creates and reports
    cversion = 2 * creates - numChildren.
    """
    c = raw_factory(start(server_factory, server_kind))
    c.create("/p")
    c.create("/p/a")
    c.delete("/p/a")
    assert c.exists("/p").response.stat.cversion == 2
    assert c.create("/p/s-", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path == \
        "/p/s-0000000001"
    stat = c.exists("/p").response.stat
    assert (stat.cversion, stat.num_children) == (3, 1)
    c.create("/p/b")
    c.create("/p/c")
    c.delete("/p/b")
    c.delete("/p/c")
    c.delete("/p/s-0000000001")
    stat = c.exists("/p").response.stat
    assert (stat.cversion, stat.num_children) == (8, 0)
    assert c.create("/p/s-", flags=CreateMode.EPHEMERAL_SEQUENTIAL).response.path == \
        "/p/s-0000000004"
    # The fresh root: /zookeeper is not counted as a created child, so cversion reads -1.
    fresh = c.exists("/").response.stat
    assert fresh.cversion == 2 * 1 - fresh.num_children
    assert c.create("/r-", flags=CreateMode.PERSISTENT_SEQUENTIAL).response.path == "/r-0000000001"


def test_reply_zxids(server_factory, server_kind, raw_factory):
    """Reads answer with the last zxid; every write, even a failed one, takes a new zxid."""
    c = raw_factory(start(server_factory, server_kind))
    first = c.create("/z")
    assert first.zxid > 0
    read = c.get_data("/z")
    assert read.zxid == first.zxid
    failed = c.create("/z")
    assert failed.err == Err.NODEEXISTS and failed.zxid == first.zxid + 1
    failed2 = c.delete("/nope")
    assert failed2.zxid == failed.zxid + 1
    ok = c.set_data("/z", b"1")
    assert ok.zxid == failed2.zxid + 1 == ok.response.stat.mzxid
    assert c.exists("/z").zxid == ok.zxid
    assert c.sync("/z").zxid == ok.zxid
    assert c.ping().zxid == ok.zxid


def test_sync(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    assert c.sync("/").response.path == "/"
    assert c.sync("/does/not/exist").response.path == "/does/not/exist"


def test_check_outside_multi_errors(server_factory, server_kind, raw_factory):
    """The check opcode on its own is processed like a write (it takes a zxid)."""
    c = raw_factory(start(server_factory, server_kind))
    created = c.create("/v")
    failed = c.check("/v", 1)
    assert failed.err == Err.BADVERSION and failed.zxid == created.zxid + 1
    assert c.check("/nope", 0).err == Err.NONODE


def test_check_outside_multi_success_is_unanswered(server_factory, server_kind, raw_factory):
    """A successful stand-alone check gets no reply at all from the reference (3.8.0): its
    txn is applied (a zxid is used) but nothing is sent; later requests are answered."""
    c = raw_factory(start(server_factory, server_kind))
    created = c.create("/v")
    check_xid = c.submit(OpCode.check, r.CheckVersionRequest("/v", 0))
    after = c.exists("/v")
    assert after.err == Err.OK
    assert after.zxid == created.zxid + 1
    assert [f.xid for f in c.other_frames] == [], f"check {check_xid} was answered"


def test_system_tree(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    config = c.get_data("/zookeeper/config").response
    assert config.data == b"" and config.stat.czxid == 0
    quota = c.get_data("/zookeeper/quota").response
    assert quota.data == b""
    # Nodes can be created below /zookeeper (only /zookeeper itself is protected from delete).
    assert c.create("/zookeeper/mine").err == OK
    assert c.delete("/zookeeper/mine").err == OK


def test_who_am_i(server_factory, server_kind, raw_factory):
    """3.8.0 implements whoAmI (opcode 107): the connection's auth ids, ip first."""
    c = raw_factory(start(server_factory, server_kind))
    info = c.who_am_i().response.client_info
    assert [(i.auth_scheme, i.user) for i in info] == [("ip", "127.0.0.1")]
    assert c.add_auth("digest", "alice:secret").err == OK
    assert c.add_auth("digest", "bob:other").err == OK
    info = c.who_am_i().response.client_info
    assert sorted((i.auth_scheme, i.user) for i in info) == [
        ("digest", "alice"), ("digest", "bob"), ("ip", "127.0.0.1")]


def test_get_ephemerals(server_factory, server_kind, raw_factory):
    server = start(server_factory, server_kind)
    a, b = raw_factory(server), raw_factory(server)
    a.create("/x")
    a.create("/x/e1", flags=CreateMode.EPHEMERAL)
    a.create("/x/e2", flags=CreateMode.EPHEMERAL)
    a.create("/y", flags=CreateMode.EPHEMERAL)
    a.create("/x/s-", flags=CreateMode.EPHEMERAL_SEQUENTIAL)
    b.create("/x/b1", flags=CreateMode.EPHEMERAL)
    assert sorted(a.get_ephemerals("/").response.ephemerals) == [
        "/x/e1", "/x/e2", "/x/s-0000000002", "/y"]
    assert sorted(a.get_ephemerals("/x").response.ephemerals) == [
        "/x/e1", "/x/e2", "/x/s-0000000002"]
    # A plain string prefix, not a path prefix.
    assert sorted(a.get_ephemerals("/x/e").response.ephemerals) == ["/x/e1", "/x/e2"]
    assert a.get_ephemerals("/nothing").response.ephemerals == []
    assert b.get_ephemerals("/").response.ephemerals == ["/x/b1"]


def test_unknown_opcode_unimplemented_then_closed(server_factory, server_kind, raw_factory):
    server = start(server_factory, server_kind)
    c = raw_factory(server)
    reply = c.call(99)
    assert (reply.xid, reply.err) == (1, Err.UNIMPLEMENTED)
    assert c.outcome(OpCode.exists, r.ExistsRequest("/", False)) == "closed"
    # The session survives the connection.
    resumed = raw_factory(server, session_id=c.session_id, passwd=c.passwd)
    assert resumed.connect_response.session_id == c.session_id


def test_malformed_bodies(server_factory, server_kind, raw_factory):
    server = start(server_factory, server_kind)
    c = raw_factory(server)
    # A truncated body: MARSHALLINGERROR, and the connection stays open.
    assert c.call(OpCode.create, b"\x00\x00\x00\x05/a").err == Err.MARSHALLINGERROR
    assert c.call(OpCode.exists, b"").err == Err.MARSHALLINGERROR
    assert c.exists("/").err == OK
    # Trailing bytes after a whole record are ignored.
    body = r.GetDataRequest.encode(r.GetDataRequest("/", False)) + b"junk"
    assert c.call(OpCode.getData, body).err == OK
    # A null ACL list is an invalid ACL.
    assert c.call(OpCode.create, r.CreateRequest("/n", b"", None, 0)).err == Err.INVALIDACL
    # Unknown create flags.
    assert c.create("/f", flags=7).err == Err.BADARGUMENTS
    assert c.create("/f", flags=-1).err == Err.BADARGUMENTS
    assert c.exists("/f").err == Err.NONODE


def test_xids_are_echoed(server_factory, server_kind, raw_factory):
    c = raw_factory(start(server_factory, server_kind))
    for xid in (0, 7, 7, -77, 2**31 - 1):
        reply = c.call(OpCode.exists, r.ExistsRequest("/", False), xid=xid)
        assert (reply.xid, reply.err) == (xid, OK)
    # Pipelined requests are answered in order.
    sent = [(c.submit(OpCode.exists, r.ExistsRequest("/", False)), OpCode.exists)
            for _ in range(20)]
    sent.append((c.submit(OpCode.create, r.CreateRequest("/pipe", b"", OPEN_ACL_UNSAFE, 0)),
                 OpCode.create))
    sent += [(c.submit(OpCode.getData, r.GetDataRequest("/pipe", False)), OpCode.getData)
             for _ in range(5)]
    replies = [c.wait_reply(xid, op) for xid, op in sent]
    assert [reply.xid for reply in replies] == [xid for xid, _ in sent]
    assert all(reply.err == OK for reply in replies)
    assert c.other_frames == [], "replies came in request order"
