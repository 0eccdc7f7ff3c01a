"""``zkpy export --to-zookeeper DIR``: write zkpy's data as a ZooKeeper 3.8 snapshot.

The tree and sessions are rebuilt as a restarting zkpy server would (newest snapshot plus the
log after it), then written to ``DIR/version-2/snapshot.<hex zxid>`` (see
``zkpy.tools.zkformat`` for the layout). ZooKeeper started with ``dataDir=DIR`` loads it and
serves the same tree at the same zxid; no txn log is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zkpy.tools import zkformat
from zkpy.tools.zkpydata import NotZkpyData, load_tree, open_read_only


class ExportFailed(RuntimeError):
    pass


def run_export(source: Path, target: Path, force: bool = False, compress: str = "") -> dict:
    version_dir = target / "version-2"
    if version_dir.is_dir() and (zkformat.snapshot_files(version_dir) or zkformat.log_files(version_dir)):
        if not force:
            raise ExportFailed(f"{version_dir} already holds ZooKeeper data; pass --force to add a "
                               "snapshot anyway (ZooKeeper loads the newest)")
    txn_log = open_read_only(source)
    try:
        state = load_tree(txn_log)
    finally:
        txn_log.close()
    tree = state["tree"]
    version_dir.mkdir(parents=True, exist_ok=True)
    name = f"snapshot.{tree.last_zxid:x}" + (".gz" if compress == "gz" else "")
    path = version_dir / name

    def nodes():
        for node_path, node in tree.iter_nodes():
            yield node_path, node.data, node.acl, (
                node.czxid, node.mzxid, node.ctime, node.mtime, node.version, node.cversion,
                node.aversion, node.ephemeral_owner, node.pzxid)

    count = zkformat.write_snapshot(path, nodes(), sorted(state["sessions"].items()), compress)
    return {"path": path, "nodes": count, "sessions": len(state["sessions"]), "zxid": tree.last_zxid}


def main(args) -> int:
    try:
        result = run_export(Path(args.source), Path(args.to_zookeeper), args.force,
                            "gz" if args.gzip else "")
    except (ExportFailed, NotZkpyData, zkformat.ZkFormatError, OSError) as error:
        print(f"zkpy export: error: {error}", file=sys.stderr)
        return 1
    print(f"exported {result['nodes']} znodes and {result['sessions']} sessions at zxid "
          f"{result['zxid']:#x} to {result['path']}")
    return 0
