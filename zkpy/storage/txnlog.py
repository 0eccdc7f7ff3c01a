"""The transaction log and snapshots, in one RocksDB database.

Durability duty: ``append`` returns only after the batch is synced (``write_synced``: the WAL is
fdatasync'ed), and the caller replies to no request before that. Concurrent writes share one sync: the runtime hands
over everything prepped since the last sync as one batch (group commit).

Keys (big-endian zxids keep them in zxid order):
* ``L`` + zxid: a txn, as TxnHeader + txn record bytes, Jute-encoded;
* ``M`` + zxid: a snapshot's metadata (JSON), written last, so a snapshot without it is
  incomplete and ignored. Its nodes are in the file the metadata names (``"file"``), in the
  ``snapshots`` directory inside the database's (``zkpy.storage.snapfile``), as
  format-2 chunks (``zkpy.storage.snapcodec``);
* ``S`` + zxid + chunk number: the nodes of snapshots written before snapshot files existed
  (metadata without ``"file"``), still read: format 2 (``"format": 2``) or, without a
  ``format``, format 1 (SnapshotNode records back to back);
* ``secret``: the random secret session passwords are derived from.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from pathlib import Path
from typing import Callable, Iterator

from rocksdict import (AccessType, DBRecoveryMode, Options, Rdict, ReadOptions, WriteBatch,
                       WriteOptions)

from jute import records as r
from zkpy.storage import snapcodec, snapfile
from zkpy.storage.records import SnapshotNode, SnapshotSession, node_from_record
from zkpy.tree.txncodec import decode_txn, encode_txn

_ZXID = struct.Struct(">Q")
_CHUNK = struct.Struct(">QI")
LOG_PREFIX = b"L"
SNAPSHOT_PREFIX = b"S"
META_PREFIX = b"M"
_LOG_END = bytes([LOG_PREFIX[0] + 1])  # no log key reaches it
_META_END = bytes([META_PREFIX[0] + 1])
# Inside the database's directory, so that it moves with it (an import renames that
# directory into place); RocksDB leaves alone what it did not create.
SNAPSHOT_DIRECTORY = "snapshots"
CHUNK_BYTES = 1 << 20
_CHUNKS_PER_READ = 16  # snapshot chunks fetched with one multi-get


def _u64(zxid: int) -> bytes:
    return _ZXID.pack(zxid & 0xFFFFFFFFFFFFFFFF)


def _format1_records(chunk: bytes) -> Iterator:
    offset = 0
    while offset < len(chunk):
        node, offset = SnapshotNode.decode_from(chunk, offset)
        yield node


class _Format1Loader:
    """Loads format-1 chunks (SnapshotNode records) as TreeLoader loads format 2."""

    def __init__(self, tree) -> None:
        self.tree = tree
        self.node_count = 0

    def load_chunk(self, chunk: bytes) -> None:
        for record in _format1_records(chunk):
            self.tree.load_node(record.path, node_from_record(record))
            self.node_count += 1

    def finish(self) -> None:
        pass


class StorageError(Exception):
    """The database cannot be opened or read; the message names the directory and RocksDB's
    reason (for damage, the file and offset)."""


class StorageCorruptionError(StorageError):
    """A data file failed a checksum or is inconsistent: serving from it could answer with
    missing or wrong data, so the server must not start on it."""


def _storage_error(directory: Path, error: Exception) -> StorageError:
    # rocksdict raises plain Exceptions carrying RocksDB's status text ("Corruption: block
    # checksum mismatch: ... in db/000009.sst offset 8160 size 4075").
    message = f"{directory}: {error}"
    if "Corruption" not in str(error):
        return StorageError(message)
    if not re.search(r"\d{6}\.sst|MANIFEST|CURRENT|OPTIONS", str(error)):
        # Damage found replaying the write-ahead log is reported without the file's name.
        logs = sorted(path.name for path in directory.glob("*.log"))
        message += f" (in the write-ahead log: {', '.join(logs) or 'none left'})"
    return StorageCorruptionError(message)


class SnapshotWriter:
    """Writes one snapshot's chunks to a new snapshot file as they come, then its metadata.
    Until ``commit`` the snapshot does not exist for readers; ``abandon`` removes the file."""

    def __init__(self, txn_log: "TxnLog", zxid: int) -> None:
        self.txn_log = txn_log
        self.zxid = zxid
        self.path = txn_log.new_snapshot_path(zxid)
        self._file = snapfile.SnapshotFileWriter(self.path)

    def add(self, chunk: bytes) -> None:
        self._file.add(chunk)

    def commit(self, node_count: int, sessions, time_ms: int) -> dict:
        self._file.finish(node_count)
        return self.txn_log.commit_snapshot_file(self.zxid, self.path, node_count, sessions,
                                                 time_ms)

    def abandon(self) -> None:
        self._file.abandon()


class TxnLog:
    """Append-only txn log plus snapshots (see the module docstring for the key layout)."""

    def __init__(self, directory: str | os.PathLike, read_only: bool = False) -> None:
        """Open (and create) the database in ``directory``. ``read_only``: an existing
        database, opened for reading only (the dump tools), even while a server has it."""
        self.directory = Path(directory)
        self.snapshot_directory = self.directory / SNAPSHOT_DIRECTORY
        # Called from the appending thread after each synced batch: (elapsed ms, txn count).
        self.on_synced: Callable[[float, int], None] | None = None
        self._no_sync = WriteOptions()
        self._no_sync.sync = False
        options = Options(raw_mode=True)
        options.set_paranoid_checks(True)
        # RocksDB's default (point in time) replays the WAL up to its first damaged record and
        # silently drops the rest. Every record before the tail was acknowledged, so only an
        # incomplete last record (a write torn by a crash, never acknowledged) may be dropped;
        # any other damage stops the open.
        options.set_wal_recovery_mode(DBRecoveryMode.tolerate_corrupted_tail_records())
        if read_only:
            self.db = self._open(options, access_type=AccessType.read_only())
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        options.create_if_missing(True)
        self.db = self._open(options)
        self.snapshot_directory.mkdir(exist_ok=True)
        self._remove_orphan_snapshot_files()

    def _open(self, options: Options, **kwargs) -> Rdict:
        try:
            return Rdict(str(self.directory), options, **kwargs)
        except Exception as error:  # rocksdict raises plain Exceptions
            raise _storage_error(self.directory, error) from None

    def _scan(self, first_key: bytes, upper_bound: bytes) -> Iterator[bytes]:
        """The values from ``first_key`` up to ``upper_bound``, in key order.
        A RocksDB iterator that meets a damaged block just stops as if the data had ended; its
        status tells the two apart, so it is checked at the end and damage raises
        StorageCorruptionError instead of passing for the end of the log."""
        bounds = ReadOptions()
        bounds.set_iterate_upper_bound(upper_bound)
        iterator = self.db.iter(bounds)
        iterator.seek(first_key)
        valid, advance, value = iterator.valid, iterator.next, iterator.value
        while valid():
            yield value()
            advance()
        self._check(iterator)

    def _check(self, iterator) -> None:
        """Raise what stopped ``iterator``, if it was not the end of the data."""
        try:
            iterator.status()
        except Exception as error:  # rocksdict raises plain Exceptions
            raise _storage_error(self.directory, error) from None

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
        """Write and sync every txn of ``batch`` (one sync for all); then tell ``on_synced``
        (if set) how long that took, in ms, and how many txns it made durable."""
        started = time.perf_counter()
        writes = WriteBatch(raw_mode=True)
        for hdr, txn in batch:
            writes.put(LOG_PREFIX + _u64(hdr.zxid), encode_txn(hdr, txn))
        self.write_synced(writes)
        if self.on_synced is not None:
            self.on_synced((time.perf_counter() - started) * 1000.0, len(batch))

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
        for encoded in self.encoded_txns_after(zxid):
            yield decode_txn(encoded)

    def encoded_txns_after(self, zxid: int) -> Iterator[bytes]:
        """The logged txns after ``zxid`` as stored (TxnHeader and record bytes), in zxid order;
        StorageCorruptionError if a damaged block cuts the log short."""
        return self._scan(LOG_PREFIX + _u64(zxid + 1), _LOG_END)

    def last_logged_zxid(self) -> int:
        iterator = self.db.iter()
        iterator.seek_for_prev(LOG_PREFIX + b"\xff" * 8)
        if iterator.valid() and iterator.key().startswith(LOG_PREFIX):
            return _ZXID.unpack(iterator.key()[1:])[0]
        self._check(iterator)
        return 0

    def truncate_before(self, zxid: int) -> None:
        """Drop txns with zxid < ``zxid`` (covered by a retained snapshot)."""
        writes = WriteBatch(raw_mode=True)
        writes.delete_range(LOG_PREFIX + _u64(0), LOG_PREFIX + _u64(zxid))
        self.write_synced(writes)

    # -- snapshots -----------------------------------------------------------------------------

    def write_snapshot(self, zxid: int, nodes, sessions, time_ms: int) -> dict:
        """Store a snapshot of the tree as of ``zxid``; nodes come parents first. Each chunk
        goes to the file as soon as it is encoded."""
        writer = self.snapshot_writer(zxid)
        node_count = 0
        encoder = snapcodec.ChunkEncoder()
        for path, node in nodes:
            encoder.add([path], [node])
            node_count += 1
            if encoder.size_bytes >= CHUNK_BYTES:
                writer.add(encoder.finish())
                encoder = snapcodec.ChunkEncoder()
        if encoder.node_count:
            writer.add(encoder.finish())
        return writer.commit(node_count, sessions, time_ms)

    def write_snapshot_chunks(self, zxid: int, chunks, node_count: int, sessions,
                              time_ms: int) -> dict:
        """Store a snapshot already encoded (format-2 chunks); ``zxid`` is the last txn applied
        when it was started (the log is replayed from there)."""
        writer = self.snapshot_writer(zxid)
        for chunk in chunks:
            writer.add(chunk)
        return writer.commit(node_count, sessions, time_ms)

    def snapshot_writer(self, zxid: int) -> "SnapshotWriter":
        return SnapshotWriter(self, zxid)

    def new_snapshot_path(self, zxid: int) -> Path:
        """A path no other snapshot file has (two snapshots may share a zxid)."""
        return self.snapshot_directory / f"snapshot.{zxid:016x}.{time.time_ns():x}"

    def commit_snapshot_file(self, zxid: int, path: Path, node_count: int, sessions,
                             time_ms: int) -> dict:
        """Make the durable snapshot file ``path`` the snapshot at ``zxid`` by writing its
        metadata (synced); a snapshot that had the same zxid is replaced."""
        previous = self.db.get(META_PREFIX + _u64(zxid))
        session_bytes = b"".join(SnapshotSession.encode(s) for s in sessions)
        meta = {"zxid": zxid, "format": snapcodec.FORMAT, "file": path.name,
                "nodes": node_count, "sessions": session_bytes.hex(), "time_ms": time_ms}
        self.put_synced(META_PREFIX + _u64(zxid), json.dumps(meta).encode())
        if previous is not None:
            self._remove_snapshot_nodes(json.loads(previous), keep_file=path.name)
        return meta

    def _remove_orphan_snapshot_files(self) -> None:
        """Files no metadata names: snapshots cut short by a crash before their commit."""
        named = {meta.get("file") for meta in self.snapshots()}
        for path in self.snapshot_directory.iterdir():
            if path.name not in named:
                snapfile.remove(path)

    def snapshots(self) -> list[dict]:
        """Complete snapshots, newest first."""
        found = [json.loads(value) for value in self._scan(META_PREFIX, _META_END)]
        return sorted(found, key=lambda m: m["zxid"], reverse=True)

    def read_snapshot(self, meta: dict) -> tuple[Iterator, list]:
        """The snapshot's nodes as SnapshotNode records (parents first), and its sessions."""
        if meta.get("format", 1) == 1:
            decode_chunk = _format1_records
        else:
            decode_chunk = snapcodec.iter_records

        def nodes():
            for chunk in self._chunks(meta):
                yield from decode_chunk(chunk)

        return nodes(), self._sessions(meta)

    def load_snapshot(self, meta: dict, tree, progress=None) -> tuple[int, list]:
        """Load the snapshot's nodes into ``tree`` (cleared first; its last_zxid set), return
        (node count, sessions). ``progress(count)`` is told every 100,000 nodes or so."""
        tree.clear()
        loader = snapcodec.TreeLoader(tree) if meta.get("format", 1) != 1 else _Format1Loader(tree)
        reported = 0
        for chunk in self._chunks(meta):
            loader.load_chunk(chunk)
            if progress and loader.node_count - reported >= 100_000:
                progress(loader.node_count)
                reported = loader.node_count
        loader.finish()
        tree.last_zxid = meta["zxid"]
        return loader.node_count, self._sessions(meta)

    def _chunks(self, meta: dict) -> Iterator[bytes]:
        if "file" in meta:
            return snapfile.read_chunks(self.snapshot_directory / meta["file"])
        return self._stored_chunks(meta)

    def _stored_chunks(self, meta: dict) -> Iterator[bytes]:
        zxid = meta["zxid"]
        for first in range(0, meta["chunks"], _CHUNKS_PER_READ):
            last = min(first + _CHUNKS_PER_READ, meta["chunks"])
            keys = [SNAPSHOT_PREFIX + _CHUNK.pack(zxid, index) for index in range(first, last)]
            for key, chunk in zip(keys, self.db[keys]):
                if chunk is None:
                    raise KeyError(f"snapshot {hex(zxid)} lacks chunk {key.hex()}")
                yield chunk

    @staticmethod
    def _sessions(meta: dict) -> list:
        raw = bytes.fromhex(meta["sessions"])
        sessions = []
        offset = 0
        while offset < len(raw):
            session, offset = SnapshotSession.decode_from(raw, offset)
            sessions.append(session)
        return sessions

    def delete_snapshot(self, meta: dict) -> None:
        writes = WriteBatch(raw_mode=True)
        writes.delete(META_PREFIX + _u64(meta["zxid"]))
        self.write_synced(writes)
        self._remove_snapshot_nodes(meta)

    def _remove_snapshot_nodes(self, meta: dict, keep_file: str | None = None) -> None:
        """The nodes of a snapshot whose metadata is gone or replaced: its file, or its
        chunks in the database (snapshots from before snapshot files)."""
        if "file" in meta:
            if meta["file"] != keep_file:
                snapfile.remove(self.snapshot_directory / meta["file"])
            return
        zxid = meta["zxid"]
        writes = WriteBatch(raw_mode=True)
        writes.delete_range(SNAPSHOT_PREFIX + _CHUNK.pack(zxid, 0),
                            SNAPSHOT_PREFIX + _CHUNK.pack(zxid + 1, 0))
        self.db.write(writes, self._no_sync)

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
