"""Watch events over the raw protocol, per server kind.

Events are compared as (type, state, path) sequences. After each change the watching client
does a read round trip (``barrier``): ZooKeeper delivers a watch event before the client can
see the change, so every event the change caused has arrived once that read is answered.
Expectations are the reference ZooKeeper 3.8.0's.
"""

from __future__ import annotations

from jute.constants import AddWatchMode, CreateMode, Err, OpCode, WatcherType
from jute import records as r
from tests.support.normalize import Normalizer
from tests.support.rawclient import op_create, op_delete, op_set_data

OK = Err.OK
SYNC = 3  # KeeperState.SyncConnected


def events_after(client) -> list[tuple]:
    client.barrier()
    return [Normalizer.event(e) for e in client.take_events()]


def setup(server_factory, server_kind, raw_factory, count=2):
    server = server_factory(server_kind)
    return server, [raw_factory(server) for _ in range(count)]


def test_data_exists_child_watches(server_factory, server_kind, raw_factory):
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    c.create("/a", b"1")
    assert w.get_data("/a", watch=True).err == OK
    assert w.exists("/a", watch=True).err == OK
    assert w.exists("/b", watch=True).err == Err.NONODE  # the watch is set all the same
    assert w.get_children("/a", watch=True).err == OK

    c.set_data("/a", b"2")
    assert events_after(w) == [("NodeDataChanged", SYNC, "/a")]
    c.set_data("/a", b"3")
    assert events_after(w) == [], "watches are one-shot"

    c.create("/b")
    assert events_after(w) == [("NodeCreated", SYNC, "/b")]
    c.create("/a/x")
    assert events_after(w) == [("NodeChildrenChanged", SYNC, "/a")]

    # Every kind of watch on /a/x and a child watch on /a: one NodeDeleted, then the parent.
    w.get_data("/a/x", watch=True)
    w.exists("/a/x", watch=True)
    w.get_children("/a/x", watch=True)
    w.get_children("/a", watch=True)
    c.delete("/a/x")
    assert events_after(w) == [("NodeDeleted", SYNC, "/a/x"),
                               ("NodeChildrenChanged", SYNC, "/a")]

    # getChildren2 sets a child watch too; data changes of a child do not fire it.
    w.get_children2("/a", watch=True)
    c.create("/a/y")
    c.set_data("/a/y", b"q")
    assert events_after(w) == [("NodeChildrenChanged", SYNC, "/a")]

    # A data watch fires on delete; an exists watch on a missing node on create only.
    w.get_data("/a/y", watch=True)
    c.delete("/a/y")
    assert events_after(w) == [("NodeDeleted", SYNC, "/a/y")]


def test_failed_reads_leave_no_watch(server_factory, server_kind, raw_factory):
    """Only exists sets a watch on a missing node; getData/getChildren answering NONODE
    leave none behind."""
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    assert w.get_data("/x", watch=True).err == Err.NONODE
    assert w.get_children("/y", watch=True).err == Err.NONODE
    assert w.get_children2("/z", watch=True).err == Err.NONODE
    c.create("/x")
    c.create("/y")
    c.create("/y/kid")
    c.create("/z")
    c.delete("/x")
    assert events_after(w) == []
    assert w.check_watches("/x", WatcherType.Any).err == Err.NOWATCHER


def test_notification_header(server_factory, server_kind, raw_factory):
    """Notifications use xid -1; 3.8.0 puts zxid -1 and err 0 in their ReplyHeader."""
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    w.exists("/n", watch=True)
    c.create("/n")
    w.barrier()
    (event,) = w.take_events()
    assert (event.type, event.state, event.path, event.zxid) == (1, SYNC, "/n", -1)


def test_own_change_event_precedes_reply(server_factory, server_kind, raw_factory):
    _, (w,) = setup(server_factory, server_kind, raw_factory, count=1)
    w.create("/self")
    w.get_data("/self", watch=True)
    reply = w.set_data("/self", b"x")
    assert reply.err == OK
    assert [Normalizer.event(e) for e in w.notifications] == [
        ("NodeDataChanged", SYNC, "/self")], "the event arrives before the setData reply"


def test_watches_from_several_sessions(server_factory, server_kind, raw_factory):
    server, (a, b, c) = setup(server_factory, server_kind, raw_factory, count=3)
    c.create("/shared")
    a.get_data("/shared", watch=True)
    b.exists("/shared", watch=True)
    c.set_data("/shared", b"v")
    assert events_after(a) == [("NodeDataChanged", SYNC, "/shared")]
    assert events_after(b) == [("NodeDataChanged", SYNC, "/shared")]
    assert events_after(c) == []


def test_same_path_registered_twice_fires_once(server_factory, server_kind, raw_factory):
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    c.create("/d")
    for _ in range(3):
        w.get_data("/d", watch=True)
        w.exists("/d", watch=True)
    c.set_data("/d", b"1")
    assert events_after(w) == [("NodeDataChanged", SYNC, "/d")]


def test_multi_event_order(server_factory, server_kind, raw_factory):
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    c.create("/m")
    w.get_children("/m", watch=True)
    w.exists("/m/a", watch=True)
    w.exists("/m/b", watch=True)
    w.get_data("/m", watch=True)
    reply = c.multi([op_create("/m/a"), op_create("/m/b"), op_set_data("/m", b"z")])
    assert reply.err == OK
    assert events_after(w) == [
        ("NodeCreated", SYNC, "/m/a"),
        ("NodeChildrenChanged", SYNC, "/m"),
        ("NodeCreated", SYNC, "/m/b"),
        ("NodeDataChanged", SYNC, "/m"),
    ]
    # A rolled-back multi fires nothing.
    w.get_children("/m", watch=True)
    w.get_data("/m/a", watch=True)
    reply = c.multi([op_delete("/m/a"), op_create("/m/c"), op_delete("/nope")])
    assert reply.err == OK and reply.response[-1].err == Err.NONODE
    assert events_after(w) == []


def test_check_and_remove_watches(server_factory, server_kind, raw_factory):
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    c.create("/b")
    assert w.check_watches("/b", WatcherType.Any).err == Err.NOWATCHER
    w.get_data("/b", watch=True)
    assert w.check_watches("/b", WatcherType.Data).err == OK
    assert w.check_watches("/b", WatcherType.Children).err == Err.NOWATCHER
    assert w.check_watches("/b", WatcherType.Any).err == OK
    assert w.remove_watches("/b", WatcherType.Children).err == Err.NOWATCHER
    assert w.remove_watches("/b", WatcherType.Data).err == OK
    assert w.remove_watches("/b", WatcherType.Data).err == Err.NOWATCHER
    assert w.remove_watches("/nope", WatcherType.Any).err == Err.NOWATCHER
    # The server sends no *WatchRemoved events: clients make those themselves.
    assert events_after(w) == []
    c.set_data("/b", b"1")
    assert events_after(w) == []

    # An exists watch on a missing node is a data watch.
    w.exists("/later", watch=True)
    assert w.check_watches("/later", WatcherType.Data).err == OK
    assert w.check_watches("/later", WatcherType.Children).err == Err.NOWATCHER

    w.get_children("/b", watch=True)
    w.get_data("/b", watch=True)
    assert w.remove_watches("/b", WatcherType.Any).err == OK
    assert w.check_watches("/b", WatcherType.Any).err == Err.NOWATCHER
    c.set_data("/b", b"2")
    c.create("/b/kid")
    assert events_after(w) == []

    # Another session cannot remove a watch: removeWatches only sees the caller's own.
    w.get_data("/b", watch=True)
    assert c.remove_watches("/b", WatcherType.Data).err == Err.NOWATCHER
    assert c.remove_watches("/b", WatcherType.Any).err == Err.NOWATCHER
    c.set_data("/b", b"3")
    assert events_after(w) == [("NodeDataChanged", SYNC, "/b")]


def test_check_watches_sees_other_sessions_reference_quirk(server_factory, server_kind,
                                                           raw_factory):
    """3.8.0's checkWatches answers OK when *any* session watches the path (its
    WatchManager.containsWatcher ignores the watcher at the leaf path), while removeWatches
    only considers the caller's watches."""
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    c.create("/b")
    w.get_data("/b", watch=True)
    assert c.check_watches("/b", WatcherType.Data).err == OK
    assert c.check_watches("/b", WatcherType.Any).err == OK
    assert c.check_watches("/b", WatcherType.Children).err == Err.NOWATCHER
    assert c.remove_watches("/b", WatcherType.Data).err == Err.NOWATCHER
    assert w.check_watches("/b", WatcherType.Data).err == OK


def test_persistent_watch(server_factory, server_kind, raw_factory):
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    add = w.add_watch("/p", AddWatchMode.PERSISTENT)
    assert add.err == OK
    assert add.body == b"\x00\x00\x00\x00", "addWatch answers with an ErrorResponse(0) body"
    c.create("/p")
    assert events_after(w) == [("NodeCreated", SYNC, "/p")]
    c.set_data("/p", b"1")
    c.set_data("/p", b"2")
    assert events_after(w) == [("NodeDataChanged", SYNC, "/p"), ("NodeDataChanged", SYNC, "/p")]
    c.create("/p/c")
    assert events_after(w) == [("NodeChildrenChanged", SYNC, "/p")]
    c.set_data("/p/c", b"1")
    c.create("/p/c/deeper")
    assert events_after(w) == [], "a persistent watch does not see grandchildren or child data"
    c.delete("/p/c/deeper")
    c.delete("/p/c")
    assert events_after(w) == [("NodeChildrenChanged", SYNC, "/p")]
    c.delete("/p")
    assert events_after(w) == [("NodeDeleted", SYNC, "/p")]
    c.create("/p")
    assert events_after(w) == [("NodeCreated", SYNC, "/p")], "it survives the delete"
    assert w.check_watches("/p", WatcherType.Any).err == OK
    assert w.check_watches("/p", WatcherType.Data).err == OK
    assert w.check_watches("/p", WatcherType.Children).err == OK

    # Removing the Data kind stops data events; the child part stays until removed too.
    assert w.remove_watches("/p", WatcherType.Data).err == OK
    c.set_data("/p", b"4")
    assert events_after(w) == []
    assert w.check_watches("/p", WatcherType.Children).err == OK
    c.create("/p/c2")
    assert events_after(w) == [("NodeChildrenChanged", SYNC, "/p")]
    assert w.remove_watches("/p", WatcherType.Children).err == OK
    assert w.check_watches("/p", WatcherType.Any).err == Err.NOWATCHER
    c.create("/p/again")
    assert events_after(w) == []


def test_persistent_and_one_shot_from_different_sessions(server_factory, server_kind,
                                                         raw_factory):
    _, (w, o, c) = setup(server_factory, server_kind, raw_factory, count=3)
    c.create("/p")
    w.add_watch("/p", AddWatchMode.PERSISTENT)
    o.get_data("/p", watch=True)
    c.set_data("/p", b"1")
    c.set_data("/p", b"2")
    assert events_after(o) == [("NodeDataChanged", SYNC, "/p")]
    assert events_after(w) == [("NodeDataChanged", SYNC, "/p"), ("NodeDataChanged", SYNC, "/p")]


def test_one_shot_watch_replaces_persistent_on_same_path_reference_quirk(
        server_factory, server_kind, raw_factory):
    """In 3.8.0 a session's one-shot data watch on a path where it holds a persistent watch
    replaces the persistent data watch (WatcherModeManager keeps one mode per watcher and
    path): after one event the session gets no more data events, though child events go on."""
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    w.add_watch("/p", AddWatchMode.PERSISTENT)
    c.create("/p")
    assert events_after(w) == [("NodeCreated", SYNC, "/p")]
    w.get_data("/p", watch=True)
    c.set_data("/p", b"1")
    assert events_after(w) == [("NodeDataChanged", SYNC, "/p")]
    c.set_data("/p", b"2")
    assert events_after(w) == []
    c.create("/p/c")
    assert events_after(w) == [("NodeChildrenChanged", SYNC, "/p")]
    assert w.check_watches("/p", WatcherType.Any).err == OK


def test_persistent_recursive_watch(server_factory, server_kind, raw_factory):
    _, (w, c) = setup(server_factory, server_kind, raw_factory)
    assert w.add_watch("/r", AddWatchMode.PERSISTENT_RECURSIVE).err == OK
    c.create("/r")
    c.create("/r/x")
    c.create("/r/x/y", b"1")
    c.create("/rx")  # a sibling with the same string prefix is not below /r
    assert events_after(w) == [("NodeCreated", SYNC, "/r"), ("NodeCreated", SYNC, "/r/x"),
                               ("NodeCreated", SYNC, "/r/x/y")]
    c.set_data("/r/x/y", b"2")
    c.delete("/r/x/y")
    assert events_after(w) == [("NodeDataChanged", SYNC, "/r/x/y"),
                               ("NodeDeleted", SYNC, "/r/x/y")], "no NodeChildrenChanged"
    # Combined with a one-shot data watch and a child watch on the same node.
    w.get_data("/r/x", watch=True)
    w.get_children("/r/x", watch=True)
    c.set_data("/r/x", b"2")
    c.create("/r/x/z")
    assert events_after(w) == [("NodeDataChanged", SYNC, "/r/x"),
                               ("NodeCreated", SYNC, "/r/x/z"),
                               ("NodeChildrenChanged", SYNC, "/r/x")]
    assert w.remove_watches("/r", WatcherType.Data).err == OK
    assert w.remove_watches("/r", WatcherType.Children).err == OK
    assert w.check_watches("/r", WatcherType.Any).err == Err.NOWATCHER
    c.create("/r/x/w")
    assert events_after(w) == []

    # Recursive on the root sees every path.
    assert w.add_watch("/", AddWatchMode.PERSISTENT_RECURSIVE).err == OK
    c.create("/top")
    c.set_data("/r", b"d")
    assert events_after(w) == [("NodeCreated", SYNC, "/top"), ("NodeDataChanged", SYNC, "/r")]
    assert w.remove_watches("/", WatcherType.Any).err == OK


def test_add_watch_arguments(server_factory, server_kind, raw_factory):
    _, (w,) = setup(server_factory, server_kind, raw_factory, count=1)
    assert w.call(OpCode.addWatch, r.AddWatchRequest("/x", 7)).err == Err.MARSHALLINGERROR
    # The path is not validated.
    assert w.call(OpCode.addWatch, r.AddWatchRequest("x", 0)).err == OK
    assert w.exists("/").err == OK


def test_set_watches_on_reconnect(server_factory, server_kind, raw_factory):
    server, (w, c) = setup(server_factory, server_kind, raw_factory)
    c.create("/s", b"1")
    c.create("/s/k")
    c.create("/gone")
    w.barrier()
    seen = w.last_zxid_seen
    session_id, passwd = w.session_id, w.passwd
    w.disconnect()
    # Changes while the client is away.
    c.set_data("/s", b"2")
    c.create("/s/new")
    c.delete("/gone")
    w2 = raw_factory(server, session_id=session_id, passwd=passwd, last_zxid_seen=seen)
    assert w2.session_id == session_id
    reply = w2.set_watches(seen, data=["/s", "/gone", "/untouched"],
                           exist=["/s/new", "/never"], child=["/s"])
    assert (reply.xid, reply.err, reply.body) == (-8, OK, b"")
    # Watches whose node changed after relative_zxid fire at once, data then exist then
    # child; a data watch on a missing node fires NodeDeleted whatever the zxid.
    assert events_after(w2) == [("NodeDataChanged", SYNC, "/s"),
                                ("NodeDeleted", SYNC, "/gone"),
                                ("NodeDeleted", SYNC, "/untouched"),
                                ("NodeCreated", SYNC, "/s/new"),
                                ("NodeChildrenChanged", SYNC, "/s")]
    # The others are registered.
    c.create("/never")
    assert events_after(w2) == [("NodeCreated", SYNC, "/never")]


def test_set_watches2_with_persistent(server_factory, server_kind, raw_factory):
    server, (w, c) = setup(server_factory, server_kind, raw_factory)
    c.create("/s", b"1")
    w.barrier()
    current = w.last_zxid_seen
    reply = w.set_watches2(current, data=["/s"], exist=["/e"], child=["/s"],
                           persistent=["/pp"], recursive=["/rr"])
    assert (reply.err, reply.xid) == (OK, -8)
    assert events_after(w) == [], "nothing changed after relative_zxid"
    c.set_data("/s", b"2")
    c.create("/e")
    c.create("/s/c")
    c.create("/pp")
    c.create("/rr")
    c.create("/rr/x")
    c.set_data("/pp", b"again")
    assert events_after(w) == [
        ("NodeDataChanged", SYNC, "/s"), ("NodeCreated", SYNC, "/e"),
        ("NodeChildrenChanged", SYNC, "/s"), ("NodeCreated", SYNC, "/pp"),
        ("NodeCreated", SYNC, "/rr"), ("NodeCreated", SYNC, "/rr/x"),
        ("NodeDataChanged", SYNC, "/pp")]
    # A stale relative_zxid: missing data/child watches fire NodeDeleted, present exist
    # watches fire NodeCreated, persistent ones fire nothing.
    reply = w.set_watches2(1, data=["/gone"], exist=["/pp"], child=["/gone2"],
                           persistent=["/s"], recursive=[])
    assert reply.err == OK
    assert events_after(w) == [("NodeDeleted", SYNC, "/gone"), ("NodeCreated", SYNC, "/pp"),
                               ("NodeDeleted", SYNC, "/gone2")]
    # Any xid is echoed.
    assert w.set_watches(w.last_zxid_seen, data=["/s"], xid=77).xid == 77


def test_session_close_fires_ephemeral_events(server_factory, server_kind, raw_factory):
    _, (w, e) = setup(server_factory, server_kind, raw_factory)
    w.create("/e")
    for name in ("b", "a", "c"):
        e.create(f"/e/{name}", flags=CreateMode.EPHEMERAL)
        w.exists(f"/e/{name}", watch=True)
    w.get_children("/e", watch=True)
    assert e.close_session().err == OK
    events = events_after(w)
    # All in one closeSession txn; the order of the deletions is the server's own.
    assert sorted(events) == sorted([("NodeDeleted", SYNC, "/e/a"), ("NodeDeleted", SYNC, "/e/b"),
                                     ("NodeDeleted", SYNC, "/e/c"),
                                     ("NodeChildrenChanged", SYNC, "/e")])
    assert w.get_children("/e").response.children == []
