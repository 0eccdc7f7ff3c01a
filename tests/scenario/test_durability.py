"""Durability of the standalone server: SIGKILL under write load loses no acknowledged write and
leaves no multi half-applied; SIGTERM shuts down cleanly and a restart carries on."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

ROUNDS = 3


def _writer(client: KazooClient, name: str, acked: list, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    try:
        client.start(timeout=10)
        counter = 0
        while not stop.is_set():
            counter += 1
            if rng.random() < 0.3:
                txn = client.transaction()
                txn.create(f"/load/{name}-m{counter}-a", b"pair")
                txn.create(f"/load/{name}-m{counter}-b", b"pair")
                txn.commit()
                acked.append(f"/load/{name}-m{counter}-a")
                acked.append(f"/load/{name}-m{counter}-b")
            else:
                path = f"/load/{name}-{counter}"
                client.create(path, f"{seed}:{counter}".encode())
                acked.append(path)
    except (KazooException, OSError, Exception):  # the kill breaks the connection mid-request
        pass


def _stop(client: KazooClient) -> None:
    """Stopped from the test's thread: a request still queued when the server died would
    otherwise wait for a reconnection that never comes, and its thread with it."""
    try:
        client.stop()
        client.close()
    except Exception:
        pass


@pytest.mark.parametrize("snap_count", [None, 60], ids=["default-snapcount", "snapshot-every-60"])
def test_sigkill_under_write_load_loses_no_acknowledged_write(server_factory, snap_count):
    """With a small snapCount, snapshots (encoded by a forked child) are taken all through the
    load and killed mid-way; recovery must still find every acknowledged write."""
    seed = int(os.environ.get("CRASH_SEED", "1234"))
    print(f"crash test seed {seed}")
    settings = {"snapCount": str(snap_count)} if snap_count else {}
    server = server_factory("zkpy", settings=settings)
    setup = KazooClient(server.connect_string)
    setup.start()
    setup.ensure_path("/load")
    setup.stop()
    all_acked: list[str] = []
    for round_number in range(ROUNDS):
        acked: list[str] = []
        stop = threading.Event()
        clients = [KazooClient(server.connect_string, timeout=10, connection_retry=None,
                               command_retry=None) for _ in range(4)]
        threads = [threading.Thread(target=_writer, daemon=True,
                                    args=(client, f"r{round_number}w{i}", acked, stop,
                                          seed + i + 100 * round_number))
                   for i, client in enumerate(clients)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill()
        stop.set()
        for client in clients:
            _stop(client)
        for thread in threads:
            thread.join(15)
        assert acked, f"no write was acknowledged before the kill (seed {seed})"
        all_acked.extend(acked)
        server.start()
        checker = KazooClient(server.connect_string)
        checker.start()
        present = set(checker.get_children("/load"))
        checker.stop()
        missing = [p for p in all_acked if p.rsplit("/", 1)[1] not in present]
        assert not missing, f"seed {seed}: acknowledged writes lost after SIGKILL: {missing[:5]}"
        halves = {name[:-2] for name in present if name.endswith(("-a", "-b"))}
        for stem in halves:
            assert f"{stem}-a" in present and f"{stem}-b" in present, \
                f"seed {seed}: multi {stem} half-applied"
    if snap_count:
        log_text = server.log_path.read_text()
        assert "snapshot taken" in log_text and "snapshot failed" not in log_text


def test_sigterm_is_clean_and_restart_carries_on(server_factory):
    server = server_factory("zkpy")
    client = KazooClient(server.connect_string)
    client.start()
    client.create("/kept", b"v1")
    client.create("/session-bound", b"", ephemeral=True)
    zxid_before = client.exists("/kept").czxid
    client.stop()
    process = server.process
    os.killpg(process.pid, signal.SIGTERM)
    # A generous deadline, not a timing check: the point is that SIGTERM alone ends it cleanly.
    assert process.wait(30) == 0
    server.process = None
    assert "stopped" in server.log_path.read_text()
    server.start()
    client = KazooClient(server.connect_string)
    client.start()
    assert client.get("/kept")[0] == b"v1"
    assert client.exists("/session-bound") is None  # its session was closed by client.stop()
    new_stat = client.set("/kept", b"v2")
    assert new_stat.mzxid > zxid_before
    client.stop()
