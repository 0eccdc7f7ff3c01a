"""Argument parsing for the operations subcommands of ``zkpy``."""

from __future__ import annotations

import argparse

COMMANDS = ("import", "export", "dump-snapshot", "dump-log")


def main(command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"zkpy {command}")
    if command == "import":
        parser.description = ("Import a ZooKeeper 3.x data directory (snapshots and txn logs) "
                              "into a zkpy data directory.")
        parser.add_argument("--from-zookeeper", metavar="DATADIR",
                            help="ZooKeeper's dataDir (the directory holding version-2/)")
        parser.add_argument("--zookeeper-log-dir", metavar="DATALOGDIR",
                            help="ZooKeeper's dataLogDir, if its txn logs are not in DATADIR")
        parser.add_argument("--config", metavar="ZOO_CFG",
                            help="take dataDir and dataLogDir from this zoo.cfg: ZooKeeper's "
                                 "data is read from them and zkpy's written where a zkpy "
                                 "server started with the same zoo.cfg looks for it")
        parser.add_argument("--to", metavar="ZKPY_DATADIR",
                            help="zkpy's dataDir (its dataLogDir if that is set); default: "
                                 "DATADIR. The data goes to ZKPY_DATADIR/zkpy-db")
        parser.add_argument("--force", action="store_true",
                            help="replace zkpy data already in the target")
        from zkpy.tools import importer
        return importer.main(parser.parse_args(argv))
    if command == "export":
        parser.description = "Write zkpy's data as a ZooKeeper 3.8 snapshot."
        parser.add_argument("--to-zookeeper", required=True, metavar="DIR",
                            help="ZooKeeper dataDir to write version-2/snapshot.<zxid> into")
        parser.add_argument("--from", dest="source", default="./data", metavar="ZKPY_DATADIR",
                            help="zkpy's dataDir (or dataLogDir); default ./data")
        parser.add_argument("--gzip", action="store_true",
                            help="write snapshot.<zxid>.gz (zookeeper.snapshot.compression.method=gz)")
        parser.add_argument("--force", action="store_true",
                            help="write even if DIR already holds ZooKeeper data")
        from zkpy.tools import exporter
        return exporter.main(parser.parse_args(argv))
    from zkpy.tools import dump
    if command == "dump-snapshot":
        parser.description = "Print a snapshot of zkpy (or of ZooKeeper) one znode a line."
        parser.add_argument("datadir", help="zkpy dataDir, its zkpy-db, or a ZooKeeper dataDir")
        parser.add_argument("--json", action="store_true", help="JSON lines")
        parser.add_argument("-d", "--data", action="store_true", help="include znode data")
        parser.add_argument("--zxid", help="the snapshot at this zxid (default: the newest)")
        return dump.main_snapshot(parser.parse_args(argv))
    if command == "dump-log":
        parser.description = "Print the transaction log of zkpy (or of ZooKeeper) one txn a line."
        parser.add_argument("datadir", help="zkpy dataDir, its zkpy-db, or a ZooKeeper dataDir")
        parser.add_argument("--json", action="store_true", help="JSON lines")
        parser.add_argument("--from-zxid", help="start at this zxid (e.g. 0x1a)")
        parser.add_argument("--limit", type=int, help="print at most this many txns")
        return dump.main_log(parser.parse_args(argv))
    raise ValueError(command)
