"""What an ensemble member needs from its disk (``zkpy.storage.rocks_storage.RocksStorage`` is
the one implementation, in the runtime and in the simulator alike).

Contract (the node relies on it):
* ``persist_epochs`` is durable when it returns;
* ``append`` writes txns in zxid order; they are durable once the owner reports it to the node
  (``EnsembleNode.log_durable``), never before the storage has synced them;
* ``truncate_after`` drops every txn with a larger zxid, durably, before it returns;
* ``install_snapshot`` replaces the whole state (tree and log) by a snapshot (the tree and
  sessions a leader sent), durably, before it returns: the caller changes that tree afterwards;
* ``read_txns(after, upto)`` returns the logged txns in (after, upto], in order;
* ``load_snapshot`` returns the newest snapshot's tree, sessions and zxid (an empty tree and
  zxid 0 when there is none); the log after it is read with ``read_txns``;
* ``epochs``, ``floor_zxid`` (the newest snapshot's zxid) and ``logged_zxids(after)`` are what
  a member starts its peer from (``zkpy.ensemble.member``).
"""

from __future__ import annotations

from typing import Protocol

from zkpy.tree.datatree import DataTree


class Storage(Protocol):
    def persist_epochs(self, accepted_epoch: int, current_epoch: int) -> None: ...
    def append(self, batch: list) -> None: ...
    def truncate_after(self, zxid: int) -> None: ...
    def install_snapshot(self, zxid: int, tree: DataTree, sessions: list) -> None: ...
    def read_txns(self, after: int, upto: int) -> list: ...
    def load_snapshot(self) -> tuple[DataTree, list, int]: ...
    def epochs(self) -> tuple[int, int]: ...
    def floor_zxid(self) -> int: ...
    def logged_zxids(self, after: int) -> list[int]: ...
