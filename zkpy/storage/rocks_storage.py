"""The ensemble Storage (the contract in zkpy.ensemble.storage, met structurally) on the RocksDB
txn log.

Appends are queued and written by ``flush`` (the runtime calls it in a worker thread, one
synced write for everything queued: group commit); ``read_txns`` sees queued txns too, so a
commit can be applied before its own sync completes on a follower, as in ZooKeeper.
"""

from __future__ import annotations

import json
import threading

from rocksdict import WriteBatch

from zkpy.storage.txnlog import LOG_PREFIX, TxnLog, _u64
from zkpy.tree.datatree import DataTree

EPOCHS_KEY = b"epochs"


class RocksStorage:
    def __init__(self, txn_log: TxnLog) -> None:
        self.txn_log = txn_log
        self.queued: list[tuple] = []
        self._lock = threading.Lock()
        # Held while a batch is written, so a truncation or snapshot install can never be
        # overtaken by a write of txns queued before it.
        self._write_lock = threading.Lock()
        # Bumped by truncation and snapshot installs: a flush that began before one must not
        # report its zxid as durable afterwards.
        self.generation = 0

    def close(self) -> None:
        """Close the log. Txns still queued were never synced, so never acknowledged: they
        are dropped, as a crash would lose them."""
        with self._lock:
            self.queued = []
        self.txn_log.close()

    # -- epochs ------------------------------------------------------------------------------

    def epochs(self) -> tuple[int, int]:
        raw = self.txn_log.db.get(EPOCHS_KEY)
        if raw is None:
            return 0, 0
        value = json.loads(raw)
        return value["accepted"], value["current"]

    def persist_epochs(self, accepted_epoch: int, current_epoch: int) -> None:
        value = json.dumps({"accepted": accepted_epoch, "current": current_epoch}).encode()
        self.txn_log.put_synced(EPOCHS_KEY, value)

    # -- the log -----------------------------------------------------------------------------

    def append(self, batch: list) -> None:
        with self._lock:
            self.queued.extend(batch)

    def flush(self) -> tuple[int, int, int]:
        """Write and sync what is queued (worker thread); returns the last synced zxid (-1 if
        nothing was queued), how many txns were written, and the generation they belong to."""
        with self._write_lock:
            with self._lock:
                batch, self.queued = self.queued, []
                generation = self.generation
            if not batch:
                return -1, 0, generation
            self.txn_log.append(batch)
        return batch[-1][0].zxid, len(batch), generation

    def truncate_after(self, zxid: int) -> None:
        self.flush()  # in the loop: truncation is rare, and must see every queued txn
        with self._write_lock:
            self.generation += 1
            self._delete_log_after(zxid)

    def _delete_log_after(self, zxid: int) -> None:
        writes = WriteBatch(raw_mode=True)
        writes.delete_range(LOG_PREFIX + _u64(zxid + 1), LOG_PREFIX + b"\xff" * 8)
        self.txn_log.write_synced(writes)
        for meta in self.txn_log.snapshots():
            if meta["zxid"] > zxid:
                self.txn_log.delete_snapshot(meta)

    def install_snapshot(self, zxid: int, tree: DataTree, sessions: list) -> None:
        with self._write_lock:
            with self._lock:
                self.queued = []
                self.generation += 1
            self._replace_with_snapshot(zxid, tree, sessions)

    def _replace_with_snapshot(self, zxid: int, tree: DataTree, sessions: list) -> None:
        for meta in self.txn_log.snapshots():
            self.txn_log.delete_snapshot(meta)
        self.txn_log.write_snapshot(zxid, tree.iter_nodes(), sessions, 0)
        writes = WriteBatch(raw_mode=True)
        writes.delete_range(LOG_PREFIX + _u64(0), LOG_PREFIX + b"\xff" * 8)
        self.txn_log.write_synced(writes)

    def read_txns(self, after: int, upto: int) -> list:
        found = []
        for hdr, txn in self.txn_log.txns_after(after):
            if hdr.zxid > upto:
                break
            found.append((hdr, txn))
        with self._lock:
            queued = list(self.queued)
        last = found[-1][0].zxid if found else after
        found.extend(e for e in queued if last < e[0].zxid <= upto)
        return found

    def logged_zxids(self, after: int) -> list[int]:
        return [hdr.zxid for hdr, _ in self.txn_log.txns_after(after)]

    def floor_zxid(self) -> int:
        snapshots = self.txn_log.snapshots()
        return snapshots[0]["zxid"] if snapshots else 0

    def load_snapshot(self) -> tuple[DataTree, list, int]:
        snapshots = self.txn_log.snapshots()
        if not snapshots:
            return DataTree(), [], 0
        meta = snapshots[0]
        tree = DataTree()
        _, sessions = self.txn_log.load_snapshot(meta, tree)
        return tree, [(s.session_id, s.timeout_ms) for s in sessions], meta["zxid"]
