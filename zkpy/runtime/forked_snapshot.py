"""Snapshots written by a forked child, so the server's own thread never stops to encode a tree.

``os.fork`` gives the child a copy-on-write image of the tree exactly as it stands at the fork:
the snapshot is consistent as of the last applied zxid, not fuzzy, and encoding and writing it
(seconds for a million znodes) run on another core while the parent keeps serving. The child
writes a snapshot file (``zkpy.storage.snapfile``) and makes it durable; the parent only waits
for it to exit, in a worker thread, and then commits the file to the log with its metadata.
Nothing in the child touches the event loop, RocksDB or the logger: it encodes, writes its
file and leaves with ``os._exit``, its status 0 only once the file is fsynced. A child that
fails or is killed leaves a partial file, which is no snapshot: the caller removes it, and the
log still holds everything.

A leader sends a learner its SNAP the same way (``start_stream``): the child encodes the tree
into a pipe that the parent copies to the learner's socket as the socket drains, so neither
the encoding nor the whole serialised tree is ever on the event loop or in its memory.
"""

from __future__ import annotations

import gc
import os
import signal
from typing import Callable, Iterable

from zkpy.storage.fuzzy import CHUNK_BYTES
from zkpy.storage.snapcodec import encode_in_order
from zkpy.storage.snapfile import SnapshotFileWriter

PIECE_NODES = 4096  # nodes added to a chunk at a time (a chunk ends past CHUNK_BYTES)


class SnapshotChildFailed(Exception):
    """The child ended without writing a whole snapshot."""


def available() -> bool:
    return hasattr(os, "fork")


def start(tree, path) -> int:
    """Fork a child that writes ``tree`` to the new snapshot file ``path``; returns its pid."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            _child(tree, path)
            status = 0
        finally:
            os._exit(status)
    return pid


def start_stream(chunks: Callable[[], Iterable[bytes]]) -> tuple[int, int]:
    """Fork a child that writes every chunk ``chunks()`` yields to a pipe, then exits with
    status 0 (1 if it could not write them all); returns (pid, the pipe's read end). The
    parent reads the pipe to its end and then reaps the child: only status 0 means the bytes
    read are the whole stream. ``chunks`` runs in the child only, on its frozen copy."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            _become_child(keep_fd=write_fd)
            for chunk in chunks():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(write_fd, view):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    return pid, read_fd


def _become_child(keep_fd: int | None = None) -> None:
    gc.disable()  # the child lives for one pass over the tree: nothing to collect
    signal.set_wakeup_fd(-1)  # the parent's loop must not hear the child's signals
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    # Client sockets, listeners and RocksDB files stay the parent's alone: a connection the
    # parent closes must close now, not when this child exits.
    highest = os.sysconf("SC_OPEN_MAX")
    if keep_fd is None:
        os.closerange(3, highest)
    else:
        os.closerange(3, keep_fd)
        os.closerange(keep_fd + 1, highest)


def _child(tree, path) -> None:
    _become_child()
    writer = SnapshotFileWriter(path)
    # The child's copy never changes: its chunks are encoded in the dict's order (parents
    # first), with no walk over children.
    for chunk in encode_in_order(tree.nodes, CHUNK_BYTES, PIECE_NODES):
        writer.add(chunk)
    writer.finish(len(tree.nodes))


def wait(pid: int) -> None:
    """Worker thread: reap the child; raises SnapshotChildFailed unless it wrote its whole
    snapshot (exit status 0)."""
    status = reap(pid)
    if status != 0:
        raise SnapshotChildFailed(f"snapshot child {pid} failed (wait status {status})")


def reap(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:  # already reaped
        return -1


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
