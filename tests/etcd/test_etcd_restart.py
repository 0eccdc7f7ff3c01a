"""The etcd keyspace is made durable and recovered with the znode tree: after a restart (and
after a SIGKILL) every acknowledged put is there at its revision, a lease whose client keeps
it alive keeps its keys, and a watch from before the restart gets etcd's compacted answer."""

from __future__ import annotations

import json

import pytest

from tests.support.etcdservers import EtcdServer, etcdctl


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_keys_and_leases_survive_a_restart(tmp_path, how):
    server = EtcdServer("zkpy", tmp_path / "zkpy", client_port=None).start()
    try:
        revisions = {}
        for i in range(20):
            put = json.loads(etcdctl(server.endpoint, "put", f"/d/{i:02d}", str(i), "-w",
                                     "json").stdout)
            revisions[f"/d/{i:02d}"] = put["header"]["revision"]
        lease = etcdctl(server.endpoint, "lease", "grant", "60").stdout.split()[1]
        etcdctl(server.endpoint, "put", "/d/leased", "x", f"--lease={lease}")
        server.stop() if how == "stop" else server.kill()
        server.start()
        got = json.loads(etcdctl(server.endpoint, "get", "/d/", "--prefix", "-w", "json").stdout)
        import base64
        stored = {base64.b64decode(kv["key"]).decode(): kv["mod_revision"] for kv in got["kvs"]}
        assert {k: stored[k] for k in revisions} == revisions
        assert "/d/leased" in stored
        alive = etcdctl(server.endpoint, "lease", "keep-alive", "--once", lease).stdout
        assert "keepalived with TTL(60)" in alive
        first = min(revisions.values())
        # etcdctl's watch ends by itself when the server cancels it.
        cancelled = etcdctl(server.endpoint, "watch", "/d/00", f"--rev={first}", check=False)
        assert "required revision has been compacted" in cancelled.stdout + cancelled.stderr
    finally:
        server.stop()
