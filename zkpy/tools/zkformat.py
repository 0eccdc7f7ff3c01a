"""ZooKeeper 3.x on-disk files: snapshots and transaction logs, read and written.

The layouts below were checked against files written by ZooKeeper 3.8.0 (and its source).
All integers are big-endian, strings and buffers are Jute's (int32 length, -1 for null).

Snapshot ``version-2/snapshot.<hex zxid>[.gz|.snappy]``; the zxid in the name is the last one
the tree had applied when the (fuzzy) snapshot started. The whole stream, once uncompressed::

    FileHeader      int magic 0x5A4B534E 'ZKSN', int version 2, long dbid (-1)
    sessions        int count, then count x (long session id, int timeout ms)
    ACL cache       int count, then count x (long index, vector<ACL>)
    nodes           (ustring path, buffer data, long acl index, StatPersisted) ...
                    parents before children; the root's path is "" ; acl index -1 means
                    world:anyone with all permissions (OPEN_ACL_UNSAFE)
    end of nodes    ustring "/"
    seal            long Adler32 of every byte before it, ustring "/"
    digest (3.6+)   long zxid, int digest version, long digest (a string before version 2);
                    zxid 0 means "no digest"; absent in older snapshots
    seal            long Adler32 of every byte before it, ustring "/"

``zookeeper.snapshot.compression.method`` = gz or snappy compresses the stream (gzip, or
snappy-java's SnappyOutputStream framing); the checksums cover the uncompressed bytes.

Transaction log ``version-2/log.<hex zxid of its first txn>``: a FileHeader (magic 0x5A4B4C47
'ZKLG', version 2, dbid 0), then entries::

    long Adler32 of the entry bytes, int length, entry bytes, byte 0x42 'B'
    entry bytes = TxnHeader + txn record (none for an old closeSession) + TxnDigest (3.6+)

Files are preallocated (64 MiB by default) with zeros, so a zero length (or a short read, a
partly written last entry) ends a file. Multi-op sub-txns are ``Txn(type, bytes)``.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

import cramjam

from jute import OpCode
from jute import records as r
from jute.errors import JuteDecodeError
from jute.opcodes import TXN_RECORDS
from zkpy.zab.zksnap import (INT as _INT, LONG as _LONG, OPEN_ACL, OPEN_ACL_INDEX,
                             STAT_PERSISTED as _STAT_PERSISTED, encode_acl_list,
                             encode_node_record, encode_ustring as _ustring)

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
FORMAT_VERSION = 2
SNAPSHOT_DBID = -1  # FileSnap.dbId
LOG_DBID = 0
END_OF_RECORD = 0x42
DIGEST_BYTES = 12  # TxnDigest: int version, long digest

_SNAPPY_MAGIC = b"\x82SNAPPY\x00"
_NAME = re.compile(r"^(snapshot|log)\.([0-9a-fA-F]+)(\.gz|\.snappy)?$")


class ZkFormatError(ValueError):
    """A ZooKeeper file is not in the expected format (or is corrupt)."""


class SnapshotNodeRecord(NamedTuple):
    path: str  # "/" for the root (stored as "")
    data: bytes
    acl: tuple
    stat: r.StatPersisted


class LogEntry(NamedTuple):
    hdr: r.TxnHeader
    txn: object | None
    digest: r.TxnDigest | None
    raw: bytes


# -- locating files ----------------------------------------------------------------------------


def version_dir(path: str | Path) -> Path:
    """The ``version-2`` directory of a ZooKeeper dataDir (or the directory itself)."""
    path = Path(path)
    if path.name == "version-2" and path.is_dir():
        return path
    candidate = path / "version-2"
    if candidate.is_dir():
        return candidate
    raise ZkFormatError(f"{path}: no version-2 directory (is this a ZooKeeper dataDir?)")


def _files(directory: Path, prefix: str) -> list[tuple[int, Path]]:
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match and match.group(1) == prefix and entry.is_file():
            found.append((int(match.group(2), 16), entry))
    return sorted(found)


def snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    """(zxid, path) of every snapshot file, newest first."""
    return sorted(_files(directory, "snapshot"), reverse=True)


def log_files(directory: Path) -> list[tuple[int, Path]]:
    """(first zxid, path) of every transaction log file, oldest first."""
    return _files(directory, "log")


# -- a checksummed reader --------------------------------------------------------------------


class _Reader:
    """Reads Jute primitives from a stream, keeping the Adler32 of what it consumed."""

    def __init__(self, stream: BinaryIO, chunk: int = 1 << 20) -> None:
        self.stream = stream
        self.chunk = chunk
        self.buf = b""
        self.pos = 0
        self.adler = 1
        self.consumed = 0

    def _fill(self, need: int) -> None:
        # Fold what was consumed into the checksum, then keep only the unread tail.
        self.adler = zlib.adler32(memoryview(self.buf)[:self.pos], self.adler)
        self.consumed += self.pos
        parts = [self.buf[self.pos:]]
        have = len(parts[0])
        while have < need:
            more = self.stream.read(max(self.chunk, need - have))
            if not more:
                break
            parts.append(more)
            have += len(more)
        self.buf = b"".join(parts)
        self.pos = 0
        if have < need:
            raise EOFError(f"unexpected end of file after {self.consumed + have} bytes")

    def read(self, count: int) -> bytes:
        if self.pos + count > len(self.buf):
            self._fill(count)
        start = self.pos
        self.pos += count
        return self.buf[start:self.pos]

    def int(self) -> int:
        if self.pos + 4 > len(self.buf):
            self._fill(4)
        value = _INT.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return value

    def long(self) -> int:
        if self.pos + 8 > len(self.buf):
            self._fill(8)
        value = _LONG.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return value

    def buffer(self) -> bytes | None:
        length = self.int()
        if length == -1:
            return None
        if length < -1:
            raise ZkFormatError(f"negative length {length}")
        return self.read(length)

    def ustring(self) -> str | None:
        data = self.buffer()
        return None if data is None else data.decode("utf-8")

    def stat_persisted(self) -> r.StatPersisted:
        if self.pos + _STAT_PERSISTED.size > len(self.buf):
            self._fill(_STAT_PERSISTED.size)
        value = _STAT_PERSISTED.unpack_from(self.buf, self.pos)
        self.pos += _STAT_PERSISTED.size
        return r.StatPersisted(*value)

    def acl_list(self) -> list:
        count = self.int()
        if count < 0:
            return []
        acls = []
        for _ in range(count):
            perms = self.int()
            scheme = self.ustring()
            ident = self.ustring()
            acls.append(r.ACL(perms, r.Id(scheme, ident)))
        return acls

    def checksum(self) -> int:
        """Adler32 of every byte consumed so far."""
        return zlib.adler32(memoryview(self.buf)[:self.pos], self.adler)


# -- snappy (snappy-java's stream framing; the raw blocks decoded by cramjam) ---------------------


def snappy_decompress_block(src: bytes) -> bytes:
    """Decompress one raw snappy block."""
    try:
        return bytes(cramjam.snappy.decompress_raw(src))
    except cramjam.DecompressionError as error:
        raise ZkFormatError(f"corrupt snappy block ({error})") from None


class SnappyStreamReader(io.RawIOBase):
    """snappy-java's SnappyInputStream format: an 8-byte magic, int version, int compatible
    version, then blocks of (int compressed length, raw snappy block)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.pending = b""
        header = raw.read(16)
        if header[:8] != _SNAPPY_MAGIC:
            raise ZkFormatError("not a snappy-java stream (bad magic)")

    def readable(self) -> bool:
        return True

    def _next_block(self) -> bool:
        head = self.raw.read(4)
        if not head:
            return False
        if head == _SNAPPY_MAGIC[:4]:  # a concatenated stream starts over with its header
            self.raw.read(12)
            return self._next_block()
        if len(head) < 4:
            raise ZkFormatError("truncated snappy stream")
        size = _INT.unpack(head)[0]
        block = self.raw.read(size)
        if len(block) != size:
            raise ZkFormatError("truncated snappy block")
        self.pending += snappy_decompress_block(block)
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            while self._next_block():
                pass
            data, self.pending = self.pending, b""
            return data
        while len(self.pending) < size and self._next_block():
            pass
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_snapshot_stream(path: Path) -> BinaryIO:
    """The uncompressed byte stream of a snapshot file, by its extension as ZooKeeper does."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".snappy"):
        return SnappyStreamReader(open(path, "rb"))
    return open(path, "rb")


# -- snapshots -------------------------------------------------------------------------------


class ZkSnapshot:
    """One snapshot file, read as a stream: the header, sessions and ACL cache are read on
    construction; ``nodes()`` then yields the nodes and checks the seal and digest at the end."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        match = _NAME.match(self.path.name)
        self.zxid = int(match.group(2), 16) if match else None
        self._stream = open_snapshot_stream(self.path)
        self._reader = _Reader(self._stream)
        reader = self._reader
        try:
            magic, version, dbid = reader.int(), reader.int(), reader.long()
            if magic != SNAP_MAGIC:
                raise ZkFormatError(f"{self.path}: bad magic {magic:#x} (not a ZooKeeper snapshot)")
            self.header = r.FileHeader(magic, version, dbid)
            count = reader.int()
            self.sessions: list[tuple[int, int]] = [(reader.long(), reader.int()) for _ in range(count)]
            self.acls: dict[int, tuple] = {}
            for _ in range(reader.int()):
                index = reader.long()
                self.acls[index] = tuple(reader.acl_list())
        except (EOFError, UnicodeDecodeError) as error:
            self.close()
            raise ZkFormatError(f"{self.path}: {error}") from None
        except BaseException:
            self.close()
            raise
        self.digest: tuple[int, int, int] | None = None
        self.node_count = 0

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> "ZkSnapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def acl_of(self, index: int) -> tuple:
        if index == OPEN_ACL_INDEX:
            return OPEN_ACL
        acl = self.acls.get(index)
        if acl is None:
            raise ZkFormatError(f"{self.path}: ACL index {index} is not in the ACL cache")
        return acl

    def nodes(self) -> Iterator[SnapshotNodeRecord]:
        reader = self._reader
        try:
            while True:
                path = reader.ustring()
                if path == "/":
                    break
                data = reader.buffer()
                acl_index = reader.long()
                stat = reader.stat_persisted()
                self.node_count += 1
                yield SnapshotNodeRecord(path or "/", data, self.acl_of(acl_index), stat)
            self._check_seal()
            try:
                zxid = reader.long()
            except EOFError:
                return  # a snapshot from before 3.6: no digest
            version = reader.int()
            if version < 2:
                text = reader.ustring()
                digest = int(text, 16) if text else 0
            else:
                digest = reader.long()
            self.digest = (zxid, version, digest)
            self._check_seal()
        except (EOFError, UnicodeDecodeError) as error:
            raise ZkFormatError(f"{self.path}: truncated or corrupt: {error}") from None

    def _check_seal(self) -> None:
        expected = self._reader.checksum()
        value = self._reader.long() & 0xFFFFFFFF
        marker = self._reader.ustring()
        if value != expected or marker != "/":
            raise ZkFormatError(f"{self.path}: checksum mismatch (CRC corruption)")


def snapshot_looks_complete(path: Path) -> bool:
    """ZooKeeper's SnapStream.isValidSnapshot for plain files: the file ends with the
    ustring "/" of a seal. Compressed files are checked by reading them."""
    if path.name.endswith((".gz", ".snappy")):
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            if size < 10:
                return False
            handle.seek(size - 5)
            return handle.read(5) == b"\x00\x00\x00\x01/"
    except OSError:
        return False


class _SnapshotWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.adler = 1
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        data = b"".join(self.parts)
        self.adler = zlib.adler32(data, self.adler)
        self.handle.write(data)
        self.parts, self.size = [], 0

    def seal(self) -> None:
        self.flush()
        self.handle.write(_LONG.pack(self.adler) + _ustring("/"))
        self.adler = zlib.adler32(_LONG.pack(self.adler) + _ustring("/"), self.adler)


def write_snapshot(path: Path, nodes, sessions, compress: str = "") -> int:
    """Write a snapshot file ZooKeeper 3.8 loads: ``nodes`` are (path, data, acl, stat) with
    parents before children (stat: a StatPersisted or anything with its fields); ``sessions``
    (session id, timeout ms) pairs. The digest is written empty (zxid 0), as ZooKeeper does
    when it has none, so ZooKeeper does not compare it. Returns the node count."""
    acl_index: dict[tuple, int] = {}
    body: list[bytes] = []
    count = 0
    for node_path, data, acl, stat in nodes:
        key = tuple(acl)
        index = acl_index.get(key)
        if index is None:
            index = acl_index[key] = len(acl_index) + 1
        body.append(encode_node_record(node_path, data, index, stat))
        count += 1
    tmp = path.with_name(path.name + ".tmp")
    opener = gzip.open if compress == "gz" else open
    with opener(tmp, "wb") as handle:
        writer = _SnapshotWriter(handle)
        writer.write(_INT.pack(SNAP_MAGIC) + _INT.pack(FORMAT_VERSION) + _LONG.pack(SNAPSHOT_DBID))
        sessions = list(sessions)
        writer.write(_INT.pack(len(sessions)))
        for session_id, timeout_ms in sessions:
            writer.write(_LONG.pack(session_id) + _INT.pack(timeout_ms))
        writer.write(_INT.pack(len(acl_index)))
        for acl, index in acl_index.items():
            writer.write(_LONG.pack(index) + encode_acl_list(acl))
        for item in body:
            writer.write(item)
        writer.write(_ustring("/"))
        writer.seal()
        writer.write(_LONG.pack(0) + _INT.pack(2) + _LONG.pack(0))  # empty ZxidDigest
        writer.seal()
    tmp.replace(path)
    return count


# -- transaction logs ---------------------------------------------------------------------------


def decode_log_entry(raw: bytes) -> LogEntry:
    """TxnHeader, its record and the optional TxnDigest, as SerializeUtils.deserializeTxn."""
    try:
        hdr, offset = r.TxnHeader.decode_from(raw, 0)
    except (JuteDecodeError, struct.error) as error:
        raise ZkFormatError(f"bad txn header: {error}") from None
    kind = hdr.type
    txn = None
    rest = len(raw) - offset
    if kind == OpCode.closeSession:
        # A CloseSessionTxn (3.6+) or nothing (older logs, or closeSessionTxn disabled),
        # then maybe a digest: take the record only if it parses into paths and leaves
        # nothing or exactly a digest.
        if rest:
            try:
                txn, end = r.CloseSessionTxn.decode_from(raw, offset)
                if (len(raw) - end in (0, DIGEST_BYTES)
                        and all(p and p.startswith("/") for p in txn.paths_to_delete or ())):
                    offset = end
                else:
                    txn = None
            except (JuteDecodeError, struct.error, UnicodeDecodeError):
                txn = None
    else:
        record = r.SetDataTxn if kind == OpCode.reconfig else TXN_RECORDS.get(kind)
        if record is None:
            raise ZkFormatError(f"unsupported txn type {kind} at zxid {hdr.zxid:#x}")
        try:
            txn, offset = record.decode_from(raw, offset)
        except (JuteDecodeError, struct.error):
            if kind != OpCode.create:
                raise ZkFormatError(f"bad {OpCode(kind).name} txn at zxid {hdr.zxid:#x}") from None
            # A version 0 create (no parent cversion): -1 makes the replay compute it.
            old, offset = r.CreateTxnV0.decode_from(raw, offset)
            txn = r.CreateTxn(old.path, old.data, old.acl, old.ephemeral, -1)
    digest = None
    if len(raw) - offset == DIGEST_BYTES:
        digest = r.TxnDigest.decode(raw[offset:])
    return LogEntry(hdr, txn, digest, raw)


def read_log_file(path: Path) -> Iterator[LogEntry]:
    """Every complete entry of one log file, in order (FileTxnIterator's rules)."""
    with open(path, "rb") as handle:
        reader = _Reader(handle, chunk=4 << 20)
        try:
            magic, _version, _dbid = reader.int(), reader.int(), reader.long()
        except EOFError:
            return
        if magic != LOG_MAGIC:
            raise ZkFormatError(f"{path}: bad magic {magic:#x} (not a ZooKeeper transaction log)")
        while True:
            try:
                crc = reader.long() & 0xFFFFFFFF
                length = reader.int()
                if length <= 0:
                    return  # preallocated zeros: the end of the log
                raw = reader.read(length)
                if reader.read(1)[0] != END_OF_RECORD:
                    return  # the last entry was only partly written
            except EOFError:
                return
            if zlib.adler32(raw) != crc:
                raise ZkFormatError(f"{path}: checksum mismatch in a txn entry (CRC error)")
            yield decode_log_entry(raw)


def read_logs(directory: Path, after_zxid: int = -1) -> Iterator[LogEntry]:
    """Entries with zxid > ``after_zxid`` from the log files that can hold them, in order."""
    files = log_files(directory)
    start = 0
    for index, (first_zxid, _path) in enumerate(files):
        if first_zxid <= after_zxid + 1:
            start = index  # the last file starting at or before the zxid we need
    for _first, path in files[start:]:
        for entry in read_log_file(path):
            if entry.hdr.zxid > after_zxid:
                yield entry
