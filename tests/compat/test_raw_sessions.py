"""Sessions and special node types over the raw protocol, per server kind.

Ephemerals vanishing on close and on expiry, reconnecting (resume, wrong password, expired,
unknown session, the same session from a second connection), container and TTL nodes being
reaped. The reference runs with znode.container.checkIntervalMs=1000 and extended types
enabled (tests/support/servers.py sets both). Expectations: ZooKeeper 3.8.0.
"""

from __future__ import annotations

import time

from jute import records as r
from jute.constants import CreateMode, Err, OpCode
from tests.support.normalize import Normalizer
from tests.support.rawclient import ConnectionClosed, RawClient

OK = Err.OK
SYNC = 3
FAST_TICKS = {"tickTime": "200"}  # minimum session timeout 400 ms


def events_after(client) -> list[tuple]:
    client.barrier()
    return [Normalizer.event(e) for e in client.take_events()]


def resume(server, session_id, passwd, **kwargs):
    """Try to resume a session: ("accepted", client), or ("refused", detail) when the server
    answers with the refusal ConnectResponse (timeout 0, session 0, zero password) and closes,
    or just closes the connection (the reference does either for an expired session)."""
    try:
        client = RawClient("127.0.0.1", server.port, session_id=session_id, passwd=passwd,
                           **kwargs)
    except ConnectionClosed:
        return "refused", "closed without ConnectResponse"
    response = client.connect_response
    if response.session_id == 0:
        assert (response.timeout_ms, response.passwd) == (0, bytes(16)), response
        outcome = client.outcome(OpCode.exists, r.ExistsRequest("/", False))
        client.disconnect()
        assert outcome == "closed", "the connection is closed after the refusal"
        return "refused", "ConnectResponse(timeout 0, session 0)"
    return "accepted", client


def wait_for_nonode(client, path, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while client.exists(path).err == OK:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} still exists after {timeout_s}s")
        time.sleep(0.05)


def test_ephemerals_vanish_on_close(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    owner, watcher = raw_factory(server), raw_factory(server)
    watcher.create("/svc")
    owner.create("/svc/a", b"1", flags=CreateMode.EPHEMERAL)
    owner.create("/svc/n-", flags=CreateMode.EPHEMERAL_SEQUENTIAL)
    owner.create("/solo", flags=CreateMode.EPHEMERAL)
    stat = watcher.exists("/svc/a").response.stat
    assert stat.ephemeral_owner == owner.session_id
    watcher.get_children("/svc", watch=True)
    watcher.exists("/solo", watch=True)
    assert owner.close_session().err == OK
    assert sorted(events_after(watcher)) == sorted([("NodeChildrenChanged", SYNC, "/svc"),
                                                    ("NodeDeleted", SYNC, "/solo")])
    assert watcher.get_children("/svc").response.children == []
    assert watcher.exists("/solo").err == Err.NONODE
    assert watcher.get_ephemerals("/").response.ephemerals == []
    # The parent's pzxid is the closeSession txn's zxid: after everything before it.
    parent = watcher.exists("/svc").response.stat
    assert parent.pzxid > stat.czxid and parent.cversion == 4


def test_connection_drop_keeps_ephemerals(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    owner, watcher = raw_factory(server, timeout_ms=30000), raw_factory(server)
    owner.create("/keep", flags=CreateMode.EPHEMERAL)
    owner.disconnect()
    assert watcher.exists("/keep").err == OK
    resumed = raw_factory(server, session_id=owner.session_id, passwd=owner.passwd)
    assert resumed.connect_response.session_id == owner.session_id
    assert resumed.negotiated_timeout_ms == 30000
    assert resumed.get_ephemerals("/").response.ephemerals == ["/keep"]
    assert resumed.exists("/keep").response.stat.ephemeral_owner == owner.session_id


def test_ephemerals_vanish_on_expiry(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind, settings=FAST_TICKS)
    owner = raw_factory(server, timeout_ms=400)
    watcher = raw_factory(server, timeout_ms=4000)
    assert owner.negotiated_timeout_ms == 400
    owner.create("/gone", flags=CreateMode.EPHEMERAL)
    watcher.exists("/gone", watch=True)
    session_id, passwd = owner.session_id, owner.passwd
    owner.disconnect()  # no more pings: the session expires after its timeout
    events = watcher.wait_events(1, timeout_s=15)
    assert [Normalizer.event(e) for e in events] == [("NodeDeleted", SYNC, "/gone")]
    # Reconnecting to the expired session is refused.
    assert resume(server, session_id, passwd)[0] == "refused"


def test_idle_connected_session_expires(server_factory, server_kind, raw_factory):
    """A connected client that sends nothing (no pings) is expired and disconnected."""
    server = server_factory(server_kind, settings=FAST_TICKS)
    idle = raw_factory(server, timeout_ms=400)
    idle.create("/idle", flags=CreateMode.EPHEMERAL)
    watcher = raw_factory(server, timeout_ms=4000)
    watcher.exists("/idle", watch=True)
    watcher.wait_events(1, timeout_s=15)
    deadline = time.monotonic() + 15
    outcome = None
    while time.monotonic() < deadline:
        try:
            idle.poll(0.2)
        except Exception as exc:  # ConnectionClosed
            outcome = type(exc).__name__
            break
    assert outcome == "ConnectionClosed", "the server closes an expired session's connection"


def test_pings_keep_a_session_alive(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind, settings=FAST_TICKS)
    client = raw_factory(server, timeout_ms=400)
    client.create("/alive", flags=CreateMode.EPHEMERAL)
    deadline = time.monotonic() + 2.0  # five session timeouts
    while time.monotonic() < deadline:
        assert client.ping().err == OK
        time.sleep(0.05)
    assert client.exists("/alive").response.stat.ephemeral_owner == client.session_id


def test_reconnect_variants(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    first = raw_factory(server)
    sid, passwd = first.session_id, first.passwd
    # A wrong password: timeout 0 / session 0, then closed. The server has already dropped the
    # session's current connection (it does so before checking the password); the session
    # itself survives.
    assert resume(server, sid, b"x" * 16)[0] == "refused"
    assert first.outcome(OpCode.exists, r.ExistsRequest("/", False)) == "closed"
    second = raw_factory(server, session_id=sid, passwd=passwd)
    assert second.connect_response.session_id == sid
    assert second.exists("/").err == OK
    # The same session from another connection: the older connection is closed.
    third = raw_factory(server, session_id=sid, passwd=passwd)
    assert third.exists("/").err == OK
    assert second.outcome(OpCode.exists, r.ExistsRequest("/", False)) == "closed"
    # An unknown session id.
    assert resume(server, 0x1234567, bytes(16))[0] == "refused"


def test_close_session(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    c = raw_factory(server)
    c.create("/e", flags=CreateMode.EPHEMERAL)
    reply = c.call(OpCode.closeSession, xid=42)
    assert (reply.xid, reply.err, reply.body) == (42, OK, b"")
    assert c.outcome(OpCode.exists, r.ExistsRequest("/", False)) == "closed"
    assert resume(server, c.session_id, c.passwd)[0] == "refused"
    assert raw_factory(server).exists("/e").err == Err.NONODE


def test_session_ids_and_last_zxid(server_factory, server_kind, raw_factory):
    """Session ids are unique; resuming with a last_zxid_seen the server has not reached is
    refused (the connection is closed without a ConnectResponse)."""
    server = server_factory(server_kind)
    ids = {raw_factory(server).session_id for _ in range(5)}
    assert len(ids) == 5 and 0 not in ids
    c = raw_factory(server)
    c.create("/z")
    try:
        future = RawClient("127.0.0.1", server.port, session_id=c.session_id, passwd=c.passwd,
                           last_zxid_seen=c.last_zxid_seen + 1000)
        outcome = ("answered", future.connect_response.session_id)
        future.disconnect()
    except ConnectionClosed:
        outcome = "closed"
    assert outcome == "closed"


def test_container_reaped_after_last_child(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    c, w = raw_factory(server), raw_factory(server)
    reply = c.create_container("/c")
    assert reply.err == OK
    stat = reply.response.stat
    assert (stat.ephemeral_owner, stat.version, stat.num_children) == (0, 0, 0)
    # Containers can also be made with create/create2 and the CONTAINER flag.
    assert c.create("/c2", flags=CreateMode.CONTAINER).response.path == "/c2"
    assert c.create2("/c3", flags=CreateMode.CONTAINER).response.path == "/c3"
    c.create("/c/x")
    c.create("/c/y", flags=CreateMode.EPHEMERAL)
    w.exists("/c", watch=True)
    w.get_children("/c", watch=True)
    c.delete("/c/x")
    assert events_after(w) == [("NodeChildrenChanged", SYNC, "/c")]
    w.get_children("/c", watch=True)
    c.close_session()  # the last child is an ephemeral: it goes with the session
    wait_for_nonode(w, "/c")
    events = w.wait_events(2, timeout_s=5)
    assert [Normalizer.event(e) for e in events] == [("NodeChildrenChanged", SYNC, "/c"),
                                                     ("NodeDeleted", SYNC, "/c")]
    # Containers that never had a child stay (checked after the reaper had its chances).
    assert w.exists("/c2").err == OK and w.exists("/c3").err == OK
    # Deleting a container by hand works like any node.
    assert w.delete("/c2").err == OK


def test_container_rules(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    c = raw_factory(server)
    assert c.create_container("/c").err == OK
    assert c.create_container("/c/nested").err == OK
    assert c.create("/c/nested/leaf").err == OK
    # Containers may hold ephemerals; they report ephemeralOwner 0.
    assert c.create("/c/e", flags=CreateMode.EPHEMERAL).err == OK
    assert c.exists("/c").response.stat.ephemeral_owner == 0
    # The deleteContainer opcode refuses a non-container node.
    c.create("/plain")
    assert c.call(OpCode.deleteContainer, r.DeleteRequest("/plain", -1)).err == Err.BADARGUMENTS
    assert c.exists("/plain").err == OK
    # Removing the grandchild makes the nested container empty: it is reaped, then /c keeps
    # its ephemeral child.
    c.delete("/c/nested/leaf")
    wait_for_nonode(c, "/c/nested")
    assert sorted(c.get_children("/c").response.children) == ["e"]


def test_ttl_nodes(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    c, w = raw_factory(server), raw_factory(server)
    reply = c.create_ttl("/t", b"v", ttl_ms=500)
    assert reply.err == OK
    assert reply.response.stat.ephemeral_owner == 0
    assert c.get_data("/t").response.data == b"v"
    seq = c.create_ttl("/ts-", ttl_ms=500, flags=CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL)
    assert seq.response.path == "/ts-0000000001"
    parent = c.create_ttl("/tp", ttl_ms=200)
    assert parent.err == OK
    c.create("/tp/kid")
    w.exists("/t", watch=True)
    wait_for_nonode(w, "/t")
    wait_for_nonode(w, "/ts-0000000001")
    assert w.exists("/tp").err == OK, "a TTL node with children is not reaped"
    c.delete("/tp/kid")
    wait_for_nonode(w, "/tp")


def test_ttl_event(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    c, w = raw_factory(server), raw_factory(server)
    c.create_ttl("/t", ttl_ms=300)
    w.get_data("/t", watch=True)
    events = w.wait_events(1, timeout_s=15)
    assert [Normalizer.event(e) for e in events] == [("NodeDeleted", SYNC, "/t")]


def test_ttl_arguments(server_factory, server_kind, raw_factory):
    c = raw_factory(server_factory(server_kind))
    assert c.create_ttl("/a", ttl_ms=0).err == Err.BADARGUMENTS
    assert c.create_ttl("/a", ttl_ms=-5).err == Err.BADARGUMENTS
    assert c.create_ttl("/a", ttl_ms=1 << 40).err == Err.BADARGUMENTS  # above the maximum
    assert c.create_ttl("/a", ttl_ms=1000, flags=CreateMode.EPHEMERAL).err == Err.BADARGUMENTS
    assert c.create_ttl("/a", ttl_ms=1000, flags=CreateMode.PERSISTENT).err == Err.BADARGUMENTS
    # TTL modes through create/create2 (which carry no ttl) are refused.
    assert c.create("/a", flags=CreateMode.PERSISTENT_WITH_TTL).err == Err.BADARGUMENTS
    assert c.create2("/a", flags=CreateMode.PERSISTENT_WITH_TTL).err == Err.BADARGUMENTS
    assert c.exists("/a").err == Err.NONODE
    assert c.create_ttl("/a", ttl_ms=60000).err == OK


def test_ttl_disabled_without_extended_types(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind, settings={"extendedTypesEnabled": "false"},
                            jvm_properties={"zookeeper.extendedTypesEnabled": "false"})
    c = raw_factory(server)
    assert c.create_ttl("/t", ttl_ms=60000).err == Err.UNIMPLEMENTED
    assert c.create_container("/c").err == OK, "containers need no extended types"
