"""Reading a zkpy data directory from outside the server (dumps, export).

The RocksDB database is opened read-only, so this works while a server is running on it (it
then sees what was synced when it opened).
"""

from __future__ import annotations

from pathlib import Path


from jute import OpCode
from zkpy.storage.txnlog import TxnLog
from zkpy.tree.datatree import DataTree, Node

ZKPY_DB = "zkpy-db"


class NotZkpyData(ValueError):
    pass


def db_path(directory: str | Path) -> Path:
    """The RocksDB directory of a zkpy dataDir (or dataLogDir), or the database itself."""
    directory = Path(directory)
    if (directory / ZKPY_DB / "CURRENT").is_file():
        return directory / ZKPY_DB
    if (directory / "CURRENT").is_file():
        return directory
    raise NotZkpyData(f"{directory}: no zkpy database ({ZKPY_DB}/) here")


def open_read_only(directory: str | Path) -> TxnLog:
    """A TxnLog over the database, opened read-only (only its read methods may be used)."""
    path = db_path(directory)
    try:
        return TxnLog(path, read_only=True)
    except Exception as error:  # noqa: BLE001 - rocksdict raises plain exceptions
        raise NotZkpyData(f"{path}: cannot open the zkpy database: {error}") from None


def load_tree(txn_log: TxnLog) -> dict:
    """The tree and sessions as a server restarting on this data would rebuild them."""
    tree = DataTree()
    sessions: dict[int, int] = {}
    snapshots = txn_log.snapshots()
    snapshot_zxid = 0
    meta = None
    if snapshots:
        meta = snapshots[0]
        snapshot_zxid = meta["zxid"]
        nodes, snapshot_sessions = txn_log.read_snapshot(meta)
        tree.clear()
        for record in nodes:
            stat = record.stat
            tree.load_node(record.path, Node(
                record.data, record.acl, stat.czxid, stat.mzxid, stat.ctime, stat.mtime,
                stat.version, stat.cversion, stat.aversion, stat.ephemeral_owner, stat.pzxid))
        tree.last_zxid = snapshot_zxid
        sessions.update((s.session_id, s.timeout_ms) for s in snapshot_sessions)
    replayed = 0
    for hdr, txn in txn_log.txns_after(snapshot_zxid):
        tree.apply(hdr, txn)
        if hdr.type == OpCode.createSession:
            sessions[hdr.client_id] = txn.timeout_ms
        elif hdr.type == OpCode.closeSession:
            sessions.pop(hdr.client_id, None)
        replayed += 1
    return {"tree": tree, "sessions": sessions, "snapshot": meta, "replayed": replayed,
            "zxid": tree.last_zxid}
