"""kazoo's client API against each server kind: CRUD and exceptions, transactions (multi),
ACLs and auth, watches that survive a dropped connection (kazoo re-registers them with
setWatches), session expiry (LOST, ephemerals gone), and a server restart.
"""

from __future__ import annotations

import threading

import pytest
from kazoo.exceptions import (
    BadVersionError, NoAuthError, NodeExistsError, NoNodeError, NotEmptyError,
    RolledBackError, RuntimeInconsistency,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import make_digest_acl

from tests.support.normalize import sequence_number
from tests.support.rawclient import RawClient


def test_crud_and_exceptions(server_factory, server_kind, kazoo_factory):
    zk = kazoo_factory(server_factory(server_kind))
    assert zk.create("/a", b"1") == "/a"
    with pytest.raises(NodeExistsError):
        zk.create("/a")
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")
    assert zk.create("/deep/er/path", b"x", makepath=True) == "/deep/er/path"
    data, stat = zk.get("/a")
    assert data == b"1" and stat.version == 0 and stat.data_length == 1
    stat = zk.set("/a", b"22")
    assert stat.version == 1 and stat.mzxid > stat.czxid
    with pytest.raises(BadVersionError):
        zk.set("/a", b"x", version=0)
    with pytest.raises(NotEmptyError):
        zk.delete("/deep")
    zk.delete("/deep", recursive=True)
    assert zk.exists("/deep") is None
    first = zk.create("/a/s-", sequence=True)
    second = zk.create("/a/s-", sequence=True, ephemeral=True)
    assert sequence_number(second) == sequence_number(first) + 1
    assert zk.exists(second).ephemeralOwner == zk.client_id[0]
    assert sorted(zk.get_children("/a")) == sorted([first[3:], second[3:]])
    children, stat = zk.get_children("/a", include_data=True)
    assert stat.numChildren == 2
    path, stat = zk.create("/b", b"abc", include_data=True)
    assert path == "/b" and stat.dataLength == 3
    assert zk.sync("/a") == "/a"
    zk.ensure_path("/x/y/z")
    assert zk.exists("/x/y/z") is not None


def test_transactions(server_factory, server_kind, kazoo_factory):
    zk = kazoo_factory(server_factory(server_kind))
    zk.create("/t", b"0")
    tx = zk.transaction()
    tx.create("/t/a", b"1")
    tx.set_data("/t", b"1", version=0)
    tx.check("/t", 1)
    tx.delete("/t/a")
    results = tx.commit()
    assert results[0] == "/t/a" and results[1].version == 1
    assert results[2:] == [True, True]
    tx = zk.transaction()
    tx.create("/t/b")
    tx.check("/t", 7)
    tx.create("/t/c")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], BadVersionError)
    assert isinstance(results[2], RuntimeInconsistency)
    assert zk.get_children("/t") == []


def test_acl_and_auth(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    owner = kazoo_factory(server, auth_data=[("digest", "owner:pw")])
    other = kazoo_factory(server)
    acl = make_digest_acl("owner", "pw", all=True)
    owner.create("/secret", b"s", acl=[acl])
    assert owner.get("/secret")[0] == b"s"
    with pytest.raises(NoAuthError):
        other.get("/secret")
    other.add_auth("digest", "owner:pw")
    assert other.get("/secret")[0] == b"s"
    acls, stat = owner.get_acls("/secret")
    assert acls == [acl] and stat.aversion == 0
    owner.set_acls("/secret", [make_digest_acl("owner", "pw", read=True)])
    with pytest.raises(NoAuthError):
        owner.set("/secret", b"x")


def test_watches_fire_once_and_in_order(server_factory, server_kind, kazoo_factory, recorder):
    server = server_factory(server_kind)
    zk, writer = kazoo_factory(server), kazoo_factory(server)
    events = recorder()
    zk.create("/w", b"0")
    zk.get("/w", watch=events.append)
    zk.exists("/w/none", watch=events.append)
    zk.get_children("/w", watch=events.append)
    writer.set("/w", b"1")
    writer.set("/w", b"2")
    writer.create("/w/none")
    items = events.wait_for(lambda items: len(items) == 3)
    assert [(e.type, e.path) for e in items] == [
        (EventType.CHANGED, "/w"), (EventType.CREATED, "/w/none"), (EventType.CHILD, "/w")]


def test_data_watch_survives_connection_drop(server_factory, server_kind, kazoo_factory,
                                             recorder):
    """Another connection takes kazoo's session over, so the server drops kazoo's connection.
    kazoo (2.11 sends no setWatches) reports NONE to one-shot watchers, reconnects to the
    same session, and its DataWatch reads again: it ends with the change made meanwhile."""
    server = server_factory(server_kind)
    zk, writer = kazoo_factory(server), kazoo_factory(server)
    states = recorder()
    zk.add_listener(states.append)
    zk.create("/d", b"0")
    seen = recorder()
    zk.DataWatch("/d", lambda data, stat: seen.append(data))
    seen.wait_for(lambda items: items == [b"0"])
    one_shot = recorder()
    zk.get("/d", watch=one_shot.append)
    session_id, passwd = zk.client_id
    thief = RawClient("127.0.0.1", server.port, session_id=session_id, passwd=passwd)
    writer.set("/d", b"1")
    thief.disconnect()
    seen.wait_for(lambda items: items[-1] == b"1")
    states.wait_for(lambda items: KazooState.SUSPENDED in items)
    events = one_shot.wait_for(lambda items: len(items) >= 1)
    assert events[0].type in (EventType.NONE, EventType.CHANGED)
    zk.retry(zk.get, "/d")
    assert zk.client_id[0] == session_id, "same session after the reconnect"
    assert KazooState.LOST not in states.snapshot()


def test_session_expiry(server_factory, server_kind, kazoo_factory, recorder, expire):
    server = server_factory(server_kind)
    zk, observer = kazoo_factory(server), kazoo_factory(server)
    states = recorder()
    zk.add_listener(states.append)
    zk.create("/eph", ephemeral=True)
    gone = threading.Event()
    observer.exists("/eph", watch=lambda event: gone.set())
    old_session = zk.client_id[0]
    expire(server, *zk.client_id)
    assert gone.wait(20), "the ephemeral node did not go with its session"
    states.wait_for(lambda items: KazooState.LOST in items
                    and items[-1] == KazooState.CONNECTED)  # kazoo made a new session
    assert zk.client_id[0] != old_session
    assert observer.exists("/eph") is None


def test_server_restart_keeps_data_and_session(server_factory, server_kind, kazoo_factory,
                                               recorder):
    server = server_factory(server_kind)
    zk = kazoo_factory(server, timeout=20.0)
    zk.create("/persisted", b"data")
    zk.create("/persisted/s-", sequence=True)
    zk.create("/session-bound", ephemeral=True)
    session_id = zk.client_id[0]
    seen = recorder()
    zk.DataWatch("/persisted", lambda data, stat: seen.append(data))
    seen.wait_for(lambda items: items == [b"data"])
    server.restart()
    zk.retry(zk.exists, "/")  # waits for the reconnect
    assert zk.client_id[0] == session_id, "the session outlives a restart within its timeout"
    assert zk.get("/persisted")[0] == b"data"
    assert zk.exists("/session-bound") is not None
    assert zk.create("/persisted/s-", sequence=True) == "/persisted/s-0000000001"
    other = kazoo_factory(server)
    other.set("/persisted", b"new")
    seen.wait_for(lambda items: items[-1] == b"new")
