"""``zkpy status``: an ensemble's health from its members' 4lw, run as a user runs it.

Against a standalone zkpy, the reference ZooKeeper standalone, a three-member reference
ensemble (leader, followers, then members going down), and addresses nobody answers on; the
same document from the AdminServer's ``cluster_status``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.servers import REPO_ROOT, ensemble, four_letter_word, free_port, start_all
from zkpy import status as cluster

KEYS = {"leader", "followers", "observers", "clusterState", "quorum", "leaderChangesLastHour",
        "p99RequestLatencyMs", "p99IsUpperBound", "healthyMembers", "members"}


def zkpy_status(*arguments: str) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "zkpy", "status", *arguments], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def dead_address() -> str:
    return f"127.0.0.1:{free_port()}"


def test_standalone_zkpy_is_its_own_leader(server_factory):
    server = server_factory("zkpy")
    code, status = zkpy_status(server.connect_string)
    assert code == 0
    assert set(status) == KEYS
    assert status["leader"] == server.connect_string
    assert status["followers"] == []
    assert status["quorum"] is True
    assert status["clusterState"] == "healthy"
    assert status["healthyMembers"] == 1
    assert status["leaderChangesLastHour"] == 0
    assert isinstance(status["p99RequestLatencyMs"], (int, float))
    (member,) = status["members"]
    assert member["address"] == server.connect_string
    assert member["mode"] == "standalone"
    srvr = four_letter_word(server.port, "srvr")
    assert f"Zxid: {member['zxid']}" in srvr
    assert set(member["latency"]) == {"min", "avg", "max", "p99"}


def test_down_and_degraded(server_factory):
    server = server_factory("zkpy")
    code, status = zkpy_status(f"{server.connect_string},{dead_address()}")
    assert code == 1
    assert status["clusterState"] == "degraded"
    assert status["quorum"] is True
    assert status["healthyMembers"] == 1
    assert [m["mode"] for m in status["members"]] == ["standalone", "unreachable"]
    assert status["members"][1]["error"]

    code, status = zkpy_status(dead_address(), "--timeout", "1")
    assert code == 1
    assert status["clusterState"] == "down"
    assert status["quorum"] is False
    assert status["leader"] is None
    assert status["healthyMembers"] == 0


def test_usage_errors():
    result = subprocess.run([sys.executable, "-m", "zkpy", "status", "127.0.0.1:notaport"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "notaport" in result.stderr


def test_srvr_alone_is_enough(server_factory):
    # ZooKeeper's default whitelist is srvr only: no mntr, so no percentiles.
    server = server_factory("zkpy", settings={"4lw.commands.whitelist": "ruok,srvr"})
    code, status = zkpy_status(server.connect_string)
    assert code == 0
    assert status["members"][0]["mode"] == "standalone"
    assert status["p99IsUpperBound"] is True
    refused = cluster.member_from_replies(
        "h:1", "srvr is not executed because it is not in the whitelist.\n", None)
    assert refused["mode"] == "unknown"
    assert "whitelist" in refused["error"]


def test_admin_cluster_status_is_the_same_document(server_factory):
    port = free_port()
    server = server_factory("zkpy", settings={"admin.enableServer": "true",
                                               "admin.serverPort": str(port),
                                               "admin.serverAddress": "127.0.0.1"})
    for path in ("/commands/cluster_status", "/status", "/commands/status"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            document = json.loads(response.read())
        assert document["command"] == "cluster_status"
        assert document["error"] is None
        assert KEYS <= set(document)
        assert document["leader"] == server.connect_string
        assert document["clusterState"] == "healthy"
        assert document["quorum"] is True
    code, cli = zkpy_status(server.connect_string)
    assert set(cli) == set(document) - {"command", "error"}


def test_reference_standalone_reports_its_p99(server_factory):
    server = server_factory("zookeeper")
    code, status = zkpy_status(server.connect_string)
    assert code == 0
    assert status["leader"] == server.connect_string
    assert status["members"][0]["mode"] == "standalone"
    # ZooKeeper's mntr has p99_readlatency/p99_updatelatency: a real p99, not the max.
    assert status["p99IsUpperBound"] is False
    assert status["members"][0]["latency"]["p99"] is not None


def wait_for(predicate, timeout_s: float, describe):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {describe()}")
        time.sleep(0.3)


def admin_get(port: int, name: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/commands/{name}", timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_an_ensemble_healthy_then_degraded_then_down(kind, tmp_path):
    members = ensemble(kind, tmp_path, 3, {"tickTime": "500"})
    admin_port = free_port()
    if kind == "zkpy":  # member 1 runs the AdminServer: its cluster_status asks the others
        members[0].settings.update({"admin.enableServer": "true", "admin.serverPort": str(admin_port),
                                    "admin.serverAddress": "127.0.0.1"})
    try:
        start_all(members)
        addresses = ",".join(m.connect_string for m in members)
        last = {}

        def state_is(expected: str):
            code, status = zkpy_status(addresses, "--timeout", "2")
            last["status"] = status
            return status if status["clusterState"] == expected else None

        status = wait_for(lambda: state_is("healthy"), 60, lambda: last)
        assert status["quorum"] is True
        assert status["healthyMembers"] == 3
        assert len(status["followers"]) == 2
        assert status["leader"] not in status["followers"]
        assert sorted(m["mode"] for m in status["members"]) == ["follower", "follower", "leader"]
        # A freshly elected leader has led for less than an hour (where mntr tells).
        if kind == "zookeeper":
            assert status["leaderChangesLastHour"] >= 1
            assert status["p99IsUpperBound"] is False
        if kind == "zkpy":
            document = admin_get(admin_port, "cluster_status")
            assert document["clusterState"] == "healthy"
            assert document["leader"] == status["leader"]
            assert sorted(document["followers"]) == sorted(status["followers"])
            assert [m["address"] for m in document["members"]] == sorted(
                m.connect_string for m in members)
            leader = admin_get(admin_port, "leader")
            assert leader["error"] is None
            assert leader["is_leader"] is (status["leader"] == members[0].connect_string)
            assert leader["leader_ip"] == "127.0.0.1"
            assert members[leader["leader_id"] - 1].connect_string == status["leader"]
            view = admin_get(admin_port, "voting_view")["current_config"]
            assert sorted(view) == ["1", "2", "3"]
            assert view["1"]["client_address"] == members[0].connect_string

        # One follower down: still a quorum (2 of 3). Keep member 1 (the AdminServer) up.
        by_address = {m.connect_string: m for m in members}
        follower = next(a for a in status["followers"] if a != members[0].connect_string)
        by_address[follower].kill()
        status = wait_for(lambda: state_is("degraded"), 60, lambda: last)
        assert status["quorum"] is True
        assert status["healthyMembers"] == 2
        if kind == "zkpy":
            assert wait_for(lambda: admin_get(admin_port, "cluster_status")["clusterState"] == "degraded",
                            30, lambda: "admin cluster_status never showed degraded")

        # Another member down: 1 of 3 cannot serve.
        survivor = members[0] if kind == "zkpy" else by_address[status["leader"]]
        for member in members:
            if member is not survivor:
                member.kill()
        # (A leader that lost its quorum may still say "leader" until syncLimit has passed.)
        status = wait_for(lambda: (lambda s: s if s and s["healthyMembers"] == 0 else None)(
            state_is("down")), 60, lambda: last)
        assert status["quorum"] is False
        assert status["leader"] is None
        if kind == "zkpy":  # its answer may be a second old (cached)
            document = wait_for(lambda: (lambda d: d if d["clusterState"] == "down" else None)(
                admin_get(admin_port, "cluster_status")), 30, lambda: "admin never showed down")
            assert document["quorum"] is False
    finally:
        for member in members:
            member.stop()


# -- the summary's rules, member by member ------------------------------------------------------

def member(address: str, mode: str, **extra) -> dict:
    entry = {"address": address, "mode": mode, "zxid": "0x1",
             "latency": {"min": 0, "avg": 1.0, "max": 9, "p99": extra.pop("p99", None)}}
    entry.update(extra)
    return entry


@pytest.mark.parametrize("modes,state,quorum", [
    (["leader", "follower", "follower"], "healthy", True),
    (["leader", "follower", "unreachable"], "degraded", True),
    (["leader", "unreachable", "unreachable"], "down", False),
    (["not-serving", "not-serving", "follower"], "down", False),
    (["leader", "follower", "follower", "observer"], "healthy", True),
    (["leader", "unreachable", "unreachable", "observer", "observer"], "down", False),
])
def test_summary_rules(modes, state, quorum):
    members = [member(f"h{i}:2181", mode) for i, mode in enumerate(modes)]
    status = cluster.summarize(members)
    assert (status["clusterState"], status["quorum"]) == (state, quorum)


def test_summary_prefers_the_leaders_view_and_real_percentiles():
    members = [member("a:1", "leader", quorumSize=5, syncedFollowers=1, p99=7),
               member("b:1", "follower", p99=3), member("c:1", "follower")]
    status = cluster.summarize(members)
    assert status["quorum"] is False  # the leader syncs with 1 follower of 5 voters
    assert status["p99RequestLatencyMs"] == 7
    assert status["p99IsUpperBound"] is False
    members = [member("a:1", "standalone")]
    status = cluster.summarize(members)
    assert (status["p99RequestLatencyMs"], status["p99IsUpperBound"]) == (9, True)


def test_leader_changes_seen_over_the_last_hour():
    history = cluster.LeaderHistory()
    assert history.observe("a:1", 0) == 0
    assert history.observe("b:1", 1000) == 1
    assert history.observe(None, 2000) == 1
    assert history.observe("a:1", 3000) == 2
    assert history.observe("a:1", 3000 + cluster.HOUR_MS + 1) == 0
    long_led = [member("a:1", "leader", leaderUptimeMs=2 * cluster.HOUR_MS), member("b:1", "follower")]
    assert cluster.summarize(long_led)["leaderChangesLastHour"] == 0
    assert cluster.summarize(long_led, observed_leader_changes=3)["leaderChangesLastHour"] == 3


def test_parsing_the_words():
    srvr = ("Zookeeper version: 3.8.0-abc, built on x\nLatency min/avg/max: 0/1.5/12\nReceived: 10\n"
            "Sent: 9\nConnections: 2\nOutstanding: 0\nZxid: 0x1f\nMode: follower\nNode count: 7\n")
    fields = cluster.parse_srvr(srvr)
    assert fields["mode"] == "follower" and fields["zxid"] == "0x1f"
    assert fields["latency"] == {"min": 0, "avg": 1.5, "max": 12}
    assert cluster.parse_mntr("zk_version\t3.8\nzk_avg_latency\t0.5\nzk_znode_count\t5\n") == {
        "version": 3.8, "avg_latency": 0.5, "znode_count": 5}
    refused = cluster.member_from_replies("h:1", "This ZooKeeper instance is not currently serving requests\n", None)
    assert refused["mode"] == "not-serving"
    assert cluster.split_address("[::1]:2182") == ("::1", 2182)
    assert cluster.split_address("zk1") == ("zk1", 2181)
    assert cluster.parse_addresses(["a:1,b:2/chroot", "c:3"]) == ["a:1", "b:2", "c:3"]
