"""What an ensemble member needs from its disk, and an in-memory version for tests.

Contract (the node relies on it):
* ``persist_epochs`` is durable when it returns;
* ``append`` writes txns in zxid order; they are durable once the owner reports it to the node
  (``EnsembleNode.log_durable``), never before the storage has synced them;
* ``truncate_after`` drops every txn with a larger zxid, durably, before it returns;
* ``install_snapshot`` replaces the whole state (tree and log) by a snapshot (the tree and
  sessions a leader sent), durably, before it returns: the caller changes that tree afterwards;
* ``read_txns(after, upto)`` returns the logged txns in (after, upto], in order;
* ``load_snapshot`` returns the newest snapshot's tree, sessions and zxid (an empty tree and
  zxid 0 when there is none); the log after it is read with ``read_txns``.
"""

from __future__ import annotations

from typing import Protocol

from zkpy.storage.records import decode_snapshot, encode_snapshot
from zkpy.tree.datatree import DataTree


class Storage(Protocol):
    def persist_epochs(self, accepted_epoch: int, current_epoch: int) -> None: ...
    def append(self, batch: list) -> None: ...
    def truncate_after(self, zxid: int) -> None: ...
    def install_snapshot(self, zxid: int, tree: DataTree, sessions: list) -> None: ...
    def read_txns(self, after: int, upto: int) -> list: ...
    def load_snapshot(self) -> tuple[DataTree, list, int]: ...


class MemoryStorage:
    """Storage for the simulator: survives a simulated crash, loses nothing it promised."""

    def __init__(self) -> None:
        self.accepted_epoch = 0
        self.current_epoch = 0
        self.snapshot: tuple[int, bytes] | None = None
        self.log: list[tuple] = []  # durable txns
        self.unsynced: list[tuple] = []  # appended, not yet synced (lost by a crash)

    def persist_epochs(self, accepted_epoch: int, current_epoch: int) -> None:
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch

    def append(self, batch: list) -> None:
        self.unsynced.extend(batch)

    def sync(self) -> int:
        """Make appended txns durable; returns the last durable zxid."""
        self.log.extend(self.unsynced)
        self.unsynced = []
        return self.last_zxid()

    def crash(self) -> None:
        self.unsynced = []

    def last_zxid(self) -> int:
        if self.log:
            return self.log[-1][0].zxid
        return self.snapshot[0] if self.snapshot else 0

    def floor_zxid(self) -> int:
        return self.snapshot[0] if self.snapshot else 0

    def truncate_after(self, zxid: int) -> None:
        self.sync()
        self.log = [entry for entry in self.log if entry[0].zxid <= zxid]

    def install_snapshot(self, zxid: int, tree: DataTree, sessions: list) -> None:
        # Kept as bytes, as a disk would: the caller goes on changing the tree object.
        self.snapshot = (zxid, encode_snapshot(tree, sessions))
        self.log = []
        self.unsynced = []

    def read_txns(self, after: int, upto: int) -> list:
        return [e for e in self.log + self.unsynced if after < e[0].zxid <= upto]

    def logged_zxids(self) -> list[int]:
        return [e[0].zxid for e in self.log]

    def load_snapshot(self) -> tuple[DataTree, list, int]:
        if self.snapshot is None:
            return DataTree(), [], 0
        tree, sessions = decode_snapshot(self.snapshot[1], self.snapshot[0])
        return tree, sessions, self.snapshot[0]
