"""ACL decisions over the raw protocol, per server kind (expectations: ZooKeeper 3.8.0).

Schemes: world, auth, digest, ip, and the super user configured with
``-Dzookeeper.DigestAuthenticationProvider.superDigest`` (a JVM property for the reference;
zkpy is expected to honour the same property name passed in jvm_properties).
"""

from __future__ import annotations

import base64
import hashlib

from jute import records as r
from jute.constants import Err, OpCode, Perms
from tests.support.rawclient import (
    CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, op_create, op_set_data,
)

OK = Err.OK


def digest_id(user: str, password: str) -> str:
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


def acl(perms, scheme, ident):
    return r.ACL(int(perms), r.Id(scheme, ident))


SUPER_PROPERTY = "zookeeper.DigestAuthenticationProvider.superDigest"


def test_auth_scheme_acl(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    alice, bob, anon = raw_factory(server), raw_factory(server), raw_factory(server)
    assert alice.add_auth("digest", "alice:pw").err == OK
    assert bob.add_auth("digest", "bob:pw").err == OK
    assert anon.create("/x", acl=CREATOR_ALL_ACL).err == Err.INVALIDACL, "auth without auth ids"
    assert alice.create("/a", b"secret", acl=CREATOR_ALL_ACL).err == OK
    got = alice.get_acl("/a").response
    assert got.acl == [acl(Perms.ALL, "digest", digest_id("alice", "pw"))]
    for who in (bob, anon):
        assert who.get_data("/a").err == Err.NOAUTH
        assert who.get_acl("/a").err == Err.NOAUTH
        assert who.get_children("/a").err == Err.NOAUTH
        assert who.get_children2("/a").err == Err.NOAUTH
        assert who.create("/a/kid").err == Err.NOAUTH
        assert who.set_data("/a", b"x").err == Err.NOAUTH
        assert who.set_acl("/a", OPEN_ACL_UNSAFE).err == Err.NOAUTH
        # exists needs no permission.
        assert who.exists("/a").err == OK
    assert alice.get_data("/a").response.data == b"secret"
    assert alice.create("/a/kid").err == OK
    # Deleting needs DELETE on the parent, not on the node.
    assert bob.delete("/a/kid").err == Err.NOAUTH
    assert alice.delete("/a/kid").err == OK
    assert bob.delete("/a").err == OK, "the root's ACL is world:anyone"
    # The auth scheme takes every id the session has authenticated with.
    bob.add_auth("digest", "carol:pw")
    assert bob.create("/two", acl=CREATOR_ALL_ACL).err == OK
    assert sorted(a.id.id for a in bob.get_acl("/two").response.acl) == sorted(
        [digest_id("bob", "pw"), digest_id("carol", "pw")])
    assert all(a.perms == Perms.ALL for a in bob.get_acl("/two").response.acl)


def test_digest_acl_and_set_acl(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    alice, bob, anon = raw_factory(server), raw_factory(server), raw_factory(server)
    alice.add_auth("digest", "alice:pw")
    bob.add_auth("digest", "bob:pw")
    acls = [acl(Perms.READ, "digest", digest_id("bob", "pw")),
            acl(Perms.ALL, "digest", digest_id("alice", "pw"))]
    assert alice.create("/d", b"d", acl=acls).err == OK
    assert bob.get_data("/d").response.data == b"d"
    assert bob.set_data("/d", b"q").err == Err.NOAUTH
    assert anon.get_data("/d").err == Err.NOAUTH
    # A wrong password is accepted by addauth but matches nothing.
    liar = raw_factory(server)
    assert liar.add_auth("digest", "bob:wrong").err == OK
    assert liar.get_data("/d").err == Err.NOAUTH
    assert bob.set_acl("/d", OPEN_ACL_UNSAFE).err == Err.NOAUTH, "setACL needs ADMIN"
    assert alice.set_acl("/d", OPEN_ACL_UNSAFE, version=5).err == Err.BADVERSION
    reply = alice.set_acl("/d", acls + [acl(Perms.WRITE, "digest", digest_id("bob", "pw"))],
                          version=0)
    assert reply.err == OK and reply.response.stat.aversion == 1
    assert bob.set_data("/d", b"bob").err == OK
    got = anon.exists("/d").response.stat
    assert (got.aversion, got.version) == (1, 1)
    # getACL needs READ or ADMIN.
    assert alice.set_acl("/d", [acl(Perms.WRITE, "world", "anyone")]).err == OK
    assert anon.get_acl("/d").err == Err.NOAUTH
    assert anon.set_data("/d", b"w").err == OK


def test_permission_bits(server_factory, server_kind, raw_factory):
    c = raw_factory(server_factory(server_kind))
    assert c.create("/ro", acl=READ_ACL_UNSAFE).err == OK
    assert c.get_data("/ro").err == OK
    assert c.set_data("/ro", b"1").err == Err.NOAUTH
    assert c.create("/ro/c").err == Err.NOAUTH
    assert c.get_children("/ro").err == OK
    assert c.create("/none", acl=[acl(0, "world", "anyone")]).err == OK
    assert c.get_data("/none").err == Err.NOAUTH
    assert c.get_acl("/none").err == Err.NOAUTH
    assert c.exists("/none").err == OK
    assert c.delete("/none").err == OK
    # CREATE without DELETE: children can be made but not removed.
    assert c.create("/cr", acl=[acl(Perms.CREATE | Perms.READ, "world", "anyone")]).err == OK
    assert c.create("/cr/kid").err == OK
    assert c.delete("/cr/kid").err == Err.NOAUTH
    # DELETE without CREATE.
    assert c.create("/dl").err == OK
    assert c.create("/dl/kid").err == OK
    assert c.set_acl("/dl", [acl(Perms.DELETE, "world", "anyone")]).err == OK
    assert c.create("/dl/other").err == Err.NOAUTH
    assert c.delete("/dl/kid").err == OK
    # ADMIN alone: getACL and setACL work, nothing else.
    assert c.create("/ad", b"x", acl=[acl(Perms.ADMIN, "world", "anyone")]).err == OK
    assert c.get_acl("/ad").err == OK
    assert c.get_data("/ad").err == Err.NOAUTH
    assert c.set_acl("/ad", OPEN_ACL_UNSAFE).err == OK
    assert c.get_data("/ad").response.data == b"x"


def test_invalid_acls(server_factory, server_kind, raw_factory):
    c = raw_factory(server_factory(server_kind))
    c.add_auth("digest", "u:p")
    for bad in ([acl(Perms.ALL, "nosuch", "x")], [], [acl(Perms.ALL, "digest", "nocolon")],
                [acl(Perms.ALL, "ip", "notanip")], [acl(Perms.ALL, "world", "someone")]):
        assert c.create("/i", acl=bad).err == Err.INVALIDACL, bad
    assert c.call(OpCode.create, r.CreateRequest("/i", b"", None, 0)).err == Err.INVALIDACL
    c.create("/n")
    assert c.set_acl("/n", [acl(Perms.ALL, "nosuch", "x")]).err == Err.INVALIDACL
    assert c.set_acl("/n", []).err == Err.INVALIDACL
    assert c.exists("/i").err == Err.NONODE
    # auth ACLs are stored as the session's digest ids (the id given with "auth" is ignored).
    assert c.create("/auth", acl=[acl(Perms.ALL, "auth", "ignored")]).err == OK
    assert c.get_acl("/auth").response.acl == [acl(Perms.ALL, "digest", digest_id("u", "p"))]
    # Duplicate entries are stored once.
    assert c.create("/dup", acl=OPEN_ACL_UNSAFE * 2).err == OK
    assert c.get_acl("/dup").response.acl == OPEN_ACL_UNSAFE


def test_get_acl_without_admin_masks_digests(server_factory, server_kind, raw_factory):
    """getACL needs READ or ADMIN; without ADMIN the digest hashes come back as "user:x"."""
    server = server_factory(server_kind)
    c, other = raw_factory(server), raw_factory(server)
    c.add_auth("digest", "u:p")
    assert c.create("/r", acl=[acl(Perms.READ, "auth", ""),
                               acl(Perms.READ, "world", "anyone")]).err == OK
    assert c.get_acl("/r").response.acl == [acl(Perms.READ, "digest", "u:x"),
                                            acl(Perms.READ, "world", "anyone")]
    assert other.get_acl("/r").response.acl == [acl(Perms.READ, "digest", "u:x"),
                                                acl(Perms.READ, "world", "anyone")]
    assert c.create("/a", acl=[acl(Perms.ADMIN, "auth", ""),
                               acl(Perms.READ, "world", "anyone")]).err == OK
    assert c.get_acl("/a").response.acl[0] == acl(Perms.ADMIN, "digest", digest_id("u", "p"))
    assert other.get_acl("/a").response.acl[0] == acl(Perms.ADMIN, "digest", "u:x")


def test_ip_acl(server_factory, server_kind, raw_factory):
    c = raw_factory(server_factory(server_kind))
    assert c.create("/ip", acl=[acl(Perms.ALL, "ip", "127.0.0.1")]).err == OK
    assert c.get_data("/ip").err == OK
    assert c.create("/ipo", acl=[acl(Perms.ALL, "ip", "10.1.2.3")]).err == OK
    assert c.get_data("/ipo").err == Err.NOAUTH
    assert c.create("/cidr", acl=[acl(Perms.ALL, "ip", "127.0.0.0/8")]).err == OK
    assert c.get_data("/cidr").err == OK
    assert c.create("/cidr2", acl=[acl(Perms.ALL, "ip", "10.0.0.0/8")]).err == OK
    assert c.get_data("/cidr2").err == Err.NOAUTH


def test_addauth(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind)
    c = raw_factory(server)
    reply = c.add_auth("digest", "u:p")
    assert (reply.xid, reply.zxid, reply.err, reply.body) == (-4, 0, OK, b"")
    # Any xid is echoed on the reply.
    reply = c.call(OpCode.auth, r.AuthPacket(0, "digest", b"v:q"), xid=5)
    assert (reply.xid, reply.err) == (5, OK)
    # A digest credential without a colon is accepted (and matches no ACL).
    assert c.add_auth("digest", "nocolon").err == OK
    assert c.exists("/").err == OK
    # An unknown scheme: AUTHFAILED, then the server closes the connection.
    d = raw_factory(server)
    reply = d.add_auth("nosuch", "x")
    assert (reply.xid, reply.err) == (-4, Err.AUTHFAILED)
    assert d.outcome(OpCode.exists, r.ExistsRequest("/", False)) == "closed"


def test_super_digest(server_factory, server_kind, raw_factory):
    server = server_factory(server_kind,
                            jvm_properties={SUPER_PROPERTY: digest_id("super", "secret")})
    owner, root, wrong = raw_factory(server), raw_factory(server), raw_factory(server)
    owner.add_auth("digest", "owner:pw")
    owner.create("/private", b"mine", acl=CREATOR_ALL_ACL)
    owner.create("/none", b"z", acl=[acl(0, "world", "anyone")])
    assert root.add_auth("digest", "super:secret").err == OK
    assert root.get_data("/private").response.data == b"mine"
    assert root.get_data("/none").response.data == b"z"
    assert root.set_data("/private", b"taken").err == OK
    assert root.create("/none/kid").err == OK
    assert root.set_acl("/private", OPEN_ACL_UNSAFE).err == OK
    info = sorted((i.auth_scheme, i.user) for i in root.who_am_i().response.client_info)
    assert info == [("digest", "super"), ("ip", "127.0.0.1"), ("super", "")]
    assert wrong.add_auth("digest", "super:wrong").err == OK
    assert wrong.get_data("/none").err == Err.NOAUTH
    assert wrong.get_data("/private").response.data == b"taken"


def test_acl_and_existence_check_order(server_factory, server_kind, raw_factory):
    """Which comes first, NONODE or NOAUTH: create and delete check the parent's ACL, so
    deleting a missing child of a locked parent is NOAUTH; setData/getData on a missing node
    and create under a missing parent are NONODE."""
    server = server_factory(server_kind)
    owner, other = raw_factory(server), raw_factory(server)
    owner.add_auth("digest", "o:p")
    owner.create("/p", acl=CREATOR_ALL_ACL)
    assert other.get_data("/p/missing").err == Err.NONODE
    assert other.create("/p/missing/kid").err == Err.NONODE
    assert other.set_data("/p/missing", b"").err == Err.NONODE
    assert other.delete("/p/missing").err == Err.NOAUTH
    assert other.create("/p").err == Err.NODEEXISTS
    assert other.create("/p/new").err == Err.NOAUTH
    reply = other.multi([op_create("/p/new"), op_set_data("/p", b"")])
    assert [(x.err) for x in reply.response] == [Err.NOAUTH, Err.RUNTIMEINCONSISTENCY]


def test_watch_events_require_read_permission(server_factory, server_kind, raw_factory):
    """The reference (Debian's 3.8.0-11+deb12u2, which carries the CVE-2024-23944 fix, as
    upstream 3.8.4+ does) checks, when a watch triggers, that the watching session has READ
    on the node the event is about (the parent for NodeChildrenChanged); otherwise the event
    is dropped, and a one-shot watch is used up all the same. This holds for every kind of
    watch: exists/getData, child, persistent and persistent-recursive."""
    from tests.support.normalize import Normalizer

    server = server_factory(server_kind)
    watcher, owner, peer = raw_factory(server), raw_factory(server), raw_factory(server)
    owner.add_auth("digest", "u:p")
    peer.add_auth("digest", "u:p")

    def events(client):
        client.barrier()
        return [Normalizer.event(e) for e in client.take_events()]

    owner.create("/g", acl=CREATOR_ALL_ACL)
    watcher.exists("/g", watch=True)  # exists needs no permission and sets the watch
    peer.exists("/g", watch=True)
    owner.set_data("/g", b"1")
    assert events(watcher) == []
    assert events(peer) == [("NodeDataChanged", 3, "/g")]
    owner.set_acl("/g", OPEN_ACL_UNSAFE)
    owner.set_data("/g", b"2")
    assert events(watcher) == [], "the suppressed one-shot watch was used up"

    watcher.exists("/e", watch=True)
    owner.create("/e", acl=CREATOR_ALL_ACL)
    assert events(watcher) == []
    owner.create("/w", acl=[acl(Perms.WRITE, "world", "anyone"), acl(Perms.ALL, "auth", "")])
    watcher.exists("/w", watch=True)
    owner.set_data("/w", b"x")
    assert events(watcher) == [], "WRITE is not enough"
    owner.create("/z")
    owner.create("/z/c", acl=CREATOR_ALL_ACL)
    watcher.exists("/z/c", watch=True)
    watcher.get_children("/z", watch=True)
    owner.delete("/z/c")
    assert events(watcher) == [("NodeChildrenChanged", 3, "/z")], "the parent is readable"

    watcher.add_watch("/r", 1)
    owner.create("/r")
    owner.create("/r/locked", acl=CREATOR_ALL_ACL)
    owner.create("/r/open")
    owner.set_data("/r/locked", b"1")
    owner.delete("/r/locked")
    assert events(watcher) == [("NodeCreated", 3, "/r"), ("NodeCreated", 3, "/r/open")]
    owner.create("/p", acl=CREATOR_ALL_ACL)
    watcher.add_watch("/p", 0)
    owner.create("/p/kid")
    owner.set_data("/p", b"1")
    assert events(watcher) == []
    owner.create("/q")
    watcher.add_watch("/q", 0)
    owner.create("/q/locked", acl=CREATOR_ALL_ACL)
    assert events(watcher) == [("NodeChildrenChanged", 3, "/q")]
