"""The operations subcommands of ``zkpy``: import, export, dump-snapshot, dump-log. Each adds
its arguments to the command line's subparsers and names the function that runs it."""

from __future__ import annotations

import argparse


def add_subcommands(subparsers) -> None:
    _add_import(subparsers)
    _add_export(subparsers)
    _add_dump_snapshot(subparsers)
    _add_dump_log(subparsers)


def _add_import(subparsers) -> None:
    parser = subparsers.add_parser(
        "import", help="import a ZooKeeper data directory",
        description="Import a ZooKeeper 3.x data directory (snapshots and txn logs) into a zkpy "
                    "data directory.")
    parser.add_argument("--from-zookeeper", metavar="DATADIR",
                        help="ZooKeeper's dataDir (the directory holding version-2/)")
    parser.add_argument("--zookeeper-log-dir", metavar="DATALOGDIR",
                        help="ZooKeeper's dataLogDir, if its txn logs are not in DATADIR")
    parser.add_argument("--config", metavar="ZOO_CFG",
                        help="take dataDir and dataLogDir from this zoo.cfg: ZooKeeper's data is "
                             "read from them and zkpy's written where a zkpy server started with "
                             "the same zoo.cfg looks for it")
    parser.add_argument("--to", metavar="ZKPY_DATADIR",
                        help="zkpy's dataDir (its dataLogDir if that is set); default: DATADIR. "
                             "The data goes to ZKPY_DATADIR/zkpy-db")
    parser.add_argument("--force", action="store_true",
                        help="replace zkpy data already in the target")
    parser.set_defaults(run=_run_import)


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write zkpy's data as a ZooKeeper snapshot",
        description="Write zkpy's data as a ZooKeeper 3.8 snapshot.")
    parser.add_argument("--to-zookeeper", required=True, metavar="DIR",
                        help="ZooKeeper dataDir to write version-2/snapshot.<zxid> into")
    parser.add_argument("--from", dest="source", default="./data", metavar="ZKPY_DATADIR",
                        help="zkpy's dataDir (or dataLogDir); default ./data")
    parser.add_argument("--gzip", action="store_true",
                        help="write snapshot.<zxid>.gz (zookeeper.snapshot.compression.method=gz)")
    parser.add_argument("--force", action="store_true",
                        help="write even if DIR already holds ZooKeeper data")
    parser.set_defaults(run=_run_export)


def _add_dump_snapshot(subparsers) -> None:
    parser = subparsers.add_parser(
        "dump-snapshot", help="print a snapshot one znode a line",
        description="Print a snapshot of zkpy (or of ZooKeeper) one znode a line.")
    parser.add_argument("datadir", help="zkpy dataDir, its zkpy-db, or a ZooKeeper dataDir")
    parser.add_argument("--json", action="store_true", help="JSON lines")
    parser.add_argument("-d", "--data", action="store_true", help="include znode data")
    parser.add_argument("--zxid", help="the snapshot at this zxid (default: the newest)")
    parser.set_defaults(run=_run_dump_snapshot)


def _add_dump_log(subparsers) -> None:
    parser = subparsers.add_parser(
        "dump-log", help="print the transaction log one txn a line",
        description="Print the transaction log of zkpy (or of ZooKeeper) one txn a line.")
    parser.add_argument("datadir", help="zkpy dataDir, its zkpy-db, or a ZooKeeper dataDir")
    parser.add_argument("--json", action="store_true", help="JSON lines")
    parser.add_argument("--from-zxid", help="start at this zxid (e.g. 0x1a)")
    parser.add_argument("--limit", type=int, help="print at most this many txns")
    parser.set_defaults(run=_run_dump_log)


# The tools import RocksDB and the formats only when they run, so `zkpy --help` stays quick.

def _run_import(args: argparse.Namespace) -> int:
    from zkpy.tools import importer
    return importer.main(args)


def _run_export(args: argparse.Namespace) -> int:
    from zkpy.tools import exporter
    return exporter.main(args)


def _run_dump_snapshot(args: argparse.Namespace) -> int:
    from zkpy.tools import dump
    return dump.main_snapshot(args)


def _run_dump_log(args: argparse.Namespace) -> int:
    from zkpy.tools import dump
    return dump.main_log(args)
