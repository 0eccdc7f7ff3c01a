"""Cross-server comparison: each test starts BOTH the reference ZooKeeper and zkpy, runs one
script against both in lockstep and compares every normalised reply and notification
(tests/support/normalize.py: zxids and session ids become labels, times are dropped, lists are
sorted). A difference fails with the first differing step and the steps before it.

``COMPAT_PEER=zookeeper`` compares the reference with itself (to validate the scripts).
"""

from __future__ import annotations

import time

from jute import records as r
from jute.constants import AddWatchMode, CreateMode, OpCode, Perms, WatcherType
from jute.opcodes import encode_multi_request
from tests.support.normalize import Lockstep
from tests.support.rawclient import (
    CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, op_check, op_create, op_create2,
    op_create_ttl, op_delete, op_get_children, op_get_data, op_set_data,
)

E, ES, PS = CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL, CreateMode.PERSISTENT_SEQUENTIAL


def lockstep(server_pair, **kwargs) -> Lockstep:
    reference, peer = server_pair(**kwargs)
    return Lockstep([reference, peer], labels=("zookeeper", peer.kind))


def acl(perms, scheme, ident):
    return r.ACL(int(perms), r.Id(scheme, ident))


def test_cross_crud_stats_and_sequences(server_pair):
    ls = lockstep(server_pair)
    ls.open("a")
    ls.open("b")
    ls.call("a", "exists", "/")
    ls.call("a", "create", "/app", b"root")
    ls.call("a", "create2", "/app/cfg", b"v1")
    ls.call("a", "create", "/app", b"again")
    ls.call("a", "create", "/nope/x")
    for bad in ("app", "/app/", "//", "/.", ""):
        ls.call("a", "create", bad)
    ls.call("a", "set_data", "/app/cfg", b"v2", 0)
    ls.call("b", "set_data", "/app/cfg", b"v3", 0)
    ls.call("b", "get_data", "/app/cfg")
    for _ in range(3):
        ls.call("a", "create", "/app/job-", b"", None, PS)
    ls.call("b", "create", "/app/lock-", b"", None, ES)
    ls.call("a", "create", "/app/eph", b"", None, E)
    ls.call("a", "create", "/app/eph/kid")
    ls.call("b", "delete", "/app/job-0000000002")
    ls.call("b", "create", "/app/job-", b"", None, PS)
    ls.call("a", "get_children", "/app")
    ls.call("a", "get_children2", "/app")
    ls.call("a", "exists", "/app")
    ls.call("a", "delete", "/app")
    ls.call("a", "delete", "/app/cfg", 5)
    ls.call("a", "delete", "/app/cfg", 2)
    ls.call("a", "exists", "/app")
    ls.call("a", "get_all_children_number", "/")
    ls.call("a", "get_all_children_number", "/app")
    ls.call("a", "get_ephemerals", "/")
    ls.call("b", "get_ephemerals", "/app")
    ls.call("a", "get_acl", "/app")
    ls.call("a", "set_acl", "/app", OPEN_ACL_UNSAFE, 0)
    ls.call("a", "set_acl", "/app", OPEN_ACL_UNSAFE, 0)
    ls.call("a", "sync", "/app")
    ls.call("a", "check", "/app", 3)
    ls.call("a", "create", "/null", None)
    ls.call("a", "get_data", "/null")
    ls.call("a", "get_children", "/zookeeper")
    ls.call("a", "delete", "/zookeeper")
    ls.call("a", "delete", "/")
    ls.call("a", "set_data", "/", b"root data")
    ls.call("b", "exists", "/")
    ls.call("a", "exists", "/app/eph")
    ls.close("a")
    ls.call("b", "exists", "/app/eph")
    ls.call("b", "get_children2", "/app")
    ls.call("b", "create", "/app/p-", b"", None, PS)


def test_cross_watches(server_pair):
    ls = lockstep(server_pair)
    ls.open("w")
    ls.open("c")
    ls.call("c", "create", "/a", b"1")
    ls.call("w", "get_data", "/a", True)
    ls.call("w", "exists", "/b", True)
    ls.call("w", "get_children", "/a", True)
    ls.call("c", "set_data", "/a", b"2")
    ls.events("w")
    ls.call("c", "create", "/b")
    ls.call("c", "create", "/a/x")
    ls.events("w")
    for method in ("get_data", "exists", "get_children"):
        ls.call("w", method, "/a/x", True)
    ls.call("w", "get_children", "/a", True)
    ls.call("c", "delete", "/a/x")
    ls.events("w")
    ls.call("w", "add_watch", "/p", AddWatchMode.PERSISTENT)
    ls.call("w", "add_watch", "/r", AddWatchMode.PERSISTENT_RECURSIVE)
    for path in ("/p", "/p/c", "/r", "/r/x", "/r/x/y"):
        ls.call("c", "create", path)
    ls.call("c", "set_data", "/p/c", b"x")
    ls.call("c", "set_data", "/r/x/y", b"x")
    ls.call("c", "delete", "/r/x/y")
    ls.call("c", "delete", "/p/c")
    ls.events("w")
    ls.call("w", "check_watches", "/p", WatcherType.Any)
    ls.call("w", "check_watches", "/nothing", WatcherType.Any)
    ls.call("w", "remove_watches", "/p", WatcherType.Data)
    ls.call("w", "remove_watches", "/p", WatcherType.Data)
    ls.call("w", "remove_watches", "/r", WatcherType.Any)
    ls.call("c", "set_data", "/p", b"1")
    ls.call("c", "create", "/p/d")
    ls.call("c", "create", "/r/z")
    ls.events("w")
    ls.call("w", "get_children", "/m", True)
    ls.call("c", "create", "/m")
    ls.call("w", "get_children", "/m", True)
    ls.call("w", "exists", "/m/a", True)
    ls.call("w", "get_data", "/m", True)
    ls.call("c", "multi", [op_create("/m/a"), op_create("/m/b"), op_set_data("/m", b"z")])
    ls.events("w")
    ls.call("w", "get_data", "/m", True)
    ls.call("w", "set_data", "/m", b"self")
    ls.events("w")
    ls.call("w", "add_watch", "/bad", 9)


def test_cross_multi(server_pair):
    ls = lockstep(server_pair)
    ls.open("a")
    ls.call("a", "multi", [op_create("/m", b"r"), op_create("/m/a", b"1"),
                           op_set_data("/m/a", b"2", 0), op_check("/m/a", 1),
                           op_delete("/m/a", 1), op_create2("/m/b"),
                           op_create("/m/s-", flags=PS), op_create("/m/e-", flags=ES)])
    ls.call("a", "multi", [op_create("/m/x"), op_set_data("/m", b"q"), op_check("/m", 5),
                           op_create("/m/y"), op_delete("/nonode")])
    ls.call("a", "multi", [op_delete("/nonode"), op_create("/m/z")])
    ls.call("a", "multi", [op_create("/m/ok1"), op_create("bad"), op_create("/m/ok2")])
    ls.call("a", "multi", [op_create("/m/c"), op_create("/m/c")])
    ls.call("a", "multi", [op_create("/m/c"), op_delete("/m")])
    ls.call("a", "multi", [])
    ls.call("a", "multi_read", [])
    ls.call("a", "multi_read", [op_get_data("/m"), op_get_children("/m"), op_get_data("/no"),
                                op_get_children("/no")])
    ls.call("a", "call", OpCode.multi, encode_multi_request([op_create("/w"), op_get_data("/")]))
    ls.call("a", "call", OpCode.multiRead,
            encode_multi_request([op_get_data("/"), op_create("/w")]))
    ls.call("a", "multi", [op_create_ttl("/ttl", ttl_ms=60000),
                           op_create("/cont", flags=CreateMode.CONTAINER,
                                     op=OpCode.createContainer), op_create("/cont/k")])
    ls.call("a", "multi", [op_create("/a"), op_create("/a/b"), op_delete("/a/b"),
                           op_delete("/a"), op_create("/a", b"again")])
    ls.call("a", "get_children", "/m")
    ls.call("a", "get_data", "/a")
    ls.call("a", "create", "/m/s-", b"", None, PS)


def test_cross_acl(server_pair):
    ls = lockstep(server_pair)
    for name in ("alice", "bob", "anon"):
        ls.open(name)
    ls.call("alice", "add_auth", "digest", "alice:pw")
    ls.call("bob", "add_auth", "digest", "bob:pw")
    ls.call("anon", "create", "/x", b"", CREATOR_ALL_ACL)
    ls.call("alice", "create", "/a", b"secret", CREATOR_ALL_ACL)
    ls.call("alice", "get_acl", "/a")
    for who in ("bob", "anon"):
        for method, args in (("get_data", ("/a",)), ("get_acl", ("/a",)),
                             ("get_children", ("/a",)), ("create", ("/a/k",)),
                             ("set_data", ("/a", b"x")), ("exists", ("/a",)),
                             ("set_acl", ("/a", OPEN_ACL_UNSAFE))):
            ls.call(who, method, *args)
    ls.call("alice", "create", "/ro", b"", [acl(Perms.READ, "auth", ""),
                                            acl(Perms.READ, "world", "anyone")])
    ls.call("bob", "get_acl", "/ro")
    ls.call("alice", "get_acl", "/ro")
    ls.call("alice", "create", "/ip", b"", [acl(Perms.ALL, "ip", "127.0.0.1")])
    ls.call("alice", "create", "/ip2", b"", [acl(Perms.ALL, "ip", "10.0.0.0/8")])
    ls.call("anon", "get_data", "/ip")
    ls.call("anon", "get_data", "/ip2")
    for bad in ([acl(Perms.ALL, "nosuch", "x")], [], [acl(Perms.ALL, "digest", "nocolon")],
                [acl(Perms.ALL, "ip", "bad")], [acl(Perms.ALL, "world", "x")]):
        ls.call("alice", "create", "/bad", b"", bad)
    ls.call("alice", "create", "/rd", b"", READ_ACL_UNSAFE)
    ls.call("alice", "set_data", "/rd", b"x")
    ls.call("alice", "create", "/rd/k")
    ls.call("bob", "delete", "/a/missing")
    ls.call("bob", "delete", "/a")
    ls.call("alice", "who_am_i")
    # Watch events are only delivered with READ on the node.
    ls.call("alice", "create", "/watched", b"", CREATOR_ALL_ACL)
    ls.call("anon", "exists", "/watched", True)
    ls.call("bob", "exists", "/watched", True)
    ls.call("anon", "add_watch", "/", AddWatchMode.PERSISTENT_RECURSIVE)
    ls.call("alice", "set_data", "/watched", b"1")
    ls.call("alice", "create", "/open-node")
    ls.events("anon")
    ls.events("bob")
    ls.call("anon", "add_auth", "digest", "nocolon")
    ls.call("anon", "who_am_i")
    ls.call("anon", "add_auth", "nosuch", "x")
    ls.call("anon", "exists", "/")


def test_cross_super_digest(server_pair):
    prop = {"zookeeper.DigestAuthenticationProvider.superDigest":
            "super:lK75jTNcA+U9vtVEw5vB51mj/w4="}
    ls = lockstep(server_pair, jvm_properties=prop)
    ls.open("owner")
    ls.open("root")
    ls.call("owner", "add_auth", "digest", "owner:pw")
    ls.call("owner", "create", "/p", b"mine", CREATOR_ALL_ACL)
    ls.call("root", "get_data", "/p")
    ls.call("root", "add_auth", "digest", "super:secret")
    ls.call("root", "get_data", "/p")
    ls.call("root", "set_acl", "/p", OPEN_ACL_UNSAFE)
    ls.call("root", "who_am_i")


def test_cross_sessions_and_set_watches(server_pair):
    ls = lockstep(server_pair)
    ls.open("w")
    ls.open("c")
    ls.open("e")
    ls.call("c", "create", "/s", b"1")
    ls.call("c", "create", "/s/k")
    ls.call("e", "create", "/s/e1", b"", None, E)
    ls.call("e", "create", "/s/e2", b"", None, E)
    ls.call("w", "get_children", "/s", True)
    ls.call("w", "exists", "/s/e1", True)
    ls.close("e")
    ls.events("w", ordered=False)
    # Reconnect with setWatches: the zxid each side has seen is its own.
    ls.call("w", "barrier")
    clients = ls.sessions["w"]
    seen = [client.last_zxid_seen for client in clients]
    creds = [(client.session_id, client.passwd) for client in clients]
    for client in clients:
        client.disconnect()
    ls.call("c", "set_data", "/s", b"2")
    ls.call("c", "create", "/s/new")
    resumed = [ls._raw("127.0.0.1", server.port, session_id=sid, passwd=pw, last_zxid_seen=z)
               for server, (sid, pw), z in zip(ls.servers, creds, seen)]
    ls.sessions["w"] = resumed
    ls.compare("resumed session", [ls.normalizers[i].session(c.session_id)
                                   for i, c in enumerate(resumed)])
    replies = [client.set_watches(z, data=["/s", "/gone"], exist=["/s/new", "/never"],
                                  child=["/s"]) for client, z in zip(resumed, seen)]
    ls.compare("setWatches", [n.reply(rep) for n, rep in zip(ls.normalizers, replies)])
    ls.events("w")
    ls.call("c", "create", "/never")
    ls.events("w")
    ls.call("w", "set_watches2", 1, ["/gone"], ["/never"], ["/gone2"], ["/pp"], ["/rr"])
    ls.events("w")
    ls.call("c", "create", "/pp")
    ls.call("c", "create", "/rr")
    ls.call("c", "create", "/rr/x")
    ls.events("w")
    ls.call("w", "who_am_i")
    ls.call("w", "ping")
    ls.call("w", "call", 99)
    ls.call("w", "exists", "/")


def test_cross_malformed_requests(server_pair):
    ls = lockstep(server_pair)
    ls.open("m")
    ls.call("m", "call", OpCode.create, b"\x00\x00\x00\x05/a")
    ls.call("m", "call", OpCode.exists, b"")
    ls.call("m", "call", OpCode.getData,
            r.GetDataRequest.encode(r.GetDataRequest("/", False)) + b"junk")
    ls.call("m", "call", OpCode.create, r.CreateRequest("/n", b"", None, 0))
    ls.call("m", "create", "/f", b"", None, 7)
    ls.call("m", "create_ttl", "/t", b"", 0)
    ls.call("m", "create", "/t", b"", None, CreateMode.PERSISTENT_WITH_TTL)
    ls.call("m", "call", OpCode.deleteContainer, r.DeleteRequest("/", -1))
    ls.call("m", "exists", "/")
    ls.open("big")
    ls.call("big", "call", OpCode.create,
            r.CreateRequest("/big", b"x" * (1024 * 1024 + 16), OPEN_ACL_UNSAFE, 0))
    ls.call("m", "exists", "/big")


def test_cross_containers_and_ttl(server_pair):
    ls = lockstep(server_pair)
    ls.open("c")
    ls.open("w")
    ls.call("c", "create_container", "/c")
    ls.call("c", "create", "/c/x")
    ls.call("c", "create_ttl", "/t", b"", 300)
    ls.call("w", "exists", "/c", True)
    ls.call("w", "exists", "/t", True)
    ls.call("c", "delete", "/c/x")
    deadline = time.monotonic() + 15
    for client in ls.sessions["w"]:
        while client.exists("/c").err == 0 or client.exists("/t").err == 0:
            assert time.monotonic() < deadline, "container or TTL node not reaped"
            time.sleep(0.05)
    ls.events("w", ordered=False)
    ls.call("w", "get_children", "/")
