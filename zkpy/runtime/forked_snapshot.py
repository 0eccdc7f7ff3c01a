"""Snapshots encoded by a forked child, so the server's own thread never stops to encode a tree.

``os.fork`` gives the child a copy-on-write image of the tree exactly as it stands at the fork:
the snapshot is consistent as of the last applied zxid, not fuzzy, and encoding it (seconds for a
million znodes) runs on another core while the parent keeps serving. The child streams chunks of
format-2 snapshot chunks through a pipe; a worker thread of the parent reads them, reaps the child
and hands the chunks to the log store. Nothing in the child touches the event loop, RocksDB or
the logger: it encodes, writes to its pipe and leaves with ``os._exit``.

Stream: for each chunk a 4-byte big-endian length and the chunk; then a zero length and the
8-byte node count. A stream that ends before that trailer (the child crashed or was killed) is
not a snapshot and is dropped; the log still holds everything.
"""

from __future__ import annotations

import gc
import os
import signal
import struct
from typing import Callable

from zkpy.storage.fuzzy import CHUNK_BYTES
from zkpy.storage.snapcodec import encode_in_order

_LENGTH = struct.Struct(">I")
_COUNT = struct.Struct(">Q")
PIECE_NODES = 4096  # nodes added to a chunk at a time (a chunk ends past CHUNK_BYTES)


class SnapshotChildFailed(Exception):
    """The child ended without delivering a whole snapshot."""


def available() -> bool:
    return hasattr(os, "fork")


def start(tree) -> tuple[int, int]:
    """Fork a child that encodes ``tree``; returns (child pid, read end of its pipe)."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:  # the child: never returns
        status = 1
        try:
            _child(tree, read_fd, write_fd)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    return pid, read_fd


def _child(tree, read_fd: int, write_fd: int) -> None:
    gc.disable()  # the child lives for one pass over the tree: nothing to collect
    signal.set_wakeup_fd(-1)  # the parent's loop must not hear the child's signals
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    os.close(read_fd)
    # Client sockets, listeners and RocksDB files stay the parent's alone: a connection the
    # parent closes must close now, not when this child exits.
    os.closerange(3, write_fd)
    os.closerange(write_fd + 1, os.sysconf("SC_OPEN_MAX"))
    # The child's copy never changes: its chunks are encoded in the dict's order (parents
    # first), with no walk over children.
    for chunk in encode_in_order(tree.nodes, CHUNK_BYTES, PIECE_NODES):
        _write_all(write_fd, _LENGTH.pack(len(chunk)) + chunk)
    _write_all(write_fd, _LENGTH.pack(0) + _COUNT.pack(len(tree.nodes)))
    os.close(write_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def receive(pid: int, read_fd: int, on_chunk: Callable[[bytes], None]) -> int:
    """Worker thread: hand the child's chunks to ``on_chunk`` as they come, until its
    trailer, then reap it; returns the node count. Raises SnapshotChildFailed if the stream
    is cut short or the child exits with an error."""
    count = None
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as stream:
            while True:
                header = stream.read(_LENGTH.size)
                if len(header) < _LENGTH.size:
                    break
                (length,) = _LENGTH.unpack(header)
                if length == 0:
                    trailer = stream.read(_COUNT.size)
                    if len(trailer) == _COUNT.size:
                        (count,) = _COUNT.unpack(trailer)
                    break
                chunk = stream.read(length)
                if len(chunk) < length:
                    break
                on_chunk(chunk)
    finally:
        status = reap(pid)
    if count is None or status != 0:
        raise SnapshotChildFailed(f"snapshot child {pid} ended early (wait status {status})")
    return count


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
