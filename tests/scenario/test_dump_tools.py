"""``zkpy dump-snapshot`` and ``zkpy dump-log`` on a data directory written by a real zkpy
server: what they print must agree with what clients saw."""

from __future__ import annotations

import base64
import json
import re

from tests.scenario.test_import import run_zkpy, server_zxid, start_client, stop_client

NODES = 60


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_dumps_agree_with_the_server(server_factory):
    server = server_factory("zkpy", settings={"snapCount": "40"})
    client = start_client(server.connect_string)
    client.create("/dump", b"root of the test")
    for i in range(NODES):
        client.create(f"/dump/n{i}", f"value-{i}".encode())
    for i in range(5):
        client.set("/dump/n0", f"changed-{i}".encode())
    client.create("/dump/eph", b"\x00\xff", ephemeral=True)
    txn = client.transaction()
    txn.create("/dump/m1", b"from a multi")
    txn.set_data("/dump/n1", b"set in a multi")
    txn.commit()
    client.delete("/dump/n2")
    live = {}
    for name in client.get_children("/dump"):
        data, stat = client.get(f"/dump/{name}")
        live[f"/dump/{name}"] = (data, stat)
    zxid = server_zxid(server)
    session_id = client.client_id[0]

    # The log can be read while the server runs (the database is opened read-only).
    running = _json_lines(run_zkpy("dump-log", str(server.data_dir), "--json").stdout)
    assert running and running[-1]["zxid"] == f"{zxid:#x}"

    server.stop()
    stop_client(client)

    # -- dump-snapshot --------------------------------------------------------------------------
    lines = _json_lines(run_zkpy("dump-snapshot", str(server.data_dir), "--json", "--data").stdout)
    header, rest = lines[0], lines[1:]
    assert header["kind"] == "snapshot" and header["source"] == "zkpy"
    snapshot_zxid = int(header["zxid"], 16)
    assert 0 < snapshot_zxid <= zxid
    nodes = {item["path"]: item for item in rest if item["kind"] == "node"}
    sessions = [item for item in rest if item["kind"] == "session"]
    assert header["nodes"] == len(nodes) and header["sessions"] == len(sessions)
    assert nodes["/zookeeper/config"]["aversion"] == -1
    assert nodes["/"]["numChildren"] == sum(1 for p in nodes if p.count("/") == 1 and p != "/")
    checked = 0
    for path, (data, stat) in live.items():
        if stat.czxid > snapshot_zxid:
            assert path not in nodes, f"{path} was created after the snapshot"
            continue
        dumped = nodes[path]
        if stat.mzxid <= snapshot_zxid:  # unchanged since the snapshot
            checked += 1
            assert base64.b64decode(dumped["data"]) == data
            assert dumped["dataLength"] == len(data)
            assert (int(dumped["czxid"], 16), int(dumped["mzxid"], 16), dumped["ctime"],
                    dumped["mtime"], dumped["version"], dumped["aversion"]) == (
                stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.version, stat.aversion)
            assert int(dumped["ephemeralOwner"], 16) == stat.ephemeralOwner
            assert dumped["acl"] == [{"perms": 31, "scheme": "world", "id": "anyone"}]
    assert checked >= 10
    assert any(int(s["id"], 16) == session_id and s["timeout"] == 30000 for s in sessions)

    text = run_zkpy("dump-snapshot", str(server.data_dir)).stdout.splitlines()
    assert text[0].startswith(f"zkpy {server.data_dir / 'zkpy-db'}: zxid {header['zxid']}, "
                              f"{len(nodes)} znodes, {len(sessions)} sessions, taken "), text[0]
    n5 = next(line for line in text if line.startswith("/dump/n5 "))
    stat5 = live["/dump/n5"][1]
    assert f"czxid={stat5.czxid:#x}" in n5 and "version=0" in n5 and "dataLength=7" in n5
    assert "acl=world:anyone:cdrwa" in n5
    assert sum(1 for line in text if line.startswith("/")) == len(nodes)

    # -- dump-log -------------------------------------------------------------------------------
    txns = _json_lines(run_zkpy("dump-log", str(server.data_dir), "--json").stdout)
    zxids = [int(t["zxid"], 16) for t in txns]
    assert zxids == sorted(set(zxids)) and zxids[-1] == zxid
    assert zxids[0] <= snapshot_zxid + 1  # the log covers everything after the snapshot
    by_zxid = {int(t["zxid"], 16): t for t in txns}
    for path, (data, stat) in live.items():
        if stat.czxid in by_zxid and path != "/dump/m1":
            create = by_zxid[stat.czxid]
            assert create["type"] in ("create", "create2") and create["record"]["path"] == path
            assert int(create["session"], 16) == session_id
    versions = [t["record"]["version"] for t in txns
                if t["type"] == "setData" and t["record"]["path"] == "/dump/n0"]
    assert versions == list(range(6 - len(versions), 6))
    multi = [t for t in txns if t["type"] == "multi"]
    assert len(multi) == 1
    assert [(s["type"], s["record"]["path"]) for s in multi[0]["record"]["txns"]] == [
        ("create", "/dump/m1"), ("setData", "/dump/n1")]
    assert base64.b64decode(multi[0]["record"]["txns"][1]["record"]["data"]) == b"set in a multi"
    deleted = [t for t in txns if t["type"] == "delete"]
    assert [t["record"]["path"] for t in deleted] == ["/dump/n2"]

    text = run_zkpy("dump-log", str(server.data_dir)).stdout.splitlines()
    assert text[-1] == f"{len(txns)} txns"
    assert len(text) == len(txns) + 1
    line = next(line for line in text if f"zxid {deleted[0]['zxid']} " in line)
    assert re.match(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z session {session_id:#x} cxid 0x[0-9a-f]+ "
                    rf"zxid {deleted[0]['zxid']} delete path='/dump/n2'$", line), line
    assert any("multi [create path='/dump/m1'" in line for line in text)

    window = _json_lines(run_zkpy("dump-log", str(server.data_dir), "--json", "--from-zxid",
                                  hex(zxids[-5]), "--limit", "3").stdout)
    assert [int(t["zxid"], 16) for t in window] == zxids[-5:-2]
