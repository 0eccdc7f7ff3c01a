"""The transaction log and snapshots, in one RocksDB database.

Durability duty: ``append`` returns only after the batch is synced (``write_synced``: the WAL is
fdatasync'ed), and the caller replies to no request before that. Concurrent writes share one sync: the runtime hands
over everything prepped since the last sync as one batch (group commit).

Keys (big-endian zxids keep them in zxid order):
* ``L`` + zxid: a txn, as TxnHeader + txn record bytes, Jute-encoded;
* ``S`` + zxid + chunk number: a snapshot's nodes, SnapshotNode records back to back;
* ``M`` + zxid: the snapshot's metadata (JSON), written last, so a snapshot without it is
  incomplete and ignored;
* ``secret``: the random secret session passwords are derived from.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Iterator

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from jute import records as r
from jute.opcodes import TXN_RECORDS
from zkpy.storage.records import SnapshotNode, SnapshotSession, encode_node

_ZXID = struct.Struct(">Q")
_CHUNK = struct.Struct(">QI")
LOG_PREFIX = b"L"
SNAPSHOT_PREFIX = b"S"
META_PREFIX = b"M"
CHUNK_BYTES = 1 << 20


def _u64(zxid: int) -> bytes:
    return _ZXID.pack(zxid & 0xFFFFFFFFFFFFFFFF)


def encode_txn(hdr: r.TxnHeader, txn) -> bytes:
    return r.TxnHeader.encode(hdr) + TXN_RECORDS[hdr.type].encode(txn)


def decode_txn(value: bytes) -> tuple[r.TxnHeader, object]:
    hdr, offset = r.TxnHeader.decode_from(value, 0)
    txn, _ = TXN_RECORDS[hdr.type].decode_from(value, offset)
    return hdr, txn


class TxnLog:
    """Append-only txn log plus snapshots (see the module docstring for the key layout)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self.db = Rdict(str(self.directory), options)
        self._no_sync = WriteOptions()
        self._no_sync.sync = False

    def close(self) -> None:
        self.db.close()

    def secret(self) -> bytes:
        value = self.db.get(b"secret")
        if value is None:
            value = os.urandom(16)
            self.put_synced(b"secret", value)
        return value

    # -- the log -------------------------------------------------------------------------------

    def append(self, batch: list[tuple[r.TxnHeader, object]]) -> None:
        """Write and sync every txn of ``batch`` (one sync for all)."""
        writes = WriteBatch(raw_mode=True)
        for hdr, txn in batch:
            writes.put(LOG_PREFIX + _u64(hdr.zxid), encode_txn(hdr, txn))
        self.write_synced(writes)

    def write_synced(self, writes: WriteBatch) -> None:
        """Write ``writes`` and fdatasync the WAL before returning. This is what a write with
        WriteOptions.sync does (the same write and fdatasync calls), but rocksdict holds the
        GIL through a synced write, which would stop the event loop for every fsync, while
        flush_wal releases it."""
        self.db.write(writes, self._no_sync)
        self.db.flush_wal(True)

    def put_synced(self, key: bytes, value: bytes) -> None:
        writes = WriteBatch(raw_mode=True)
        writes.put(key, value)
        self.write_synced(writes)

    def txns_after(self, zxid: int) -> Iterator[tuple[r.TxnHeader, object]]:
        iterator = self.db.iter()
        iterator.seek(LOG_PREFIX + _u64(zxid + 1))
        while iterator.valid():
            key = iterator.key()
            if not key.startswith(LOG_PREFIX):
                break
            yield decode_txn(iterator.value())
            iterator.next()

    def last_logged_zxid(self) -> int:
        iterator = self.db.iter()
        iterator.seek_for_prev(LOG_PREFIX + b"\xff" * 8)
        if iterator.valid() and iterator.key().startswith(LOG_PREFIX):
            return _ZXID.unpack(iterator.key()[1:])[0]
        return 0

    def truncate_before(self, zxid: int) -> None:
        """Drop txns with zxid < ``zxid`` (covered by a retained snapshot)."""
        writes = WriteBatch(raw_mode=True)
        writes.delete_range(LOG_PREFIX + _u64(0), LOG_PREFIX + _u64(zxid))
        self.write_synced(writes)

    # -- snapshots -----------------------------------------------------------------------------

    def write_snapshot(self, zxid: int, nodes, sessions, time_ms: int) -> dict:
        """Store a snapshot of the tree as of ``zxid``; nodes come parents first."""
        writes = WriteBatch(raw_mode=True)
        chunk: list[bytes] = []
        chunk_bytes = 0
        chunk_count = 0
        node_count = 0
        for path, node in nodes:
            item = encode_node(path, node)
            chunk.append(item)
            chunk_bytes += len(item)
            node_count += 1
            if chunk_bytes >= CHUNK_BYTES:
                writes.put(SNAPSHOT_PREFIX + _CHUNK.pack(zxid, chunk_count), b"".join(chunk))
                chunk, chunk_bytes = [], 0
                chunk_count += 1
        if chunk:
            writes.put(SNAPSHOT_PREFIX + _CHUNK.pack(zxid, chunk_count), b"".join(chunk))
            chunk_count += 1
        session_bytes = b"".join(SnapshotSession.encode(s) for s in sessions)
        meta = {"zxid": zxid, "chunks": chunk_count, "nodes": node_count,
                "sessions": session_bytes.hex(), "time_ms": time_ms}
        self.write_synced(writes)
        self.put_synced(META_PREFIX + _u64(zxid), json.dumps(meta).encode())
        return meta

    def write_snapshot_chunks(self, zxid: int, chunks: list[bytes], node_count: int, sessions,
                              time_ms: int) -> dict:
        """Store a snapshot already encoded (SnapshotNode records, in chunks); ``zxid`` is the
        last txn applied when it was started (the log is replayed from there)."""
        writes = WriteBatch(raw_mode=True)
        for index, chunk in enumerate(chunks):
            writes.put(SNAPSHOT_PREFIX + _CHUNK.pack(zxid, index), chunk)
        session_bytes = b"".join(SnapshotSession.encode(s) for s in sessions)
        meta = {"zxid": zxid, "chunks": len(chunks), "nodes": node_count,
                "sessions": session_bytes.hex(), "time_ms": time_ms}
        self.write_synced(writes)
        self.put_synced(META_PREFIX + _u64(zxid), json.dumps(meta).encode())
        return meta

    def snapshots(self) -> list[dict]:
        """Complete snapshots, newest first."""
        found = []
        iterator = self.db.iter()
        iterator.seek(META_PREFIX)
        while iterator.valid() and iterator.key().startswith(META_PREFIX):
            found.append(json.loads(iterator.value()))
            iterator.next()
        return sorted(found, key=lambda m: m["zxid"], reverse=True)

    def read_snapshot(self, meta: dict) -> tuple[Iterator[r.Id], list]:
        zxid = meta["zxid"]

        def nodes():
            for index in range(meta["chunks"]):
                data = self.db[SNAPSHOT_PREFIX + _CHUNK.pack(zxid, index)]
                offset = 0
                while offset < len(data):
                    node, offset = SnapshotNode.decode_from(data, offset)
                    yield node

        raw = bytes.fromhex(meta["sessions"])
        sessions = []
        offset = 0
        while offset < len(raw):
            session, offset = SnapshotSession.decode_from(raw, offset)
            sessions.append(session)
        return nodes(), sessions

    def delete_snapshot(self, meta: dict) -> None:
        zxid = meta["zxid"]
        writes = WriteBatch(raw_mode=True)
        writes.delete(META_PREFIX + _u64(zxid))
        writes.delete_range(SNAPSHOT_PREFIX + _CHUNK.pack(zxid, 0),
                            SNAPSHOT_PREFIX + _CHUNK.pack(zxid + 1, 0))
        self.write_synced(writes)

    def purge(self, retain_count: int) -> int:
        """Keep the newest ``retain_count`` snapshots and the log they need; return how many
        snapshots were removed."""
        snapshots = self.snapshots()
        if len(snapshots) <= retain_count:
            return 0
        doomed = snapshots[retain_count:]
        for meta in doomed:
            self.delete_snapshot(meta)
        oldest_kept = snapshots[retain_count - 1]["zxid"]
        self.truncate_before(oldest_kept + 1)
        return len(doomed)
