"""One store behind both APIs (docs/etcd.md): what etcdctl writes, ZooKeeper clients read as
znodes, and the other way round; a lease is a session that `dump` lists with its keys."""

from __future__ import annotations

from kazoo.client import KazooClient

from tests.support.ensemble_fixtures import wait_for
from tests.support.etcdservers import etcdctl
from tests.support.servers import four_letter_word


def test_etcd_keys_are_znodes_and_znodes_are_etcd_keys(etcd_pair, prefix):
    server = etcd_pair["zkpy"]
    at = server.endpoint
    etcdctl(at, "put", f"{prefix}/myapp/config", "config_data")
    client = KazooClient(hosts=f"127.0.0.1:{server.zk_port}")
    client.start(timeout=15)
    try:
        name = "/etcd/kv/" + f"{prefix}/myapp/config".replace("/", "%2F")
        data, stat = client.get(name)
        assert data == b"config_data" and stat.version == 0
        client.set(name, b"set by kazoo")
        assert etcdctl(at, "get", f"{prefix}/myapp/config", "--print-value-only").stdout == \
            "set by kazoo\n"
        client.create("/etcd/kv/" + f"{prefix}/from-zk".replace("/", "%2F"), b"created by kazoo")
        assert etcdctl(at, "get", f"{prefix}/from-zk", "--print-value-only").stdout == \
            "created by kazoo\n"
        # A child whose name the escaping could not have made is no etcd key.
        client.create("/etcd/kv/not%2fescaped", b"x")
        listed = etcdctl(at, "get", "", "--from-key", "--keys-only").stdout.split()
        assert "not/escaped" not in listed and "not%2fescaped" not in listed

        lease = etcdctl(at, "lease", "grant", "30").stdout.split()[1]
        etcdctl(at, "put", f"{prefix}/svc/a", "up", f"--lease={lease}")
        dump = four_letter_word(server.zk_port, "dump")
        session = f"0x{int(lease, 16):x}"
        assert session in dump, dump
        section = dump[dump.index(session):]
        assert "/etcd/kv/" + f"{prefix}/svc/a".replace("/", "%2F") in section
        assert f"/etcd/leases/{int(lease, 16):016x}" in section
        etcdctl(at, "lease", "revoke", lease)
        wait_for(lambda: session not in four_letter_word(server.zk_port, "dump"),
                 "the revoked lease's session gone from dump")
    finally:
        client.stop()
        client.close()


def test_the_dashboard_lists_a_lease(tmp_path):
    import json
    import urllib.request

    from tests.support.etcdservers import EtcdServer
    from tests.support.servers import free_port

    admin_port = free_port()
    server = EtcdServer("zkpy", tmp_path / "zkpy", settings={
        "admin.enableServer": "true", "admin.serverPort": str(admin_port),
        "admin.serverAddress": "127.0.0.1"}).start()
    try:
        lease = etcdctl(server.endpoint, "lease", "grant", "30").stdout.split()[1]
        etcdctl(server.endpoint, "put", "/svc/a", "up", f"--lease={lease}")
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/sessions",
                                    timeout=10) as reply:
            sessions = json.load(reply)["sessions"]
        listed = {s["sessionId"]: s for s in sessions}
        entry = listed[f"0x{int(lease, 16):x}"]
        assert entry["client"] == "etcd lease" and entry["ephemerals"] == 2
        assert entry["timeoutMs"] == 30_000
        assert any(s["client"] == "etcd front end" for s in sessions)
    finally:
        server.stop()
