"""Real zkpy ensembles on loopback: election, replication, leader failure, rejoin, quorum loss."""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from tests.support.servers import connect_string, ensemble, four_letter_word, start_all


@pytest.fixture
def members_factory(tmp_path):
    started = []

    def make(size=3, settings=None):
        members = ensemble("zkpy", tmp_path, size, settings)
        started.extend(members)
        return start_all(members)

    yield make
    for member in started:
        member.stop()


def mode(member) -> str:
    try:
        text = four_letter_word(member.port, "srvr")
    except OSError:
        return "down"
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return "not-serving"


def wait_for(predicate, what: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def leader_of(members):
    return wait_for(lambda: next((m for m in members if m.process and mode(m) == "leader"), None),
                    "a leader")


def test_three_members_elect_one_leader_and_replicate(members_factory):
    members = members_factory(3)
    modes = sorted(mode(m) for m in members)
    assert modes == ["follower", "follower", "leader"]
    writer = KazooClient(connect_string(members))
    writer.start()
    writer.create("/replicated", b"v1")
    for index in range(20):
        writer.create(f"/replicated/n-{index}", str(index).encode())
    writer.stop()
    for member in members:
        reader = KazooClient(member.connect_string)
        reader.start()
        reader.sync("/replicated")
        assert reader.get("/replicated")[0] == b"v1"
        assert len(reader.get_children("/replicated")) == 20
        reader.stop()


def test_leader_kill_keeps_sessions_and_acknowledged_writes(members_factory):
    members = members_factory(3)
    client = KazooClient(connect_string(members), timeout=10)
    client.start()
    session_before = client.client_id
    client.create("/owned", b"", ephemeral=True)
    acked = []
    for index in range(30):
        acked.append(client.create("/w-", b"x", sequence=True))
    leader = leader_of(members)
    leader.kill()
    survivors = [m for m in members if m is not leader]
    wait_for(lambda: any(mode(m) == "leader" for m in survivors), "a new leader")

    def write_once():
        try:
            return client.create("/w-", b"after", sequence=True)
        except KazooException:
            return None

    acked.append(wait_for(write_once, "a write under the new leader"))
    assert client.client_id == session_before, "the session did not survive the failover"
    assert client.exists("/owned") is not None, "the session's ephemeral vanished"
    for member in survivors:
        reader = KazooClient(member.connect_string)
        reader.start()
        reader.sync("/")
        present = {"/" + name for name in reader.get_children("/")}
        reader.stop()
        missing = [path for path in acked if path not in present]
        assert not missing, f"member {member.myid} lost acknowledged writes {missing[:3]}"
    client.stop()


def test_restarted_member_rejoins_and_catches_up(members_factory):
    members = members_factory(3, settings={"snapCount": "40"})
    follower = next(m for m in members if mode(m) == "follower")
    follower.kill()
    client = KazooClient(connect_string([m for m in members if m is not follower]))
    client.start()
    for index in range(150):  # several snapshots while it is away
        client.create(f"/caught-up-{index}", b"z")
    client.stop()
    follower.start()
    wait_for(lambda: mode(follower) == "follower", "the restarted member to follow")
    reader = KazooClient(follower.connect_string)
    reader.start()
    reader.sync("/")
    names = [n for n in reader.get_children("/") if n.startswith("caught-up-")]
    reader.stop()
    assert len(names) == 150


def test_minority_stops_serving_and_heals(members_factory):
    members = members_factory(3)
    client = KazooClient(connect_string(members))
    client.start()
    client.create("/before-split", b"1")
    client.stop()
    lonely, *others = members
    for member in others:
        member.kill()
    wait_for(lambda: mode(lonely) == "not-serving", "the minority to stop serving")
    minority_client = KazooClient(lonely.connect_string, timeout=2, connection_retry=None)
    with pytest.raises(Exception):
        minority_client.start(timeout=3)
        minority_client.create("/minority-write", b"x")
    minority_client.close()
    for member in others:
        member.start()
    wait_for(lambda: all(mode(m) in ("leader", "follower") for m in members), "the ensemble to heal")
    reader = KazooClient(lonely.connect_string)
    reader.start()
    reader.sync("/")
    assert reader.exists("/before-split") is not None
    assert reader.exists("/minority-write") is None
    reader.stop()


def test_five_members_survive_two_failures(members_factory):
    members = members_factory(5)
    client = KazooClient(connect_string(members), timeout=10)
    client.start()
    client.create("/five", b"")
    leader = leader_of(members)
    follower = next(m for m in members if m is not leader)
    leader.kill()
    follower.kill()
    survivors = [m for m in members if m not in (leader, follower)]
    wait_for(lambda: any(mode(m) == "leader" for m in survivors), "a new leader among three")

    def write_once():
        try:
            return client.create("/five/after", b"")
        except KazooException:
            return None

    assert wait_for(write_once, "a write with two members down") == "/five/after"
    client.stop()
