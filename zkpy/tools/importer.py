"""``zkpy import --from-zookeeper DATADIR``: turn a ZooKeeper 3.x data directory into zkpy's.

ZooKeeper's own start-up is followed: the newest snapshot that reads back whole (trailing "/"
and checksums) is loaded, then every logged txn with a larger zxid is replayed with
ZooKeeper's tolerance for fuzzy snapshots (``zkpy.tools.replay``). The resulting tree and
session table are written as one zkpy snapshot at the last zxid, so ``zkpy`` started on the
result serves the same znodes, ACLs, Stats and zxid. An ensemble member's acceptedEpoch and
currentEpoch files (in version-2/) are carried over too (defaulting, as ZooKeeper does, to the
last zxid's epoch). Session passwords are not carried over
(zkpy derives its own), so clients of imported sessions get "session expired" on reconnect
and the sessions' ephemeral nodes go when the sessions time out.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from zkpy.storage.rocks_storage import RocksStorage
from zkpy.storage.txnlog import TxnLog
from zkpy.tools import zkformat
from zkpy.tools.replay import ToleratingReplay
from zkpy.tree.datatree import DataTree, Node

PROGRESS_EVERY = 100_000
ZKPY_DB = "zkpy-db"


class ImportFailed(RuntimeError):
    """The import cannot proceed (message for the user)."""


def load_zookeeper(snap_dir: Path, log_dir: Path | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Rebuild ZooKeeper's tree and sessions from its dataDir/dataLogDir ``version-2``s."""
    say = progress or (lambda message: None)
    snap_version_dir = zkformat.version_dir(snap_dir)
    log_version_dir = zkformat.version_dir(log_dir) if log_dir else snap_version_dir
    tree = DataTree()
    sessions: dict[int, int] = {}
    snapshot_zxid = -1
    snapshot_path = None
    node_count = 0
    for zxid, path in zkformat.snapshot_files(snap_version_dir):
        if not zkformat.snapshot_looks_complete(path):
            say(f"skipping incomplete snapshot {path.name}")
            continue
        try:
            tree.clear()
            sessions.clear()
            node_count = 0
            with zkformat.ZkSnapshot(path) as snapshot:
                for record in snapshot.nodes():
                    stat = record.stat
                    tree.load_node(record.path, Node(
                        record.data, record.acl, stat.czxid, stat.mzxid, stat.ctime, stat.mtime,
                        stat.version, stat.cversion, stat.aversion, stat.ephemeral_owner,
                        stat.pzxid))
                    node_count += 1
                    if node_count % PROGRESS_EVERY == 0:
                        say(f"{path.name}: {node_count} nodes read")
                sessions.update(snapshot.sessions)
        except (zkformat.ZkFormatError, KeyError) as error:
            say(f"skipping unreadable snapshot {path.name}: {error}")
            continue
        snapshot_zxid = zxid
        snapshot_path = path
        say(f"loaded {path.name}: {node_count} nodes, {len(sessions)} sessions")
        break
    if snapshot_path is None:
        tree = DataTree()  # ZooKeeper's empty tree (what it starts from with no snapshot)
        sessions.clear()
        snapshot_zxid = 0
        say("no usable snapshot: replaying the whole log over an empty tree")
    tree.last_zxid = max(snapshot_zxid, 0)
    replay = ToleratingReplay(tree, sessions)
    replayed = 0
    last_seen = snapshot_zxid
    for entry in zkformat.read_logs(log_version_dir, snapshot_zxid):
        if last_seen > 0 and entry.hdr.zxid != last_seen + 1 and (entry.hdr.zxid >> 32) == (last_seen >> 32):
            say(f"warning: txn log gap between {last_seen:#x} and {entry.hdr.zxid:#x}")
        last_seen = entry.hdr.zxid
        replay.apply(entry.hdr, entry.txn)
        replayed += 1
        if replayed % PROGRESS_EVERY == 0:
            say(f"{replayed} txns replayed (zxid {entry.hdr.zxid:#x})")
    epoch_of_zxid = tree.last_zxid >> 32
    epochs = {}
    for name in ("acceptedEpoch", "currentEpoch"):
        # Written by ensemble members (QuorumPeer); missing ones default to the last zxid's
        # epoch, as QuorumPeer.loadDataBase does.
        try:
            epochs[name] = int((snap_version_dir / name).read_text().strip())
        except FileNotFoundError:
            epochs[name] = epoch_of_zxid
        except ValueError:
            raise zkformat.ZkFormatError(f"{snap_version_dir / name}: not a number") from None
    return {"tree": tree, "sessions": sessions, "snapshot": snapshot_path,
            "snapshot_zxid": snapshot_zxid, "nodes": node_count, "replayed": replayed,
            "tolerated_failures": replay.failures, "zxid": tree.last_zxid, "epochs": epochs}


def run_import(source: Path, target: Path, log_dir: Path | None = None, force: bool = False,
               progress: Callable[[str], None] | None = None) -> dict:
    """Import ``source`` (a ZooKeeper dataDir) into ``target`` (a zkpy data directory).

    The database is written beside the target's ``zkpy-db`` and renamed into place at the
    end, so a failed import leaves what was there before."""
    say = progress or (lambda message: None)
    db_dir = target / ZKPY_DB
    if db_dir.exists() and any(db_dir.iterdir()) and not force:
        raise ImportFailed(f"{db_dir} already holds zkpy data; pass --force to replace it")
    result = load_zookeeper(source, log_dir, say)
    tree = result["tree"]
    target.mkdir(parents=True, exist_ok=True)
    staging = target / (ZKPY_DB + ".importing")
    if staging.exists():
        shutil.rmtree(staging)
    txn_log = TxnLog(staging)
    try:
        meta = txn_log.write_snapshot(tree.last_zxid, tree.iter_nodes(),
                                      sorted(result["sessions"].items()),
                                      time.time_ns() // 1_000_000)
        epochs = result["epochs"]
        RocksStorage(txn_log).persist_epochs(epochs["acceptedEpoch"], epochs["currentEpoch"])
    finally:
        txn_log.close()
    if db_dir.exists():
        shutil.rmtree(db_dir)
    staging.rename(db_dir)
    result["written_nodes"] = meta["nodes"]
    result["db"] = db_dir
    return result


def _directories(args) -> tuple[Path, Path | None, Path]:
    """(ZooKeeper dataDir, its dataLogDir or None, zkpy target) from the arguments."""
    if args.config:
        from zkpy.config import ConfigError, load
        try:
            config = load(args.config)
        except ConfigError as error:
            raise ImportFailed(f"{args.config}: {error}") from None
        source = Path(args.from_zookeeper or config.data_dir)
        log_dir = args.zookeeper_log_dir or config.data_log_dir
        # Where a zkpy server started with this zoo.cfg keeps its database.
        target = args.to or config.data_log_dir or config.data_dir
        return source, Path(log_dir) if log_dir else None, Path(target)
    if not args.from_zookeeper:
        raise ImportFailed("give --from-zookeeper DATADIR or --config zoo.cfg")
    source = Path(args.from_zookeeper)
    log_dir = Path(args.zookeeper_log_dir) if args.zookeeper_log_dir else None
    if args.to:
        target = Path(args.to)
    else:
        target = source.parent if source.name == "version-2" else source
    return source, log_dir, target


def main(args) -> int:
    def say(message: str) -> None:
        print(f"zkpy import: {message}", file=sys.stderr, flush=True)

    try:
        source, log_dir, target = _directories(args)
        result = run_import(source, target, log_dir, args.force, say)
    except (ImportFailed, zkformat.ZkFormatError, OSError, ValueError) as error:
        say(f"error: {error}")
        return 1
    snapshot = result["snapshot"].name if result["snapshot"] else "none"
    print(f"imported {result['written_nodes']} znodes and {len(result['sessions'])} sessions "
          f"at zxid {result['zxid']:#x} (snapshot {snapshot}, {result['replayed']} txns replayed, "
          f"{result['tolerated_failures']} tolerated failures) into {result['db']}")
    return 0
