"""Snapshot format 2 (columnar chunks): round trips, many chunks, and format-1 snapshots
written before it still load."""

from __future__ import annotations

import json

import pytest

from jute import OpCode
from jute import records as r
from zkpy.replica.core import CoreSettings, ReplicaCore
from zkpy.storage import snapcodec, snapfile
from zkpy.storage.recovery import restore
from zkpy.storage.records import encode_node
from zkpy.storage.txnlog import META_PREFIX, SNAPSHOT_PREFIX, TxnLog, _CHUNK, _u64
from zkpy.tree.datatree import DataTree
from zkpy.tree.ephemeral import CONTAINER_OWNER, ttl_owner
from tests.unit.core_harness import CoreHarness, create

_DIGEST = (r.ACL(1, r.Id("digest", "u:hash")),)


def _tree_view(tree):
    return {path: (node.data, tuple(node.acl), node.stat()) for path, node in tree.nodes.items()}


def _varied_tree() -> DataTree:
    """Null, empty and binary data, several ACLs, ephemeral, container and TTL owners."""
    tree = DataTree()
    tree.create_node("/a", b"", tree.nodes["/"].acl, 0, -1, 1, 10)
    tree.create_node("/a/null", None, _DIGEST, 0, -1, 2, 11)
    tree.create_node("/a/bin", bytes(range(256)), _DIGEST, 0, -1, 3, 12)
    tree.create_node("/a/eph", b"e", tree.nodes["/"].acl, 0x1234, -1, 4, 13)
    tree.create_node("/c", b"", tree.nodes["/"].acl, CONTAINER_OWNER, -1, 5, 14)
    tree.create_node("/t", b"t", tree.nodes["/"].acl, ttl_owner(5000), -1, 6, 15)
    tree.create_node("/a/\u00e9t\u00e9", b"utf", tree.nodes["/"].acl, 0, -1, 7, 16)
    tree.last_zxid = 7
    return tree


def _restored(txn_log) -> ReplicaCore:
    fresh = ReplicaCore(CoreSettings(), 0)
    restore(fresh, txn_log, 0)
    return fresh


def test_varied_tree_round_trips(tmp_path):
    tree = _varied_tree()
    txn_log = TxnLog(tmp_path / "db")
    meta = txn_log.write_snapshot(tree.last_zxid, tree.iter_nodes(), [(0x1234, 30000)], 0)
    assert meta["format"] == snapcodec.FORMAT
    fresh = _restored(txn_log)
    assert _tree_view(fresh.tree) == _tree_view(tree)
    assert fresh.tree.ephemerals == {0x1234: {"/a/eph"}}
    assert fresh.tree.containers == {"/c"} and fresh.tree.ttls == {"/t"}
    assert fresh.tree.nodes["/a/null"].data is None
    assert 0x1234 in fresh.sessions.sessions
    txn_log.close()


def test_encode_in_order_spanning_many_chunks(tmp_path):
    h = CoreHarness()
    c, _ = h.connect()
    for top in range(5):
        h.call(c, OpCode.create, create(f"/d{top}", b""))
        for index in range(120):
            h.call(c, OpCode.create, create(f"/d{top}/n{index}", b"x" * (index % 7)))
    tree = h.replica.tree
    chunks = list(snapcodec.encode_in_order(tree.nodes, chunk_bytes=2000, piece_nodes=13))
    assert len(chunks) > 20
    txn_log = TxnLog(tmp_path / "db")
    txn_log.write_snapshot_chunks(tree.last_zxid, chunks, tree.node_count(), [], 0)
    fresh = _restored(txn_log)
    assert _tree_view(fresh.tree) == _tree_view(tree)
    txn_log.close()


def test_children_in_a_chunk_before_their_parent_are_linked_at_the_end():
    tree = _varied_tree()
    items = list(tree.nodes.items())
    late = [(p, n) for p, n in items if p.startswith("/a/")]
    early = [(p, n) for p, n in items if not p.startswith("/a/")]
    chunks = []
    for part in (early[:2], late, early[2:]):  # "/a" comes in the last chunk
        encoder = snapcodec.ChunkEncoder()
        encoder.add([p for p, _ in part], [n for _, n in part])
        chunks.append(encoder.finish())
    loaded = DataTree()
    loaded.clear()
    loader = snapcodec.TreeLoader(loaded)
    for chunk in chunks:
        loader.load_chunk(chunk)
    loader.finish()
    assert _tree_view(loaded) == _tree_view(tree)


def test_a_missing_parent_is_reported():
    tree = _varied_tree()
    encoder = snapcodec.ChunkEncoder()
    encoder.add(["/", "/a/bin"], [tree.nodes["/"], tree.nodes["/a/bin"]])
    loaded = DataTree()
    loaded.clear()
    loader = snapcodec.TreeLoader(loaded)
    loader.load_chunk(encoder.finish())
    with pytest.raises(snapcodec.ChunkCorrupt):
        loader.finish()


@pytest.mark.parametrize("damage", ["truncate", "magic", "extra"])
def test_damaged_chunks_are_refused(damage):
    tree = _varied_tree()
    encoder = snapcodec.ChunkEncoder()
    encoder.add(list(tree.nodes), list(tree.nodes.values()))
    chunk = encoder.finish()
    damaged = {"truncate": chunk[:-3], "magic": b"XXXX" + chunk[4:], "extra": chunk + b"\0"}[damage]
    with pytest.raises(snapcodec.ChunkCorrupt):
        snapcodec.decode_chunk(damaged)


def _write_format1(txn_log: TxnLog, tree: DataTree, sessions_hex: str = "") -> None:
    """A snapshot exactly as the code before format 2 wrote it."""
    chunk = b"".join(encode_node(path, node) for path, node in tree.iter_nodes())
    txn_log.db.put(SNAPSHOT_PREFIX + _CHUNK.pack(tree.last_zxid, 0), chunk)
    meta = {"zxid": tree.last_zxid, "chunks": 1, "nodes": tree.node_count(),
            "sessions": sessions_hex, "time_ms": 0}
    txn_log.db.put(META_PREFIX + _u64(tree.last_zxid), json.dumps(meta).encode())


def test_a_format1_snapshot_still_loads_and_a_new_snapshot_follows(tmp_path):
    tree = _varied_tree()
    txn_log = TxnLog(tmp_path / "db")
    _write_format1(txn_log, tree)
    fresh = _restored(txn_log)
    assert _tree_view(fresh.tree) == _tree_view(tree)
    assert fresh.tree.ephemerals == {0x1234: {"/a/eph"}}
    # The dump tools read both formats as the same records.
    old_records = list(txn_log.read_snapshot(txn_log.snapshots()[0])[0])
    fresh.tree.last_zxid += 1
    txn_log.write_snapshot(fresh.tree.last_zxid, fresh.tree.iter_nodes(), [], 0)
    assert txn_log.snapshots()[0]["format"] == snapcodec.FORMAT
    new_records = list(txn_log.read_snapshot(txn_log.snapshots()[0])[0])
    assert sorted(new_records) == sorted(old_records)
    assert _tree_view(_restored(txn_log).tree) == _tree_view(tree)
    txn_log.close()


def test_forked_child_writes_a_snapshot_that_restores_the_tree(tmp_path, monkeypatch):
    from zkpy.runtime import forked_snapshot

    if not forked_snapshot.available():
        pytest.skip("no fork here")
    monkeypatch.setattr(forked_snapshot, "CHUNK_BYTES", 1000)  # many chunks
    monkeypatch.setattr(forked_snapshot, "PIECE_NODES", 7)
    h = CoreHarness()
    c, _ = h.connect()
    for index in range(300):
        h.call(c, OpCode.create, create(f"/f{index % 3}" + ("" if index < 3 else f"/n{index}"), b"v"))
    tree = h.replica.tree
    txn_log = TxnLog(tmp_path / "db")
    path = txn_log.new_snapshot_path(tree.last_zxid)
    forked_snapshot.wait(forked_snapshot.start(tree, path))
    meta = txn_log.commit_snapshot_file(tree.last_zxid, path, tree.node_count(), [], 0)
    assert len(list(snapfile.read_chunks(path))) > 10 and meta["file"] == path.name
    assert _tree_view(_restored(txn_log).tree) == _tree_view(tree)
    txn_log.close()


def test_format2_chunks_stored_in_the_database_still_load(tmp_path):
    """Snapshots from before snapshot files kept their format-2 chunks under S keys."""
    tree = _varied_tree()
    txn_log = TxnLog(tmp_path / "db")
    chunks = list(snapcodec.encode_in_order(tree.nodes, chunk_bytes=200, piece_nodes=2))
    for index, chunk in enumerate(chunks):
        txn_log.db.put(SNAPSHOT_PREFIX + _CHUNK.pack(tree.last_zxid, index), chunk)
    meta = {"zxid": tree.last_zxid, "format": 2, "chunks": len(chunks),
            "nodes": tree.node_count(), "sessions": "", "time_ms": 0}
    txn_log.db.put(META_PREFIX + _u64(tree.last_zxid), json.dumps(meta).encode())
    assert len(chunks) > 1
    assert _tree_view(_restored(txn_log).tree) == _tree_view(tree)
    txn_log.delete_snapshot(txn_log.snapshots()[0])
    assert not any(key.startswith(SNAPSHOT_PREFIX) for key in txn_log.db.keys())
    txn_log.close()


def test_an_abandoned_snapshot_leaves_nothing(tmp_path):
    tree = _varied_tree()
    txn_log = TxnLog(tmp_path / "db")
    writer = txn_log.snapshot_writer(tree.last_zxid)
    for chunk in snapcodec.encode_in_order(tree.nodes, chunk_bytes=10, piece_nodes=1):
        writer.add(chunk)
    writer.abandon()
    assert txn_log.snapshots() == []
    assert list(txn_log.snapshot_directory.iterdir()) == []
    txn_log.close()


# -- snapshot files ----------------------------------------------------------------------------

def _file_with_chunks(path, chunks, node_count=3):
    writer = snapfile.SnapshotFileWriter(path)
    for chunk in chunks:
        writer.add(chunk)
    writer.finish(node_count)
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["cut in a chunk", "cut in the trailer", "no trailer",
                                    "trailing byte", "huge length"])
def test_a_damaged_snapshot_file_is_refused(tmp_path, damage):
    whole = _file_with_chunks(tmp_path / "whole", [b"a" * 10, b"b" * 5])
    damaged = {"cut in a chunk": whole[:8], "cut in the trailer": whole[:-3],
               "no trailer": whole[:-12], "trailing byte": whole + b"\0",
               "huge length": b"\xff\xff\xff\xff" + whole[4:]}[damage]
    (tmp_path / "damaged").write_bytes(damaged)
    assert list(snapfile.read_chunks(tmp_path / "whole")) == [b"a" * 10, b"b" * 5]
    with pytest.raises(snapfile.SnapshotFileError):
        list(snapfile.read_chunks(tmp_path / "damaged"))


@pytest.mark.parametrize("offset", range(len(snapfile.MAGIC) + 8, len(snapfile.MAGIC) + 8 + 10))
def test_a_flipped_bit_in_a_chunk_fails_its_checksum(tmp_path, offset):
    whole = bytearray(_file_with_chunks(tmp_path / "whole", [b"a" * 10, b"b" * 5]))
    whole[offset] ^= 0x01
    (tmp_path / "damaged").write_bytes(bytes(whole))
    with pytest.raises(snapfile.SnapshotFileError, match="checksum"):
        list(snapfile.read_chunks(tmp_path / "damaged"))


def test_a_flipped_bit_in_the_node_count_is_refused(tmp_path):
    whole = bytearray(_file_with_chunks(tmp_path / "whole", [b"a" * 10]))
    whole[-6] ^= 0x01
    (tmp_path / "damaged").write_bytes(bytes(whole))
    with pytest.raises(snapfile.SnapshotFileError, match="trailer"):
        list(snapfile.read_chunks(tmp_path / "damaged"))


def test_files_from_before_checksums_are_still_read(tmp_path):
    legacy = b"".join(len(c).to_bytes(4, "big") + c for c in (b"a" * 10, b"b" * 5))
    (tmp_path / "legacy").write_bytes(legacy + bytes(4) + (3).to_bytes(8, "big"))
    assert list(snapfile.read_chunks(tmp_path / "legacy")) == [b"a" * 10, b"b" * 5]


def test_a_snapshot_file_never_overwrites_an_existing_one(tmp_path):
    _file_with_chunks(tmp_path / "s", [b"x"])
    with pytest.raises(FileExistsError):
        snapfile.SnapshotFileWriter(tmp_path / "s")


def test_files_without_metadata_are_removed_when_the_log_opens(tmp_path):
    """A crash between a snapshot file's fsync and its metadata leaves an orphan file."""
    tree = _varied_tree()
    txn_log = TxnLog(tmp_path / "db")
    kept = txn_log.write_snapshot(tree.last_zxid, tree.iter_nodes(), [], 0)
    writer = txn_log.snapshot_writer(tree.last_zxid + 1)
    writer.add(b"never committed")
    orphan = writer.path
    txn_log.close()
    assert orphan.exists()
    txn_log = TxnLog(tmp_path / "db")
    assert [p.name for p in txn_log.snapshot_directory.iterdir()] == [kept["file"]]
    assert _tree_view(_restored(txn_log).tree) == _tree_view(tree)
    txn_log.close()


def test_a_second_snapshot_at_the_same_zxid_replaces_the_first_and_its_file(tmp_path):
    tree = _varied_tree()
    txn_log = TxnLog(tmp_path / "db")
    first = txn_log.write_snapshot(tree.last_zxid, tree.iter_nodes(), [], 0)
    second = txn_log.write_snapshot(tree.last_zxid, tree.iter_nodes(), [], 1)
    assert first["file"] != second["file"]
    assert txn_log.snapshots() == [second]
    assert [p.name for p in txn_log.snapshot_directory.iterdir()] == [second["file"]]
    assert _tree_view(_restored(txn_log).tree) == _tree_view(tree)
    txn_log.close()


def test_purge_removes_the_files_of_the_snapshots_it_drops(tmp_path):
    tree = _varied_tree()
    txn_log = TxnLog(tmp_path / "db")
    metas = []
    for step in range(4):
        tree.last_zxid += 1
        metas.append(txn_log.write_snapshot(tree.last_zxid, tree.iter_nodes(), [], step))
    assert txn_log.purge(2) == 2
    assert sorted(p.name for p in txn_log.snapshot_directory.iterdir()) == sorted(
        m["file"] for m in metas[2:])
    txn_log.close()
