"""readonlymode.enabled: a member that lost its quorum serves reads to read-only clients, as
ZooKeeper does; writes fail with NotReadOnly; read-write clients are refused. Run against the
reference too, which shows the test is sound."""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError

from tests.support.servers import connect_string, ensemble, four_letter_word, start_all


def wait_for(predicate, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_member_without_quorum_serves_read_only_clients(kind, tmp_path):
    # New sessions on a read-only member are local sessions: the reference only creates them
    # with localSessionsEnabled (without it, it answers a new read-only session NOTREADONLY);
    # zkpy always does.
    members = ensemble(kind, tmp_path, 3, settings={"localSessionsEnabled": "true"},
                       jvm_properties={"readonlymode.enabled": "true"})
    try:
        start_all(members)
        writer = KazooClient(connect_string(members))
        writer.start()
        writer.create("/config", b"v1")
        writer.stop()
        survivor, *others = members
        for member in others:
            member.kill()
        wait_for(lambda: "Mode: read-only" in four_letter_word(survivor.port, "srvr"),
                 "the survivor to turn read-only")
        assert four_letter_word(survivor.port, "isro") == "ro"
        reader = KazooClient(survivor.connect_string, read_only=True)
        reader.start(timeout=20)
        assert reader.get("/config")[0] == b"v1"
        with pytest.raises(NotReadOnlyCallError):
            reader.set("/config", b"v2")
        reader.stop()
        read_write = KazooClient(survivor.connect_string, connection_retry=None)
        with pytest.raises(Exception):
            read_write.start(timeout=3)
        read_write.close()
        for member in others:
            member.start()
        wait_for(lambda: "Mode: read-only" not in four_letter_word(survivor.port, "srvr")
                 and "Mode:" in four_letter_word(survivor.port, "srvr"), "the ensemble to heal")
        assert four_letter_word(survivor.port, "isro") == "rw"
    finally:
        for member in members:
            member.stop()
