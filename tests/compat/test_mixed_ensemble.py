"""Java and zkpy members in one ensemble, speaking ZooKeeper 3.8's own peer protocol.

* leader placement: in a 2 Java + 1 zkpy and a 1 Java + 2 zkpy ensemble the leader is moved (by
  killing it) onto a Java member and onto a zkpy member in turn; with each, kazoo writes through
  every member and every member ends with the same tree (data, Stat and ACL of every node);
* a rolling migration under write load: three Java members are replaced one at a time by zkpy
  members with fresh data directories (they sync from the leader, by SNAP or DIFF), then one is
  rolled back to Java. A writer records every acknowledged create, a watcher session stays
  connected through the whole roll; at the end every acknowledged create is on every member,
  the watcher's session is the one it started with (never expired) and its watch fired after
  every step;
* observers: a zkpy observer of a Java ensemble and a Java observer of a zkpy ensemble follow
  the writes and serve reads.

Waits are deadlines for something to happen, never assertions on how long it took.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kazoo.exceptions import KazooException
from kazoo.protocol.states import KazooState

from tests.support.rawclient import RawClient
from tests.support.ensemble_fixtures import (describe_logs, ensemble_factory,  # noqa: F401
                                             leader_of, make_client, member_client, mode,
                                             stop_clients, wait_for, wait_serving)
from tests.support.servers import (ServerProcess, connect_string, ensemble, four_letter_word,
                                   start_all)

pytestmark = pytest.mark.compat

MOVES = 8  # leader kills allowed to bring the leader onto the side a test wants


def full_tree(client, path: str = "/") -> dict[str, tuple]:
    """Every node under ``path`` (but /zookeeper's config and quota, which are per member):
    its data, Stat and ACL."""
    out = {}
    stack = [path]
    while stack:
        node = stack.pop()
        data, stat = client.get(node)
        acl, _ = client.get_acls(node)
        out[node] = (data, tuple(stat), tuple((a.perms, a.id.scheme, a.id.id) for a in acl))
        if node == "/zookeeper":
            continue
        for child in client.get_children(node):
            stack.append(("" if node == "/" else node) + "/" + child)
    return out


def move_leader_to(members: list[ServerProcess], kind: str) -> ServerProcess:
    """Kill and restart the leader until a member of ``kind`` leads."""
    for _ in range(MOVES):
        leader = leader_of(members, 60)
        if leader.kind == kind:
            return leader
        leader.kill()
        leader.start(60)
        wait_serving(members, 90)
    raise AssertionError(f"no {kind} leader after {MOVES} moves\n" + describe_logs(members))


def write_through_every_member(members: list[ServerProcess], root: str) -> None:
    for member in members:
        client = member_client(member)
        try:
            client.ensure_path(root)
            name = f"{root}/via-{member.kind}-{member.myid}"
            client.create(name, f"{member.kind}".encode())
            client.set(name, b"updated")
            client.create(f"{name}-seq-", b"s", sequence=True)
            client.create(f"{name}-eph", b"e", ephemeral=True)
            with client.transaction() as txn:
                txn.create(f"{name}-multi", b"m")
                txn.set_data(name, b"again")
            client.delete(f"{name}-eph")
        finally:
            client.stop()
            client.close()


def assert_same_tree_everywhere(members: list[ServerProcess]) -> dict:
    trees = {}
    for member in members:
        client = member_client(member)
        try:
            client.sync("/")
            trees[(member.kind, member.myid)] = full_tree(client)
        finally:
            client.stop()
            client.close()
    first_key, first = next(iter(trees.items()))
    for key, tree in trees.items():
        assert tree.keys() == first.keys(), f"{key} and {first_key} hold different nodes"
        different = [path for path in tree if tree[path] != first[path]]
        assert not different, f"{key} and {first_key} differ at {different[:5]}"
    return first


@pytest.mark.parametrize("kind", ["mixedjava", "mixedzkpy"])
def test_kazoo_writes_through_every_member_with_the_leader_on_either_side(kind, ensemble_factory):
    members = ensemble_factory(kind, 3)
    wait_serving(members, 90)
    for side in ("zookeeper", "zkpy"):
        leader = move_leader_to(members, side)
        root = f"/placed-{side}"
        write_through_every_member(members, root)
        tree = assert_same_tree_everywhere(members)
        assert {f"{root}/via-{m.kind}-{m.myid}" for m in members} <= tree.keys()
        assert all(tree[f"{root}/via-{m.kind}-{m.myid}"][0] == b"again" for m in members)
        assert mode(leader) == "leader"
    checked = []
    for member in members:
        log_text = member.log_path.read_text(errors="replace")
        assert "igest mismatch" not in log_text, (
            f"{member.kind} member {member.myid} saw a digest mismatch\n" + describe_logs(members))
        if member.kind == "zkpy":
            mntr = dict(line.split("\t", 1) for line in
                        four_letter_word(member.port, "mntr").splitlines() if "\t" in line)
            assert mntr["zk_digest_mismatches_count"] == "0"
            if "keeping the tree digest to check the leader's" in log_text:
                checked.append(member.myid)
    # While a Java member led, the zkpy followers checked its TxnDigests against their trees.
    assert checked, "no zkpy member checked a Java leader's digest\n" + describe_logs(members)


class Writer(threading.Thread):
    """Creates sequential nodes through the whole connect string; records what was acked."""

    def __init__(self, hosts: str) -> None:
        super().__init__(daemon=True)
        self.client = make_client(hosts)
        self.client.start(30)
        self.acknowledged: list[str] = []
        self.errors = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        self.client.ensure_path("/roll")
        while not self.stopping.is_set():
            try:
                self.acknowledged.append(self.client.create("/roll/w-", b"x", sequence=True))
            except KazooException:
                self.errors += 1  # not acknowledged: may or may not be there
                time.sleep(0.05)
            time.sleep(0.01)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        stop_clients([self.client])


def replace(member: ServerProcess, kind: str, workdir: Path) -> ServerProcess:
    """The same member (id, ports, zoo.cfg) as ``kind``, with a fresh data directory."""
    member.stop()
    return ServerProcess(kind, workdir, member.settings, member.jvm_properties, myid=member.myid,
                         port=member.port).start(60)


def test_rolling_migration_from_java_to_zkpy_and_back_under_write_load(tmp_path):
    members = ensemble("zookeeper", tmp_path / "ensemble", 3)
    started = list(members)
    try:
        start_all(members)
        wait_serving(members, 90)
        hosts = connect_string(members)
        writer = Writer(hosts)
        watcher = make_client(hosts)
        watcher.start(30)
        lost = []
        watcher.add_listener(lambda state: lost.append(state) if state == KazooState.LOST else None)
        session = watcher.client_id
        watcher.ensure_path("/roll-signal")
        fired = []
        watcher.DataWatch("/roll-signal", lambda data, stat: fired.append(data))
        writer.start()

        def step(label: str) -> None:
            wait_serving(members, 90)
            count = len(writer.acknowledged)
            wait_for(lambda: len(writer.acknowledged) > count + 5, f"writes after {label}", 60)
            seen = len(fired)
            signaller = member_client(members[0])
            try:
                signaller.set("/roll-signal", label.encode())
            finally:
                stop_clients([signaller])
            wait_for(lambda: len(fired) > seen and fired[-1] == label.encode(),
                     f"the watcher's watch after {label}", 60)

        for index in range(3):
            members[index] = replace(members[index], "zkpy", tmp_path / f"zkpy-{index + 1}")
            started.append(members[index])
            step(f"member {index + 1} now zkpy")
        members[1] = replace(members[1], "zookeeper", tmp_path / "java-again-2")
        started.append(members[1])
        step("member 2 back on Java")
        writer.stop()

        assert not lost and watcher.client_id == session, "the watcher's session expired"
        assert writer.acknowledged, "the writer wrote nothing"
        for member in members:
            client = member_client(member)
            try:
                client.sync("/roll")
                present = {f"/roll/{name}" for name in client.get_children("/roll")}
            finally:
                stop_clients([client])
            missing = [path for path in writer.acknowledged if path not in present]
            assert not missing, f"{member.kind} member {member.myid} lacks acknowledged {missing[:5]}"
        assert_same_tree_everywhere(members)
        stop_clients([watcher])
    finally:
        for member in started:
            member.kill()


def observer_ensemble(voter_kind: str, observer_kind: str, workdir: Path) -> list[ServerProcess]:
    """Three voters of one kind and an observer (id 4) of the other."""
    members = ensemble([voter_kind] * 3 + [observer_kind], workdir, 4)
    line = members[0].settings["server.4"]
    address, client = line.split(";")
    for member in members:
        member.settings["server.4"] = f"{address}:observer;{client}"
    members[3].settings["peerType"] = "observer"
    return members


@pytest.mark.parametrize("voters, observer", [("zookeeper", "zkpy"), ("zkpy", "zookeeper")])
def test_an_observer_of_the_other_kind_follows_and_serves(voters, observer, tmp_path):
    members = observer_ensemble(voters, observer, tmp_path)
    try:
        start_all(members)
        wait_serving(members[:3], 90)
        wait_for(lambda: mode(members[3]) == "observer", "the observer to serve", 60)
        writer = member_client(members[0])
        try:
            for index in range(20):
                writer.create(f"/observed/n{index}", str(index).encode(), makepath=True)
        finally:
            stop_clients([writer])
        reader = member_client(members[3])
        try:
            reader.sync("/observed")
            assert sorted(reader.get_children("/observed")) == sorted(f"n{i}" for i in range(20))
            reader.create("/observed/through-observer", b"o")  # forwarded to the leader
        finally:
            stop_clients([reader])
        assert_same_tree_everywhere(members)
    finally:
        for member in members:
            member.kill()


@pytest.mark.parametrize("learner_kind", ["zookeeper", "zkpy"])
def test_a_fresh_member_syncs_from_a_zkpy_leader_by_a_streamed_snap(learner_kind, tmp_path):
    """A learner too far behind for a DIFF (the leader's log was purged past it) gets a SNAP:
    a zkpy leader streams it from a forked child while it goes on taking writes, which follow
    the snapshot on the same connection. The new member must end with every acknowledged
    write and the same tree as the others."""
    # snapCount 40: with 3 snapshots retained the log soon reaches back only past zxid 0.
    members = ensemble([learner_kind, "zkpy", "zkpy"], tmp_path / "ensemble", 3,
                       settings={"snapCount": "40"})
    joiner, voters = members[0], members[1:]
    try:
        start_all(voters)
        wait_serving(voters, 90)
        leader = leader_of(voters, 60)
        filler = member_client(leader)
        try:
            filler.ensure_path("/bulk")
            value = bytes(range(256)) * 4
            for batch in range(12):
                waits = [filler.create_async(f"/bulk/n-{batch}-{i}", value) for i in range(250)]
                for wait in waits:
                    wait.get(30)
        finally:
            stop_clients([filler])
        writer = Writer(connect_string(voters))
        writer.start()
        wait_for(lambda: len(writer.acknowledged) > 20, "writes before the join", 60)
        joiner.start(90)
        wait_serving(members, 90)
        count = len(writer.acknowledged)
        wait_for(lambda: len(writer.acknowledged) > count + 20, "writes after the join", 60)
        writer.stop()
        leader_log = leader.log_path.read_text(errors="replace")
        assert "snapshot sent to learner" in leader_log, (
            "the joiner was not synced by a streamed SNAP\n" + describe_logs(members))
        client = member_client(joiner)
        try:
            client.sync("/roll")
            present = {f"/roll/{name}" for name in client.get_children("/roll")}
            bulk = len(client.get_children("/bulk"))
        finally:
            stop_clients([client])
        missing = [path for path in writer.acknowledged if path not in present]
        assert not missing, f"the joiner lacks acknowledged {missing[:5]}"
        assert bulk == 12 * 250
        assert_same_tree_everywhere(members)
    finally:
        for member in members:
            member.kill()


@pytest.mark.parametrize("moved_to", ["zkpy", "zookeeper"])
def test_a_session_that_moves_between_followers_keeps_writing(moved_to, tmp_path):
    """A Java leader owns each session by the member it last came through; a request of a
    session owned by another member fails with SESSIONMOVED. A follower that a client
    reconnects to must tell the leader (REVALIDATE) before it forwards the session's writes,
    whichever kind either follower is."""
    kinds = ["zookeeper", "zkpy", "zookeeper"]  # id 3, Java, leads a fresh ensemble
    members = ensemble(kinds, tmp_path / "ensemble", 3)
    try:
        start_all(members)
        wait_serving(members, 90)
        leader = leader_of(members, 60)
        followers = [m for m in members if m is not leader]
        assert leader.kind == "zookeeper", describe_logs(members)
        first = next(m for m in followers if m.kind != moved_to)
        second = next(m for m in followers if m.kind == moved_to)
        before = RawClient.from_connect_string(first.connect_string, timeout_ms=20000)
        assert before.create("/moved-before").err == 0
        session_id, password = before.session_id, before.passwd
        before.disconnect()  # the connection only: the session lives on
        # The same session, now through the other follower.
        after = make_client(second.connect_string, client_id=(session_id, password))
        try:
            after.start(30)
            assert after.client_id[0] == session_id
            for index in range(5):
                after.create(f"/moved-after-{index}", b"")
            after.create("/moved-ephemeral", b"", ephemeral=True)
            assert after.exists("/moved-ephemeral").ephemeralOwner == session_id
        finally:
            stop_clients([after])
    finally:
        for member in members:
            member.kill()
