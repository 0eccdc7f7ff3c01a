"""Snapshot files: a snapshot's format-2 chunks in a plain file beside the RocksDB log.

Why files: a snapshot is written once and read back whole, and RocksDB adds nothing to that but
cost. rocksdict holds the GIL through every write, so storing a million-node snapshot in it
stopped the event loop for about 2 ms a megabyte; and only the process that opened the database
may write to it, so a forked child that encodes the tree had to pipe every chunk back to the
server. A plain file is written by whoever encodes (the forked child, or a worker thread whose
``os.write`` calls release the GIL).

Layout: an 8-byte magic (``MAGIC``); for each chunk a 4-byte big-endian length, the chunk's
CRC-32 and the chunk; then a zero length, the 8-byte node count and its CRC-32. A file that
stops before that trailer is not a snapshot, and a chunk whose CRC does not match is damaged:
both raise SnapshotFileError naming the file and offset, never a shorter tree. Files written
before the magic existed (no CRCs; their first bytes are a chunk length, always below the
magic's value) are still read.

Durability duty: ``SnapshotFileWriter.finish`` returns once the file and its directory entry
are fsynced. The file becomes a snapshot only when the log's metadata names it (written after
``finish``, with a synced write): a crash before that leaves an orphan file, which the log
removes when it is next opened.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Iterator

_LENGTH = struct.Struct(">I")
_LENGTH_CRC = struct.Struct(">II")
_COUNT = struct.Struct(">Q")
_COUNT_CRC = struct.Struct(">QI")
MAGIC = b"ZKPYSNP\x02"
# A chunk ends just past CHUNK_BYTES (1 MB) or holds one large node (data is at most the
# jute.maxbuffer limit); anything longer is a damaged file, not a chunk to allocate.
MAX_CHUNK_BYTES = 1 << 28
READ_BUFFER_BYTES = 1 << 20


class SnapshotFileError(Exception):
    """A snapshot file is truncated or damaged."""


class SnapshotFileWriter:
    """Writes one snapshot file; ``finish`` makes it durable, ``abandon`` removes it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        # O_EXCL: every snapshot gets a name of its own, so an existing file is never reused.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        _write_all(self._fd, MAGIC)

    def add(self, chunk: bytes) -> None:
        _write_all(self._fd, _LENGTH_CRC.pack(len(chunk), zlib.crc32(chunk)))
        _write_all(self._fd, chunk)

    def finish(self, node_count: int) -> None:
        count = _COUNT.pack(node_count)
        _write_all(self._fd, _LENGTH.pack(0) + _COUNT_CRC.pack(node_count, zlib.crc32(count)))
        os.fsync(self._fd)
        self._close()
        fsync_directory(self.path.parent)

    def abandon(self) -> None:
        self._close()
        remove(self.path)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_chunks(path: str | os.PathLike) -> Iterator[bytes]:
    """The chunks of a snapshot file, in order. Raises SnapshotFileError (after the chunks
    read so far) if the file is truncated, has a bad length, a chunk that fails its CRC, or
    bytes after its trailer."""
    with open(path, "rb", buffering=READ_BUFFER_BYTES) as stream:
        checked = stream.read(len(MAGIC)) == MAGIC
        if not checked:
            stream.seek(0)  # a file from before checksums
        while True:
            offset = stream.tell()
            header = stream.read(_LENGTH.size)
            if len(header) < _LENGTH.size:
                raise SnapshotFileError(f"{path}: truncated before its trailer (offset {offset})")
            (length,) = _LENGTH.unpack(header)
            if length == 0:
                break
            if length > MAX_CHUNK_BYTES:
                raise SnapshotFileError(f"{path}: chunk length {length} at offset {offset} is "
                                        "beyond any chunk")
            crc = _read_crc(stream, path, offset) if checked else None
            chunk = stream.read(length)
            if len(chunk) < length:
                raise SnapshotFileError(f"{path}: truncated chunk at offset {offset}")
            if checked and zlib.crc32(chunk) != crc:
                raise SnapshotFileError(f"{path}: the chunk at offset {offset} fails its "
                                        "checksum (the file is damaged)")
            yield chunk
        _check_trailer(stream, path, checked)


def _read_crc(stream, path, offset: int) -> int:
    raw = stream.read(4)
    if len(raw) < 4:
        raise SnapshotFileError(f"{path}: truncated chunk at offset {offset}")
    return _LENGTH.unpack(raw)[0]


def _check_trailer(stream, path, checked: bool) -> None:
    size = _COUNT_CRC.size if checked else _COUNT.size
    offset = stream.tell()
    trailer = stream.read(size)
    if len(trailer) < size or stream.read(1):
        raise SnapshotFileError(f"{path}: damaged trailer at offset {offset}")
    if checked:
        count, crc = _COUNT_CRC.unpack(trailer)
        if zlib.crc32(_COUNT.pack(count)) != crc:
            raise SnapshotFileError(f"{path}: damaged trailer at offset {offset}")


def fsync_directory(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
