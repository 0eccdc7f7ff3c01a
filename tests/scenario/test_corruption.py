"""A damaged data file never leads to a server that answers with missing or wrong data.

A standalone zkpy takes 150 acknowledged creates (the data directory holds RocksDB tables, its
write-ahead log and MANIFEST, and, with snapshots every 60 txns, snapshot files), is stopped (SIGTERM,
RocksDB flushes its memtable into a table) or killed (SIGKILL, the txns stay in the WAL), then
64 bytes in the middle of every file of one kind are inverted. On restart zkpy must either refuse
to start, with a log line naming the damaged file, or serve every acknowledged write with its
data. Anything in between (serving, with some writes missing) is the failure this guards against.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.support.servers import ServerProcess, four_letter_word

WRITES = 150
FLIPPED_BYTES = 64

FILE_KINDS = {
    "table": lambda path: path.suffix == ".sst",
    "wal": lambda path: path.suffix == ".log" and path.name != "LOG",
    "manifest": lambda path: path.name.startswith("MANIFEST-"),
    "current": lambda path: path.name == "CURRENT",
    "options": lambda path: path.name.startswith("OPTIONS-"),
    "snapshot": lambda path: path.parent.name == "snapshots",
}


def _write_acknowledged(server: ServerProcess) -> dict[str, bytes]:
    client = KazooClient(server.connect_string)
    client.start(20)
    written = {}
    try:
        client.ensure_path("/acked")
        for number in range(WRITES):
            path, data = f"/acked/n{number:04d}", f"value-{number}-".encode() * 8
            client.create(path, data)
            written[path] = data
    finally:
        client.stop()
        client.close()
    return written


def _damage(files: list[Path]) -> None:
    for path in files:
        data = bytearray(path.read_bytes())
        start = max(0, len(data) // 2 - FLIPPED_BYTES // 2)
        for index in range(start, min(len(data), start + FLIPPED_BYTES)):
            data[index] ^= 0xFF
        path.write_bytes(bytes(data))


def _files_of_kind(database: Path, kind: str) -> list[Path]:
    return sorted(path for path in database.rglob("*")
                  if path.is_file() and path.stat().st_size > 0 and FILE_KINDS[kind](path))


def _exit_or_serve(server: ServerProcess, timeout_s: float = 30.0) -> int | None:
    """The exit code if the server exits while starting, None once it serves."""
    server.launch()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            server.process = None
            return code
        try:
            if "Mode:" in four_letter_word(server.port, "srvr", timeout_s=1.0):
                return None
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("zkpy neither served nor exited:\n" + server.log_tail())


def _missing_or_wrong(server: ServerProcess, written: dict[str, bytes]) -> list[str]:
    client = KazooClient(server.connect_string)
    client.start(20)
    bad = []
    try:
        for path, data in written.items():
            try:
                if client.get(path)[0] != data:
                    bad.append(f"{path}: wrong data")
            except NoNodeError:
                bad.append(f"{path}: missing")
    finally:
        client.stop()
        client.close()
    return bad


# Which files hold the data depends on the stop: a killed server's txns are in the WAL only (no
# table yet), a stopped one's were flushed into a table (and its WAL is empty).
CASES = [(kind, stop) for kind in sorted(FILE_KINDS) for stop in ("stopped", "killed")
         if (kind, stop) not in {("table", "killed"), ("wal", "stopped")}]


@pytest.mark.parametrize("kind, stop", CASES)
def test_damaged_file_stops_the_server_or_loses_nothing(tmp_path, kind, stop):
    # Without snapshots every acknowledged write is needed from the log; the snapshot case
    # takes one every 60 txns.
    settings = {"snapCount": "60"} if kind == "snapshot" else {}
    server = ServerProcess("zkpy", tmp_path / "zkpy", settings)
    server.start()
    try:
        written = _write_acknowledged(server)
    finally:
        server.stop() if stop == "stopped" else server.kill()
    database = server.data_dir / "zkpy-db"
    files = _files_of_kind(database, kind)
    assert files, f"no {kind} file after the server was {stop}"
    _damage(files)
    try:
        code = _exit_or_serve(server)
        if code is not None:
            log = server.log_path.read_text(errors="replace")
            assert code != 0, log
            assert "the data directory" in log, log
            assert any(path.name in log for path in files), \
                f"the error does not name a damaged file ({[p.name for p in files]}):\n{log}"
            return
        bad = _missing_or_wrong(server, written)
        assert not bad, f"served after damage to {kind} files with {len(bad)} of {WRITES} " \
                        f"acknowledged writes missing or wrong: {bad[:5]}\n{server.log_tail()}"
    finally:
        server.stop()
