"""etcd's auth (users, roles, key permissions, simple tokens) through etcdctl 3.4, on etcd
and zkpy alike. Its own module, so its servers (auth on, then off) are its own."""

from __future__ import annotations

from tests.etcd.test_etcdctl import both


def test_users_roles_and_permissions(etcd_pair):
    def scenario(t, p):
        root = "--user=root:rootpw"
        alice = "--user=alice:alicepw"
        t.run("user", "add", "root:rootpw")
        t.run("auth", "enable")
        t.run(root, "user", "grant-role", "root", "root")
        t.run("auth", "enable")
        t.run(root, "auth", "enable")
        t.run(root, "user", "add", "alice:alicepw")
        t.run(root, "role", "add", "app")
        t.run(root, "role", "add", "app")
        t.run(root, "role", "grant-permission", "app", "readwrite", "/app/", "--prefix=true")
        t.run(root, "role", "grant-permission", "app", "read", "/shared")
        t.run(root, "user", "grant-role", "alice", "app")
        t.run(root, "user", "grant-role", "alice", "missing")
        t.run(alice, "put", "/app/x", "1")
        t.run(alice, "get", "/app/", "--prefix")
        t.run(alice, "put", "/other", "1")
        t.run(alice, "put", "/shared", "1")
        t.run(root, "put", "/shared", "s")
        t.run(alice, "get", "/shared")
        t.run(alice, "get", "/", "--prefix")
        t.run("get", "/app/x")
        t.run("--user=alice:wrong", "get", "/app/x")
        t.run(alice, "txn", stdin='value("/app/x") = "1"\n\nput /app/y "2"\n\nput /other "3"\n\n')
        t.run(alice, "user", "list")
        t.run(root, "user", "list")
        t.run(root, "user", "get", "alice")
        t.run(root, "role", "list")
        t.run(root, "role", "get", "app")
        t.run(root, "role", "revoke-permission", "app", "/app/", "--prefix=true")
        t.run(root, "role", "revoke-permission", "app", "/app/", "--prefix=true")
        t.run(alice, "get", "/app/x")
        t.run(root, "user", "revoke-role", "alice", "app")
        t.run(root, "user", "revoke-role", "alice", "app")
        t.run(root, "user", "delete", "root")
        t.run(root, "role", "delete", "app")
        t.run(root, "user", "passwd", "alice", "--interactive=false", stdin="newpw\n")
        t.run("--user=alice:newpw", "get", "/shared")
        t.run(root, "user", "delete", "alice")
        t.run(root, "auth", "disable")
        t.run("get", "/app/x")
        t.run("user", "list")
    both(etcd_pair, "", scenario)
