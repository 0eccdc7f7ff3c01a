"""The sans-IO server core: sessions, pipeline order, watches and errors, with an explicit
clock and no sockets."""

from __future__ import annotations

from jute import Err, EventType, OpCode
from jute import records as r
from jute.opcodes import MultiOp, decode_multi_response
from tests.unit.core_harness import OPEN, CoreHarness, create


def test_session_creation_is_a_logged_txn_and_answered_after_sync():
    h = CoreHarness()
    h.auto_sync = False
    connection_id, response = h.connect()
    assert response is None  # nothing before the createSession txn is durable
    batch = h.replica.take_log_batch()
    assert [hdr.type for hdr, _ in batch] == [OpCode.createSession]
    h.replica.log_durable(batch, h.now_ms)
    h.collect()
    (frame,) = h.inbox.pop(connection_id)
    assert r.ConnectResponse.decode(frame).session_id == batch[0][0].client_id


def test_connect_negotiates_timeout_within_limits():
    h = CoreHarness(tick_ms=2000)
    _, low = h.connect(timeout_ms=10)
    _, high = h.connect(timeout_ms=10_000_000)
    assert low.timeout_ms == 4000
    assert high.timeout_ms == 40_000
    assert low.session_id != high.session_id
    assert len(low.passwd) == 16


def test_create_get_set_delete_stat_semantics():
    h = CoreHarness()
    c, _ = h.connect()
    reply, response, _ = h.call(c, OpCode.create, create("/a", b"one"))
    assert reply.err == 0 and response.path == "/a"
    created_zxid = reply.zxid
    _, got, _ = h.call(c, OpCode.getData, r.GetDataRequest("/a", False))
    assert got.data == b"one"
    assert got.stat.czxid == got.stat.mzxid == got.stat.pzxid == created_zxid
    assert got.stat.version == 0 and got.stat.data_length == 3
    reply, set_response, _ = h.call(c, OpCode.setData, r.SetDataRequest("/a", b"two", 0))
    assert set_response.stat.version == 1 and set_response.stat.mzxid > created_zxid
    reply, _, _ = h.call(c, OpCode.setData, r.SetDataRequest("/a", b"x", 0))
    assert reply.err == Err.BADVERSION
    reply, _, _ = h.call(c, OpCode.delete, r.DeleteRequest("/a", 1))
    assert reply.err == 0
    reply, _, _ = h.call(c, OpCode.exists, r.ExistsRequest("/a", False))
    assert reply.err == Err.NONODE


def test_error_precedence_of_create():
    h = CoreHarness()
    c, _ = h.connect()
    assert h.call(c, OpCode.create, create("/missing/child"))[0].err == Err.NONODE
    assert h.call(c, OpCode.create, create("bad"))[0].err == Err.BADARGUMENTS
    # The parent is looked up before the full path is validated, as in ZooKeeper.
    assert h.call(c, OpCode.create, create("/a/"))[0].err == Err.NONODE
    h.call(c, OpCode.create, create("/a"))
    assert h.call(c, OpCode.create, create("/a/"))[0].err == Err.BADARGUMENTS
    assert h.call(c, OpCode.create, create("/a/", flags=2))[1].path == "/a/0000000000"
    assert h.call(c, OpCode.create, r.CreateRequest("/a", b"", [], 0))[0].err == Err.INVALIDACL
    assert h.call(c, OpCode.create, create("/"))[0].err == Err.NODEEXISTS
    h.call(c, OpCode.create, create("/e", flags=1))
    assert h.call(c, OpCode.create, create("/e/x"))[0].err == Err.NOCHILDRENFOREPHEMERALS
    assert h.call(c, OpCode.create, create("/t", flags=5))[0].err == Err.UNIMPLEMENTED


def test_failed_write_still_consumes_a_zxid():
    h = CoreHarness()
    c, _ = h.connect()
    first = h.call(c, OpCode.create, create("/a"))[0]
    failed = h.call(c, OpCode.create, create("/a"))[0]
    assert failed.err == Err.NODEEXISTS and failed.zxid == first.zxid + 1


def test_sequential_names_come_from_parent_cversion():
    h = CoreHarness()
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/q"))
    names = [h.call(c, OpCode.create, create("/q/n-", flags=2))[1].path for _ in range(3)]
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    h.call(c, OpCode.delete, r.DeleteRequest(names[2], -1))
    # The suffix counts creations only; the reported cversion counts deletions too.
    assert h.call(c, OpCode.create, create("/q/n-", flags=2))[1].path == "/q/n-0000000003"
    _, stat, _ = h.call(c, OpCode.exists, r.ExistsRequest("/q", False))
    assert (stat.stat.cversion, stat.stat.num_children) == (5, 3)


def test_pipelined_requests_are_prepared_against_outstanding_changes():
    h = CoreHarness()
    c, _ = h.connect()
    # Three writes in one batch: the second must see the first before it is applied.
    h.send(c, 1, OpCode.create, create("/p"))
    h.send(c, 2, OpCode.create, create("/p/c"))
    h.send(c, 3, OpCode.getChildren, r.GetChildrenRequest("/p", False))
    h.send(c, 4, OpCode.delete, r.DeleteRequest("/p", -1))
    h.flush()
    replies = h.frames(c)
    assert [hdr.xid for hdr, _ in replies] == [1, 2, 3, 4]
    assert [hdr.err for hdr, _ in replies] == [0, 0, 0, Err.NOTEMPTY]
    assert r.GetChildrenResponse.decode(replies[2][1]).children == ["c"]


def test_read_waits_behind_its_sessions_pending_write():
    h = CoreHarness()
    c, _ = h.connect()
    h.send(c, 1, OpCode.create, create("/w", b"v"))
    h.send(c, 2, OpCode.getData, r.GetDataRequest("/w", False))
    h.collect()
    assert h.frames(c) == []  # the read must not overtake the unsynced write
    h.flush()
    replies = h.frames(c)
    assert [hdr.xid for hdr, _ in replies] == [1, 2]
    assert r.GetDataResponse.decode(replies[1][1]).data == b"v"


def test_other_sessions_reads_do_not_wait():
    h = CoreHarness()
    a, _ = h.connect()
    b, _ = h.connect()
    h.send(a, 1, OpCode.create, create("/x"))
    h.send(b, 1, OpCode.exists, r.ExistsRequest("/x", False))
    h.collect()
    (hdr, _), = h.frames(b)
    assert hdr.err == Err.NONODE  # not yet committed, and b has nothing pending


def test_a_write_from_the_sessions_previous_connection_is_not_answered_on_its_new_one():
    """The session moves to a new connection while a write of the old one is not yet durable.
    The write's reply belongs to the old connection (the client never sent that xid on the new
    one) and is lost with it; the new connection's read still waits behind the write."""
    h = CoreHarness()
    first, response = h.connect()
    h.auto_sync = False
    h.send(first, 7, OpCode.create, create("/moving", b"v"))
    h.collect()
    second, again = h.connect(session_id=response.session_id, passwd=response.passwd)
    assert again.session_id == response.session_id and first in h.closed
    h.send(second, 1, OpCode.getData, r.GetDataRequest("/moving", False))
    h.collect()
    assert h.frames(second) == []  # behind the session's write
    h.flush()
    replies = h.frames(second)
    assert [hdr.xid for hdr, _ in replies] == [1]
    assert r.GetDataResponse.decode(replies[0][1]).data == b"v"
    assert h.frames(first) == []


def test_nothing_is_answered_on_a_connection_the_core_is_closing():
    """A role change (a follower whose leader is gone) drops the queued requests and closes
    every connection; until the runtime closes the socket, requests still arrive on it. The
    read answered there came after the dropped write: a gap in the client's replies."""
    from zkpy.ensemble.node import NOT_SERVING
    h = CoreHarness()
    c, _ = h.connect()
    h.auto_sync = False
    h.send(c, 1, OpCode.create, create("/dropped"))
    h.replica.become(NOT_SERVING, h.now_ms)
    h.send(c, 2, OpCode.getData, r.GetDataRequest("/", False))
    h.flush()
    assert c in h.closed
    assert h.frames(c) == []


def test_an_expired_sessions_connection_is_closed_without_a_reply():
    """The expiry's closeSession is the server's, not the client's: ZooKeeper answers nothing
    (a reply with xid 0 would be taken for one of the client's requests) and drops the
    connection."""
    h = CoreHarness(tick_ms=1000)
    c, _ = h.connect(timeout_ms=2000)
    h.advance(5000)
    assert c in h.closed
    assert h.frames(c) == []


def test_multi_rolls_back_and_reports_per_op_results():
    h = CoreHarness()
    c, _ = h.connect()
    ops = [MultiOp(OpCode.create, create("/m1")), MultiOp(OpCode.check, r.CheckVersionRequest("/m1", 5)),
           MultiOp(OpCode.create, create("/m2"))]
    reply, results, _ = h.call(c, OpCode.multi, ops)
    assert reply.err == 0
    assert [(x.type, x.err) for x in results] == [
        (OpCode.error, 0), (OpCode.error, Err.BADVERSION), (OpCode.error, Err.RUNTIMEINCONSISTENCY)]
    assert h.call(c, OpCode.exists, r.ExistsRequest("/m1", False))[0].err == Err.NONODE
    ops[1] = MultiOp(OpCode.check, r.CheckVersionRequest("/m1", 0))
    reply, results, _ = h.call(c, OpCode.multi, ops)
    assert [x.type for x in results] == [OpCode.create, OpCode.check, OpCode.create]


def test_a_multi_of_creates_under_one_parent_counts_each_and_rolls_back_whole():
    """Prep changes the parent's record once per multi, not once per op: the sequence
    numbers, cversion and Stat must still count every create, and a failed multi must leave
    the parent as the multi before it left it, even while that one is not yet applied."""
    h = CoreHarness()
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/p"))
    seq = [MultiOp(OpCode.create, create("/p/s-", flags=2)) for _ in range(3)]
    h.auto_sync = False
    h.send(c, 1, OpCode.multi, seq)  # outstanding while the next one is prepared
    h.send(c, 2, OpCode.multi, seq[:2] + [MultiOp(OpCode.check, r.CheckVersionRequest("/p", 7))])
    h.send(c, 3, OpCode.multi, [MultiOp(OpCode.create, create("/p/n")),
                                MultiOp(OpCode.create2, create("/p/s-", flags=2))])
    h.flush()
    h.auto_sync = True
    replies = {hdr.xid: decode_multi_response(body) for hdr, body in h.frames(c)}
    assert [x.response.path for x in replies[1]] == [
        "/p/s-0000000000", "/p/s-0000000001", "/p/s-0000000002"]
    assert [x.err for x in replies[2]] == [0, 0, Err.BADVERSION]
    assert [x.response.path for x in replies[3]] == ["/p/n", "/p/s-0000000004"]
    stat = h.call(c, OpCode.exists, r.ExistsRequest("/p", False))[1].stat
    # The failed multi's creates were rolled back: only the 5 that happened count.
    assert (stat.cversion, stat.num_children) == (5, 5)
    assert sorted(h.replica.tree.nodes["/p"].children) == [
        "n", "s-0000000000", "s-0000000001", "s-0000000002", "s-0000000004"]


def test_data_and_child_watches_fire_once_before_the_reply():
    h = CoreHarness()
    watcher, _ = h.connect()
    writer, _ = h.connect()
    h.call(writer, OpCode.create, create("/d"))
    h.call(watcher, OpCode.getData, r.GetDataRequest("/d", True))
    h.call(watcher, OpCode.getChildren, r.GetChildrenRequest("/d", True))
    h.call(watcher, OpCode.exists, r.ExistsRequest("/d/new", True))
    h.call(writer, OpCode.create, create("/d/new"))
    h.call(writer, OpCode.setData, r.SetDataRequest("/d", b"1", -1))
    h.call(writer, OpCode.setData, r.SetDataRequest("/d", b"2", -1))
    events = [(e.type, e.path) for e in h.events(watcher)]
    assert events == [(EventType.NodeCreated, "/d/new"), (EventType.NodeChildrenChanged, "/d"),
                      (EventType.NodeDataChanged, "/d")]


def test_notification_precedes_the_writers_own_reply():
    h = CoreHarness()
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/own"))
    h.call(c, OpCode.getData, r.GetDataRequest("/own", True))
    h.send(c, 9, OpCode.setData, r.SetDataRequest("/own", b"x", -1))
    h.flush()
    xids = [hdr.xid for hdr, _ in h.frames(c)]
    assert xids == [-1, 9]


def test_persistent_recursive_watch_sees_descendants_but_not_child_events():
    h = CoreHarness()
    watcher, _ = h.connect()
    writer, _ = h.connect()
    h.call(writer, OpCode.create, create("/r"))
    reply, _, _ = h.call(watcher, OpCode.addWatch, r.AddWatchRequest("/r", 1))
    assert reply.err == 0 and r.ErrorResponse.decode(reply.body).err == 0
    h.call(writer, OpCode.create, create("/r/a"))
    h.call(writer, OpCode.create, create("/r/a/b"))
    h.call(writer, OpCode.delete, r.DeleteRequest("/r/a/b", -1))
    events = [(e.type, e.path) for e in h.events(watcher)]
    assert events == [(1, "/r/a"), (1, "/r/a/b"), (2, "/r/a/b")]


def test_session_expiry_deletes_ephemerals_and_fires_watches():
    h = CoreHarness(tick_ms=1000)
    owner, response = h.connect(timeout_ms=2000)
    watcher, _ = h.connect(timeout_ms=30_000)
    h.call(owner, OpCode.create, create("/eph", flags=1))
    h.call(watcher, OpCode.exists, r.ExistsRequest("/eph", True))
    for _ in range(4):  # the watcher pings, the owner stays silent
        h.advance(1000)
        h.call(watcher, OpCode.ping, None, xid=-2)
    assert owner in h.closed
    assert h.call(watcher, OpCode.exists, r.ExistsRequest("/eph", False))[0].err == Err.NONODE
    assert h.replica.tree.ephemerals == {}
    # Reconnecting to the expired session is refused with a zero timeout.
    _, again = h.connect(session_id=response.session_id, passwd=response.passwd)
    assert again.timeout_ms == 0 and again.session_id == 0


def test_reconnect_keeps_session_with_right_password_only():
    h = CoreHarness()
    first, response = h.connect()
    h.call(first, OpCode.create, create("/keep", flags=1))
    _, wrong = h.connect(session_id=response.session_id, passwd=b"x" * 16)
    assert wrong.timeout_ms == 0
    second, right = h.connect(session_id=response.session_id, passwd=response.passwd)
    assert right.session_id == response.session_id
    assert first in h.closed
    assert h.call(second, OpCode.exists, r.ExistsRequest("/keep", False))[0].err == 0


def test_close_session_deletes_ephemerals_and_closes_connection():
    h = CoreHarness()
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/gone", flags=1))
    other, _ = h.connect()
    reply, _, _ = h.call(c, OpCode.closeSession)
    assert reply.err == 0 and c in h.closed
    assert h.call(other, OpCode.exists, r.ExistsRequest("/gone", False))[0].err == Err.NONODE


def test_acl_digest_and_noauth():
    from zkpy.tree.acl import digest_of
    h = CoreHarness()
    owner, _ = h.connect()
    stranger, _ = h.connect()
    h.zookeeper.handle_auth(owner, r.AuthPacket(0, "digest", b"alice:secret"))
    acl = [r.ACL(31, r.Id("auth", ""))]
    assert h.call(owner, OpCode.create, create("/private", b"s", acl=acl))[0].err == 0
    _, acls, _ = h.call(owner, OpCode.getACL, r.GetACLRequest("/private"))
    assert acls.acl == [r.ACL(31, r.Id("digest", digest_of("alice:secret")))]
    assert h.call(stranger, OpCode.getData, r.GetDataRequest("/private", False))[0].err == Err.NOAUTH
    assert h.call(stranger, OpCode.create, create("/x", acl=acl))[0].err == Err.INVALIDACL


def test_container_is_reaped_after_its_last_child_goes():
    h = CoreHarness()
    c, _ = h.connect()
    h.call(c, OpCode.createContainer, create("/box", flags=4))
    h.replica.reap_containers(h.now_ms)
    h.flush()
    assert h.call(c, OpCode.exists, r.ExistsRequest("/box", False))[0].err == 0  # never had a child
    h.call(c, OpCode.create, create("/box/item"))
    h.call(c, OpCode.delete, r.DeleteRequest("/box/item", -1))
    h.replica.reap_containers(h.now_ms)
    h.flush()
    assert h.call(c, OpCode.exists, r.ExistsRequest("/box", False))[0].err == Err.NONODE


def test_ttl_node_is_reaped_after_ttl_when_childless():
    h = CoreHarness(extended_types_enabled=True)
    c, _ = h.connect()
    reply, response, _ = h.call(c, OpCode.createTTL, r.CreateTTLRequest("/ttl", b"", OPEN, 5, 1000))
    assert reply.err == 0 and response.stat.ephemeral_owner == 0  # TTL nodes show no owner
    h.replica.reap_containers(h.now_ms + 500)
    h.flush()
    assert h.call(c, OpCode.exists, r.ExistsRequest("/ttl", False))[0].err == 0
    h.now_ms += 2000
    h.call(c, OpCode.ping, None, xid=-2)
    h.replica.reap_containers(h.now_ms)
    h.flush()
    assert h.call(c, OpCode.exists, r.ExistsRequest("/ttl", False))[0].err == Err.NONODE


def test_unknown_opcode_and_bad_body_answer_with_errors():
    h = CoreHarness()
    c, _ = h.connect()
    assert h.call(c, 999)[0].err == Err.UNIMPLEMENTED
    assert c in h.closed  # and the connection is dropped, as ZooKeeper does
    other, _ = h.connect()
    assert h.call(other, OpCode.getData, b"\x00\x00\x00\x10/a")[0].err == Err.MARSHALLINGERROR
    assert other not in h.closed


def test_sync_answers_after_earlier_writes_of_other_sessions():
    h = CoreHarness()
    a, _ = h.connect()
    b, _ = h.connect()
    h.send(a, 1, OpCode.create, create("/s"))
    h.send(b, 7, OpCode.sync, r.SyncRequest("/s"))
    h.collect()
    assert h.frames(b) == []
    h.flush()
    (hdr, body), = h.frames(b)
    assert hdr.xid == 7 and r.SyncResponse.decode(body).path == "/s"


def test_a_write_after_a_sync_is_answered_when_both_complete_in_one_batch():
    """b's sync waits for a's create; b's create, sent after the sync, is durable in the same
    batch. The sync used to be released only after the whole batch, so b's create found the
    sync at the head of b's queue, was never answered, and b hung behind it. The exists sent
    between them must not see b's create."""
    h = CoreHarness()
    a, _ = h.connect()
    b, _ = h.connect()
    h.auto_sync = False
    h.send(a, 1, OpCode.create, create("/x"))
    h.send(b, 1, OpCode.sync, r.SyncRequest("/"))
    h.send(b, 2, OpCode.exists, r.ExistsRequest("/y", False))
    h.send(b, 3, OpCode.create, create("/y"))
    h.flush()
    replies = h.frames(b)
    assert [hdr.xid for hdr, _ in replies] == [1, 2, 3]
    assert [hdr.err for hdr, _ in replies] == [0, Err.NONODE, 0]
    assert h.zookeeper.pending == {}


def test_a_new_leaders_sync_does_not_wait_for_a_txn_of_its_epoch():
    """Before a new leader has prepared anything its next zxid is (epoch << 32) | 1; a sync
    waited for (epoch << 32), a txn that never exists, i.e. for whatever write came next."""
    from zkpy.replica.core import LEADER
    h = CoreHarness()
    c, response = h.connect()
    h.replica.become(LEADER, h.now_ms, epoch=5)
    h.collect()
    assert c in h.closed
    again, _ = h.connect(session_id=response.session_id, passwd=response.passwd)
    h.send(again, 1, OpCode.sync, r.SyncRequest("/"))
    h.collect()
    assert [hdr.xid for hdr, _ in h.frames(again)] == [1]


def test_set_watches_fires_what_changed_since_the_clients_zxid():
    h = CoreHarness()
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/sw"))
    last_seen = h.replica.tree.last_zxid
    h.call(c, OpCode.setData, r.SetDataRequest("/sw", b"new", -1))
    reply, _, events = h.call(c, OpCode.setWatches,
                              r.SetWatches(last_seen, ["/sw", "/gone"], ["/sw", "/absent"], []), xid=-8)
    assert reply.err == 0
    assert sorted((e.type, e.path) for e in events) == [
        (EventType.NodeCreated, "/sw"), (EventType.NodeDeleted, "/gone"),
        (EventType.NodeDataChanged, "/sw")]
    # The exist watch on /absent was registered and fires on creation.
    _, _, later = h.call(c, OpCode.create, create("/absent"))
    assert [(e.type, e.path) for e in later] == [(EventType.NodeCreated, "/absent")]
