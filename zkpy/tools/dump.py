"""``zkpy dump-snapshot`` and ``zkpy dump-log``: print snapshots and transaction logs.

They read zkpy's data directory (its RocksDB, opened read-only) and, for comparison, a
ZooKeeper dataDir too (``version-2/`` snapshot and log files), like ZooKeeper's
SnapshotFormatter and TxnLogToolkit:

* dump-snapshot: a header line, one line per znode (path, Stat fields as stored, number of
  children, data length, ACL; the data with ``--data``), one line per session;
* dump-log: one line per txn: time (UTC), session, cxid, zxid, type and the txn record.

``--json`` prints JSON lines instead, one object per line with a ``kind`` field (snapshot,
node, session; txn). Ids and zxids are hex strings ("0x..."), data and other bytes base64.
``cversion`` is printed as stored (the number of child creations, as ZooKeeper persists it);
clients see 2*cversion - numChildren.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, TextIO

from jute import OpCode, Perms
from jute import records as r
from jute.opcodes import TXN_RECORDS
from zkpy.tools import zkformat
from zkpy.tools.zkpydata import NotZkpyData, db_path, open_read_only

_PERM_LETTERS = ((Perms.CREATE, "c"), (Perms.DELETE, "d"), (Perms.READ, "r"), (Perms.WRITE, "w"),
                 (Perms.ADMIN, "a"))


def hex_id(value: int) -> str:
    return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def iso_time(ms: int) -> str:
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def perms_text(perms: int) -> str:
    return "".join(letter for bit, letter in _PERM_LETTERS if perms & bit) or "-"


def acl_text(acl) -> str:
    return ",".join(f"{entry.id.scheme}:{entry.id.id}:{perms_text(entry.perms)}" for entry in acl or ())


def op_name(kind: int) -> str:
    try:
        return OpCode(kind).name
    except ValueError:
        return f"type{kind}"


# -- values: text and JSON ---------------------------------------------------------------------


def _text_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, (bytes, bytearray)):
        return "#" + value.hex()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, r.ACL):
        return acl_text([value])
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        if value and isinstance(value[0], r.ACL):
            return "[" + acl_text(value) + "]"
        return "[" + ",".join(_text_value(item) for item in value) + "]"
    if hasattr(value, "_fields"):
        return "{" + record_text(value) + "}"
    return str(value)


def _sub_txns(txn) -> list[tuple[int, object]]:
    subs = []
    for sub in txn.txns or ():
        record = TXN_RECORDS.get(sub.type)
        try:
            subs.append((sub.type, record.decode(sub.data) if record else sub.data))
        except Exception:  # noqa: BLE001 - show what cannot be decoded as bytes
            subs.append((sub.type, sub.data))
    return subs


def record_text(record) -> str:
    if record is None:
        return ""
    if isinstance(record, r.MultiTxn):
        return "[" + " | ".join(f"{op_name(kind)} {record_text(sub) if hasattr(sub, '_fields') else _text_value(sub)}"
                                for kind, sub in _sub_txns(record)) + "]"
    return " ".join(f"{name}={_text_value(value)}" for name, value in zip(record._fields, record))


def _json_value(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, r.ACL):
        return {"perms": value.perms, "scheme": value.id.scheme, "id": value.id.id}
    if hasattr(value, "_fields"):
        return record_json(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


def record_json(record):
    if record is None:
        return None
    if isinstance(record, r.MultiTxn):
        return {"txns": [{"type": op_name(kind), "record": _json_value(sub)}
                         for kind, sub in _sub_txns(record)]}
    return {name: _json_value(value) for name, value in zip(record._fields, record)}


# -- snapshots ---------------------------------------------------------------------------------


def data_kind(directory: Path) -> str:
    """"zkpy" for a zkpy data directory, "zookeeper" for a ZooKeeper dataDir."""
    try:
        db_path(directory)
        return "zkpy"
    except NotZkpyData:
        pass
    try:
        zkformat.version_dir(directory)
        return "zookeeper"
    except zkformat.ZkFormatError:
        raise NotZkpyData(f"{directory}: neither a zkpy data directory (zkpy-db/) nor a "
                          "ZooKeeper dataDir (version-2/)") from None


class _SnapshotSource:
    """One snapshot of zkpy or ZooKeeper, readable twice (children are counted first)."""

    def __init__(self, directory: Path, zxid: int | None) -> None:
        self.kind = data_kind(directory)
        if self.kind == "zkpy":
            self.log = open_read_only(directory)
            snapshots = self.log.snapshots()
            if zxid is not None:
                snapshots = [m for m in snapshots if m["zxid"] == zxid]
            if not snapshots:
                raise zkformat.ZkFormatError(f"{directory}: no snapshot" + (f" at zxid {zxid:#x}" if zxid is not None else ""))
            self.meta = snapshots[0]
            self.zxid = self.meta["zxid"]
            self.time_ms = self.meta.get("time_ms")
            self.sessions = [(s.session_id, s.timeout_ms) for s in self.log.read_snapshot(self.meta)[1]]
            self.name = f"zkpy {self.log.directory}"
        else:
            version_dir = zkformat.version_dir(directory)
            files = zkformat.snapshot_files(version_dir)
            if zxid is not None:
                files = [f for f in files if f[0] == zxid]
            files = [f for f in files if zkformat.snapshot_looks_complete(f[1])]
            if not files:
                raise zkformat.ZkFormatError(f"{directory}: no snapshot" + (f" at zxid {zxid:#x}" if zxid is not None else ""))
            self.zxid, self.path = files[0]
            self.time_ms = int(self.path.stat().st_mtime * 1000)
            with zkformat.ZkSnapshot(self.path) as snapshot:
                self.sessions = list(snapshot.sessions)
            self.name = f"zookeeper {self.path}"

    def nodes(self) -> Iterable:
        if self.kind == "zkpy":
            yield from self.log.read_snapshot(self.meta)[0]
        else:
            with zkformat.ZkSnapshot(self.path) as snapshot:
                yield from snapshot.nodes()

    def close(self) -> None:
        if self.kind == "zkpy":
            self.log.close()


def dump_snapshot(directory: Path, out: TextIO, as_json: bool = False, with_data: bool = False,
                  zxid: int | None = None) -> int:
    source = _SnapshotSource(directory, zxid)
    try:
        children: dict[str, int] = {}
        ephemerals: dict[int, int] = {}
        count = 0
        for node in source.nodes():
            count += 1
            if node.path != "/":
                parent = node.path.rsplit("/", 1)[0] or "/"
                children[parent] = children.get(parent, 0) + 1
            owner = node.stat.ephemeral_owner
            if owner:
                ephemerals[owner] = ephemerals.get(owner, 0) + 1
        header = {"kind": "snapshot", "source": source.kind, "zxid": hex_id(source.zxid),
                  "time": iso_time(source.time_ms) if source.time_ms else None,
                  "nodes": count, "sessions": len(source.sessions)}
        if as_json:
            out.write(json.dumps(header) + "\n")
        else:
            out.write(f"{source.name}: zxid {header['zxid']}, {count} znodes, "
                      f"{len(source.sessions)} sessions, taken {header['time']}\n")
        for node in source.nodes():
            stat = node.stat
            data = node.data or b""
            num_children = children.get(node.path, 0)
            if as_json:
                item = {"kind": "node", "path": node.path, "czxid": hex_id(stat.czxid),
                        "mzxid": hex_id(stat.mzxid), "pzxid": hex_id(stat.pzxid),
                        "ctime": stat.ctime, "mtime": stat.mtime, "version": stat.version,
                        "cversion": stat.cversion, "aversion": stat.aversion,
                        "ephemeralOwner": hex_id(stat.ephemeral_owner),
                        "numChildren": num_children, "dataLength": len(data),
                        "acl": [_json_value(entry) for entry in node.acl]}
                if with_data:
                    item["data"] = base64.b64encode(data).decode()
                out.write(json.dumps(item) + "\n")
            else:
                line = (f"{node.path} czxid={hex_id(stat.czxid)} ctime={iso_time(stat.ctime)} "
                        f"mzxid={hex_id(stat.mzxid)} mtime={iso_time(stat.mtime)} "
                        f"pzxid={hex_id(stat.pzxid)} cversion={stat.cversion} "
                        f"version={stat.version} aversion={stat.aversion} "
                        f"ephemeralOwner={hex_id(stat.ephemeral_owner)} numChildren={num_children} "
                        f"dataLength={len(data)} acl={acl_text(node.acl)}")
                if with_data:
                    line += f" data=#{data.hex()}"
                out.write(line + "\n")
        for session_id, timeout_ms in sorted(source.sessions):
            if as_json:
                out.write(json.dumps({"kind": "session", "id": hex_id(session_id),
                                      "timeout": timeout_ms,
                                      "ephemerals": ephemerals.get(session_id, 0)}) + "\n")
            else:
                out.write(f"session {hex_id(session_id)} timeout={timeout_ms} "
                          f"ephemerals={ephemerals.get(session_id, 0)}\n")
        return count
    finally:
        source.close()


# -- logs ------------------------------------------------------------------------------------


def _log_entries(directory: Path, after_zxid: int):
    if data_kind(directory) == "zookeeper":
        for entry in zkformat.read_logs(zkformat.version_dir(directory), after_zxid):
            yield entry.hdr, entry.txn
        return
    txn_log = open_read_only(directory)
    try:
        yield from txn_log.txns_after(after_zxid)
    finally:
        txn_log.close()


def dump_log(directory: Path, out: TextIO, as_json: bool = False, from_zxid: int = 0,
             limit: int | None = None) -> int:
    count = 0
    for hdr, txn in _log_entries(directory, from_zxid - 1):
        if limit is not None and count >= limit:
            break
        count += 1
        if as_json:
            out.write(json.dumps({"kind": "txn", "time": iso_time(hdr.time_ms), "time_ms": hdr.time_ms,
                                  "session": hex_id(hdr.client_id), "cxid": hdr.cxid,
                                  "zxid": hex_id(hdr.zxid), "type": op_name(hdr.type),
                                  "record": record_json(txn)}) + "\n")
        else:
            out.write(f"{iso_time(hdr.time_ms)} session {hex_id(hdr.client_id)} cxid {hex_id(hdr.cxid)} "
                      f"zxid {hex_id(hdr.zxid)} {op_name(hdr.type)} {record_text(txn)}".rstrip() + "\n")
    if not as_json:
        out.write(f"{count} txns\n")
    return count


def _zxid(text: str) -> int:
    return int(text, 0)


def main_snapshot(args) -> int:
    try:
        dump_snapshot(Path(args.datadir), sys.stdout, args.json, args.data,
                      _zxid(args.zxid) if args.zxid else None)
    except BrokenPipeError:
        pass
    except (zkformat.ZkFormatError, NotZkpyData, OSError, ValueError) as error:
        print(f"zkpy dump-snapshot: error: {error}", file=sys.stderr)
        return 1
    return 0


def main_log(args) -> int:
    try:
        dump_log(Path(args.datadir), sys.stdout, args.json, _zxid(args.from_zxid) if args.from_zxid else 0,
                 args.limit)
    except BrokenPipeError:
        pass
    except (zkformat.ZkFormatError, NotZkpyData, OSError, ValueError) as error:
        print(f"zkpy dump-log: error: {error}", file=sys.stderr)
        return 1
    return 0
