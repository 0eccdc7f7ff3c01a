"""Snapshots encoded by a forked child (zkpy.runtime.forked_snapshot): the stream carries the
whole tree as it stood at the fork, and a child that dies early yields no snapshot."""

from __future__ import annotations

import os
import signal
import time

import pytest

from jute import OpCode
from jute import records as r
from zkpy.replica.core import CoreSettings, ReplicaCore
from zkpy.runtime import forked_snapshot
from zkpy.storage import snapfile
from zkpy.storage.recovery import restore
from zkpy.storage.txnlog import TxnLog
from zkpy.zab import zksnap
from tests.unit.core_harness import CoreHarness, create

pytestmark = pytest.mark.skipif(not forked_snapshot.available(), reason="needs os.fork")


def _tree_view(tree):
    return {path: (node.data, node.acl, node.stat()) for path, node in tree.nodes.items()}


def _populated_harness(count: int) -> CoreHarness:
    h = CoreHarness()
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/flat", b""))
    for index in range(count):
        h.call(c, OpCode.create, create(f"/flat/n{index}", b"x" * 30))
    h.call(c, OpCode.create, create("/e", b"", flags=1))  # an ephemeral, for the session list
    h.call(c, OpCode.setData, r.SetDataRequest("/flat/n3", b"changed", -1))
    return h


def test_child_snapshot_restores_the_tree_as_it_was_at_the_fork(tmp_path, monkeypatch):
    # Small chunks, so the file holds many of them.
    monkeypatch.setattr(forked_snapshot, "CHUNK_BYTES", 500)
    monkeypatch.setattr(forked_snapshot, "PIECE_NODES", 5)
    h = _populated_harness(300)
    before = _tree_view(h.replica.tree)
    zxid = h.replica.tree.last_zxid
    count = len(h.replica.tree.nodes)
    txn_log = TxnLog(tmp_path / "db")
    path = txn_log.new_snapshot_path(zxid)
    pid = forked_snapshot.start(h.replica.tree, path)
    # The parent changes its tree at once: the child's copy must not see it.
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/after-fork", b""))
    forked_snapshot.wait(pid)
    assert len(list(snapfile.read_chunks(path))) > 10
    sessions = [(s.session_id, s.timeout_ms) for s in h.replica.sessions.sessions.values()]
    txn_log.commit_snapshot_file(zxid, path, count, sessions, h.now_ms)
    fresh = ReplicaCore(CoreSettings(), h.now_ms)
    info = restore(fresh, txn_log, h.now_ms)
    txn_log.close()
    assert info["snapshot_zxid"] == zxid and info["nodes"] == count
    assert _tree_view(fresh.tree) == before


class _StuckNodes(dict):
    """Nodes whose values take forever to list: the child is surely midway when killed."""

    def values(self):
        time.sleep(600)
        return super().values()


def test_a_child_killed_midway_gives_no_snapshot(tmp_path):
    tree = _populated_harness(10).replica.tree
    tree.nodes = _StuckNodes(tree.nodes)
    path = tmp_path / "snapshot"
    pid = forked_snapshot.start(tree, path)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(forked_snapshot.SnapshotChildFailed):
        forked_snapshot.wait(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left behind


def test_a_child_that_cannot_write_its_file_fails(tmp_path):
    h = _populated_harness(10)
    (tmp_path / "taken").write_bytes(b"")  # the file exists already: O_EXCL refuses it
    pid = forked_snapshot.start(h.replica.tree, tmp_path / "taken")
    with pytest.raises(forked_snapshot.SnapshotChildFailed):
        forked_snapshot.wait(pid)
    assert (tmp_path / "taken").read_bytes() == b""


def _read_to_end(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 16):
        parts.append(chunk)
    os.close(fd)
    return b"".join(parts)


def test_a_streamed_snap_is_the_tree_as_it_was_at_the_fork():
    h = _populated_harness(300)
    tree = h.replica.tree
    sessions = [(s.session_id, s.timeout_ms) for s in h.replica.sessions.sessions.values()]
    expected = b"".join(zksnap.snap_chunks(tree, sessions, 1 << 20))
    pid, read_fd = forked_snapshot.start_stream(lambda: zksnap.snap_chunks(tree, sessions, 512))
    # The parent changes its tree at once: the child's copy must not see it.
    c, _ = h.connect()
    h.call(c, OpCode.create, create("/after-the-fork", b"late"))
    streamed = _read_to_end(read_fd)
    assert forked_snapshot.reap(pid) == 0
    assert streamed == expected
    assert b"/after-the-fork" not in streamed


def test_a_stream_whose_chunks_fail_ends_with_a_failed_child():
    def chunks():
        yield b"first"
        raise RuntimeError("encoding failed")

    pid, read_fd = forked_snapshot.start_stream(chunks)
    assert _read_to_end(read_fd) == b"first"
    assert forked_snapshot.reap(pid) != 0
