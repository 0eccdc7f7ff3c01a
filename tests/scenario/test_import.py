"""Migration between ZooKeeper's data directory and zkpy's.

* ``zkpy import --from-zookeeper``: the reference ZooKeeper writes varied data (snapCount 50,
  so several fuzzy snapshots and logs exist), is stopped, its dataDir is imported, and zkpy
  started on the result must show every znode (data, ACL, every Stat field) and the zxid the
  reference showed before it stopped; also with gz and snappy compressed snapshots.
* ``zkpy export --to-zookeeper``: zkpy's data written as a ZooKeeper snapshot, which the
  reference loads and serves identically.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from tests.support.rawclient import RawClient
from tests.support.servers import REPO_ROOT, four_letter_word
from zkpy.tools.zkpydata import open_read_only

TTL_MS = 3_600_000


def run_zkpy(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-m", "zkpy", *args], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, f"zkpy {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def server_zxid(server) -> int:
    reply = four_letter_word(server.port, "srvr")
    match = re.search(r"^Zxid: (0x[0-9a-fA-F]+)$", reply, re.MULTILINE)
    assert match, reply
    return int(match.group(1), 16)


def start_client(connect_string: str, timeout_s: float = 30.0) -> KazooClient:
    client = KazooClient(connect_string, timeout=timeout_s)
    client.start(timeout=20)
    client.add_auth("digest", "alice:secret")
    return client


def stop_client(client: KazooClient) -> None:
    client.stop()
    client.close()


def write_varied_data(connect_string: str, small: bool = False) -> KazooClient:
    """Write a bit of everything; returns the still-open writer (its session owns ephemerals)."""
    rng = random.Random(20240611)
    writer = start_client(connect_string)
    writer.ensure_path("/app/config/deep/er/than/that/one")
    writer.create("/app/binary", bytes(range(256)) * 3)
    writer.create("/app/empty", b"")
    writer.create("/app/unicode-\u00e9\u4e2d", "donn\u00e9es".encode())
    writer.create("/secure", b"s", acl=[make_digest_acl("alice", "secret", all=True),
                                        make_acl("world", "anyone", read=True)])
    writer.create("/secure/private", b"p", acl=[make_digest_acl("alice", "secret", all=True)])
    writer.create("/creator", b"c", acl=[make_acl("auth", "", all=True)])
    writer.set_acls("/app/binary", [make_acl("world", "anyone", read=True, write=True, admin=True)])
    writer.set_acls("/app/binary", [make_acl("world", "anyone", all=True)])
    if not small:
        writer.create("/app/large", rng.randbytes(700_000))  # crosses the readers' chunk edges
    for i in range(10 if small else 30):
        writer.create("/queue/item-", b"%d" % i, sequence=True, makepath=True)
    for name in sorted(writer.get_children("/queue"))[::3]:
        writer.delete(f"/queue/{name}")
    for i in range(40 if small else 120):
        writer.set("/app/config", b"version %d" % i)
    writer.ensure_path("/multi")
    txn = writer.transaction()
    txn.create("/multi/a", b"1")
    txn.create("/multi/b", b"2")
    txn.set_data("/app/empty", b"now set")
    txn.check("/app/binary", 0)
    txn.commit()
    failed = writer.transaction()  # a multi that fails is logged as error sub-txns
    failed.create("/multi/never", b"x")
    failed.check("/app/binary", 99)
    failed.commit()
    txn = writer.transaction()
    txn.delete("/multi/b")
    txn.set_data("/multi/a", b"1b")
    txn.commit()
    writer.create("/live/eph", b"mine", ephemeral=True, makepath=True)
    writer.create("/live/eph-seq-", b"", ephemeral=True, sequence=True)
    other = start_client(connect_string)
    other.create("/live/gone", b"x", ephemeral=True)
    other.create("/live/kept", b"persistent")
    stop_client(other)  # closeSession deletes /live/gone
    raw = RawClient.from_connect_string(connect_string)
    try:
        assert raw.create_container("/cont").ok
        assert raw.create("/cont/child", b"c").ok
        assert raw.create_ttl("/ttl", b"t", ttl_ms=TTL_MS).ok
        assert raw.create("/nulldata", None).ok
    finally:
        raw.close_session()
    for i in range(5 if small else 20):
        writer.create(f"/deep/l{i % 4}/n{i}", rng.randbytes(i * 7), makepath=True)
    writer.delete("/deep/l3", recursive=True)
    return writer


def collect_tree(client: KazooClient) -> dict:
    """Every znode with its data, ACL and full Stat, as a client sees them."""
    tree = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = client.get(path)
        acls, _ = client.get_acls(path)
        tree[path] = {
            "data": data,
            "acl": sorted((a.perms, a.id.scheme, a.id.id) for a in acls),
            "stat": tuple(stat),
        }
        for child in client.get_children(path):
            stack.append(path.rstrip("/") + "/" + child)
    return tree


def assert_same_tree(expected: dict, actual: dict) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing and not extra, f"missing {missing}, extra {extra}"
    fields = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
              "ephemeralOwner", "dataLength", "numChildren", "pzxid")
    problems = []
    for path in sorted(expected):
        want, got = expected[path], actual[path]
        if want["data"] != got["data"]:
            problems.append(f"{path}: data differs ({len(want['data'] or b'')} vs {len(got['data'] or b'')} bytes)")
        if want["acl"] != got["acl"]:
            problems.append(f"{path}: acl {want['acl']} vs {got['acl']}")
        for name, a, b in zip(fields, want["stat"], got["stat"]):
            if a != b:
                problems.append(f"{path}: {name} {a} vs {b}")
    assert not problems, "\n".join(problems)


def zookeeper_files(data_dir: Path) -> tuple[list[str], list[str]]:
    names = sorted(p.name for p in (data_dir / "version-2").iterdir())
    return ([n for n in names if n.startswith("snapshot.")], [n for n in names if n.startswith("log.")])


def reference_with_data(server_factory, jvm_properties=None, small=False):
    """Run the reference, write the data, read it back; returns (data dir, tree, zxid)."""
    reference = server_factory("zookeeper", settings={"snapCount": "50"},
                               jvm_properties=jvm_properties)
    writer = write_varied_data(reference.connect_string, small=small)
    tree = collect_tree(writer)
    zxid = server_zxid(reference)
    reference.stop()  # the writer's session is still open: its ephemerals stay in the data
    stop_client(writer)
    return reference.data_dir, tree, zxid


def check_zkpy_serves(server_factory, datadir: Path, tree: dict, zxid: int,
                      settings: dict | None = None) -> None:
    zkpy = server_factory("zkpy", settings=settings or {"dataDir": str(datadir)})
    assert server_zxid(zkpy) == zxid
    reader = start_client(zkpy.connect_string)
    try:
        assert_same_tree(tree, collect_tree(reader))
    finally:
        stop_client(reader)


def test_import_from_zookeeper_serves_the_same_tree(server_factory, tmp_path):
    data_dir, tree, zxid = reference_with_data(server_factory)
    snapshots, logs = zookeeper_files(data_dir)
    assert len(snapshots) >= 3 and len(logs) >= 3, (snapshots, logs)  # the premise: fuzzy snapshots + logs
    assert "/live/eph" in tree and tree["/live/eph"]["stat"][7] != 0
    assert "/live/gone" not in tree and tree["/nulldata"]["data"] in (b"", None)

    target = tmp_path / "imported"
    result = run_zkpy("import", "--from-zookeeper", str(data_dir), "--to", str(target))
    assert f"at zxid {zxid:#x}" in result.stdout
    assert (target / "zkpy-db").is_dir()
    imported = open_read_only(target)
    try:
        assert json.loads(imported.db[b"epochs"]) == {"accepted": zxid >> 32, "current": zxid >> 32}
        assert [meta["zxid"] for meta in imported.snapshots()] == [zxid]
    finally:
        imported.close()
    check_zkpy_serves(server_factory, target, tree, zxid)

    # The dumps read ZooKeeper's files too: the log ends at the zxid the server reported.
    dumped = run_zkpy("dump-log", str(data_dir), "--json").stdout.splitlines()
    assert json.loads(dumped[-1])["zxid"] == f"{zxid:#x}"
    header = json.loads(run_zkpy("dump-snapshot", str(data_dir), "--json").stdout.splitlines()[0])
    assert header["source"] == "zookeeper" and header["nodes"] > 10


def test_import_refuses_to_overwrite_without_force(server_factory, tmp_path):
    data_dir, tree, zxid = reference_with_data(server_factory, small=True)
    target = tmp_path / "imported"
    run_zkpy("import", "--from-zookeeper", str(data_dir / "version-2"), "--to", str(target))
    again = subprocess.run([sys.executable, "-m", "zkpy", "import", "--from-zookeeper", str(data_dir),
                            "--to", str(target)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert again.returncode == 1 and "--force" in again.stderr
    run_zkpy("import", "--from-zookeeper", str(data_dir), "--to", str(target), "--force")
    check_zkpy_serves(server_factory, target, tree, zxid)


def _log_entry_offsets(path: Path) -> list[int]:
    """Where each entry of a ZooKeeper txn log starts (and, last, where the data ends)."""
    data = path.read_bytes()
    offsets, offset = [], 16
    while offset + 12 <= len(data):
        length = int.from_bytes(data[offset + 8:offset + 12], "big")
        if length == 0:
            break
        offsets.append(offset)
        offset += 12 + length + 1
    return offsets + [offset]


def test_import_survives_damaged_snapshots_partial_logs_and_a_split_log_dir(server_factory, tmp_path):
    data_dir, tree, zxid = reference_with_data(server_factory, small=True)
    snap_dir = tmp_path / "zk" / "data" / "version-2"
    log_dir = tmp_path / "zk" / "datalog" / "version-2"
    snap_dir.mkdir(parents=True)
    log_dir.mkdir(parents=True)
    for path in (data_dir / "version-2").iterdir():
        path.rename((snap_dir if path.name.startswith("snapshot.") else log_dir) / path.name)
    snapshots = sorted(snap_dir.iterdir(), key=lambda p: int(p.name.split(".")[1], 16), reverse=True)
    assert len(snapshots) >= 2, snapshots
    newest, second = snapshots[0], snapshots[1]
    newest.write_bytes(newest.read_bytes()[:newest.stat().st_size // 2])  # cut short
    damaged = bytearray(second.read_bytes())
    damaged[damaged.index(b"anyone")] = ord("A")  # a flipped byte: the checksum must catch it
    second.write_bytes(bytes(damaged))
    config = tmp_path / "zoo.cfg"
    config.write_text(f"dataDir={snap_dir.parent}\ndataLogDir={log_dir.parent}\nclientPort=2181\n")

    # Older snapshots (or none) plus more of the log give the same tree; the zkpy database goes
    # where a zkpy server started with the same zoo.cfg looks for it (dataLogDir).
    result = subprocess.run([sys.executable, "-m", "zkpy", "import", "--config", str(config)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert f"at zxid {zxid:#x}" in result.stdout
    assert f"skipping incomplete snapshot {newest.name}" in result.stderr
    assert f"skipping unreadable snapshot {second.name}" in result.stderr
    assert (log_dir.parent / "zkpy-db").is_dir() and not (snap_dir.parent / "zkpy-db").exists()
    check_zkpy_serves(server_factory, snap_dir.parent, tree, zxid,
                      settings={"dataDir": str(snap_dir.parent), "dataLogDir": str(log_dir.parent)})

    # A last entry only partly written is the end of the log, as in ZooKeeper.
    last_log = max(log_dir.iterdir(), key=lambda p: int(p.name.split(".")[1], 16))
    offsets = _log_entry_offsets(last_log)
    with open(last_log, "r+b") as handle:
        handle.truncate(offsets[-1] - 3)
    result = run_zkpy("import", "--config", str(config), "--force")
    assert f"at zxid {zxid - 1:#x}" in result.stdout

    # A damaged entry inside the log is an error, not a silent loss.
    first_log = min(log_dir.iterdir(), key=lambda p: int(p.name.split(".")[1], 16))
    middle = _log_entry_offsets(first_log)[2]
    with open(first_log, "r+b") as handle:
        handle.seek(middle + 20)
        byte = handle.read(1)
        handle.seek(middle + 20)
        handle.write(bytes([byte[0] ^ 0xFF]))
    failed = subprocess.run([sys.executable, "-m", "zkpy", "import", "--config", str(config), "--force"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert failed.returncode == 1 and "checksum mismatch" in failed.stderr, failed.stderr
    assert (log_dir.parent / "zkpy-db").is_dir()  # the previous import is left in place


def test_import_compressed_snapshots(server_factory, tmp_path):
    for method in ("gz", "snappy"):
        data_dir, tree, zxid = reference_with_data(
            server_factory, jvm_properties={"zookeeper.snapshot.compression.method": method}, small=True)
        snapshots, _ = zookeeper_files(data_dir)
        assert snapshots and all(name.endswith("." + method) for name in snapshots), snapshots
        target = tmp_path / f"imported-{method}"
        run_zkpy("import", "--from-zookeeper", str(data_dir), "--to", str(target))
        check_zkpy_serves(server_factory, target, tree, zxid)


def test_export_to_zookeeper_is_loaded_by_the_reference(server_factory, tmp_path):
    zkpy = server_factory("zkpy", settings={"snapCount": "50"})
    writer = write_varied_data(zkpy.connect_string)
    tree = collect_tree(writer)
    zxid = server_zxid(zkpy)
    zkpy.stop()
    stop_client(writer)

    for options, suffix in (((), ""), (("--gzip",), ".gz")):
        target = tmp_path / f"exported{suffix}"
        result = run_zkpy("export", "--from", str(zkpy.data_dir), "--to-zookeeper", str(target), *options)
        assert f"at zxid {zxid:#x}" in result.stdout
        assert (target / "version-2" / f"snapshot.{zxid:x}{suffix}").is_file()
        reference = server_factory("zookeeper", settings={"dataDir": str(target)})
        assert server_zxid(reference) == zxid
        reader = start_client(reference.connect_string)
        try:
            assert_same_tree(tree, collect_tree(reader))
        finally:
            stop_client(reader)
        reference.stop()


def test_log_entry_decoding_follows_zookeepers_rules():
    """closeSession with or without its record and digest, and version-0 creates."""
    from jute import OpCode
    from jute import records as r
    from zkpy.tools.zkformat import decode_log_entry

    close = r.TxnHeader.encode(r.TxnHeader(5, 1, 9, 100, int(OpCode.closeSession)))
    digest = r.TxnDigest.encode(r.TxnDigest(2, 0x12345678))
    one_path = r.CloseSessionTxn.encode(r.CloseSessionTxn(["/abc"]))  # as long as a digest
    cases = [(close, None, None), (close + digest, None, 0x12345678),
             (close + one_path, ["/abc"], None), (close + one_path + digest, ["/abc"], 0x12345678)]
    for raw, paths, tree_digest in cases:
        entry = decode_log_entry(raw)
        assert (entry.txn.paths_to_delete if entry.txn else None) == paths
        assert (entry.digest.tree_digest if entry.digest else None) == tree_digest
    old_create = r.TxnHeader.encode(r.TxnHeader(5, 1, 9, 100, int(OpCode.create))) + \
        r.CreateTxnV0.encode(r.CreateTxnV0("/x", b"d", [], True))
    assert decode_log_entry(old_create).txn == r.CreateTxn("/x", b"d", [], True, -1)
