"""Limits: the global outstanding-request limit pauses client reads instead of queueing without
bound, and a session at its watch cap is refused further watches (THROTTLEDOP); each limit hit
is logged and counted in mntr (and so in the Prometheus metrics)."""

from __future__ import annotations

import socket
import struct

from jute import Err, OpCode
from jute import records as r
from tests.support.rawclient import RawClient
from tests.support.servers import four_letter_word


def mntr(port: int) -> dict[str, str]:
    rows = (line.split("\t", 1) for line in four_letter_word(port, "mntr").splitlines() if "\t" in line)
    return dict(rows)


def test_watch_cap_refuses_more_watches(server_factory):
    server = server_factory("zkpy", settings={"zkpy.maxWatchesPerSession": "3"})
    client = RawClient("127.0.0.1", server.port)
    for index in range(4):
        client.create(f"/w{index}")
    for index in range(3):
        assert client.get_data(f"/w{index}", watch=True).err == Err.OK
    refused = client.get_data("/w3", watch=True)
    assert refused.err == Err.THROTTLEDOP
    assert client.get_data("/w3").err == Err.OK  # reads without a watch still work
    other = RawClient("127.0.0.1", server.port)
    assert other.exists("/w3", watch=True).err == Err.OK  # the cap is per session
    assert mntr(server.port)["zk_throttled_ops"] == "1"
    assert "watch limit" in server.log_path.read_text()


def test_outstanding_limit_pauses_reads_and_recovers(server_factory):
    server = server_factory("zkpy", settings={"globalOutstandingLimit": "20"})
    client = RawClient("127.0.0.1", server.port)
    client.create("/burst")
    # Pipeline far more writes than the limit in one go, then read every reply: all are
    # answered, in order, and the server recorded that it had to hold reads back.
    count = 2000
    xids = [client.submit(OpCode.setData, r.SetDataRequest("/burst", b"x" * 100, -1))
            for _ in range(count)]
    replies = [client.wait_reply(xid, OpCode.setData, timeout_s=60) for xid in xids]
    assert [reply.err for reply in replies] == [0] * count
    assert [reply.xid for reply in replies] == xids
    assert int(mntr(server.port)["zk_request_throttle_wait_count"]) >= 1
    assert "pausing client reads" in server.log_path.read_text()
    assert client.exists("/burst").err == Err.OK
