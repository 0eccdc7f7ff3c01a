"""Clients against a whole ensemble: kazoo recipes, Curator, zkCli.sh, and a leader kill.

Every test runs against a 3-member zkpy ensemble and a 3-member reference ZooKeeper ensemble
(``server_kind``), through a connect string naming all members, so clients of one recipe sit on
different members: what one client writes through one member, another sees through another.
ZooKeeper only promises a client its own writes in order, so a cross-client read is preceded by
a ``sync`` or follows a watch (both carry the ordering across members).

* recipes, Curator scenarios and zkCli.sh share one ensemble per kind (module scope);
* the leader-kill tests get their own ensemble (3 and 5 members): a kazoo workload (lock with a
  fencing token, election, counter, sequential creates, an ephemeral per session) runs while the
  leader (found with ``srvr``) is SIGKILLed; the sessions must survive (same client_id, ephemerals
  still there, never LOST), the recipes must keep making progress under the new leader, and
  every create acknowledged before or after the kill must be on every surviving member after a
  sync;
* raw sessions pipelining writes, reads, syncs and pings across a leader kill check that every
  reply comes in request order, with no gap and no duplicate (``RawClient.pipeline``).

Waits are deadlines for something to happen, never assertions on how long it took.
"""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.exceptions import BadVersionError, KazooException, LockTimeout
from kazoo.protocol.states import KazooState

from jute import OpCode
from jute import records as r

from tests.compat.test_curator import run_scenarios, scenario_classpath
from tests.compat.test_zkcli import MARKER, split_transcript, zkcli
from tests.support.ensemble_fixtures import (describe_logs, ensemble_factory,  # noqa: F401
                                             leader_of, make_client, member_client, mode,
                                             module_ensemble_factory, stop_clients, wait_for,
                                             wait_serving)
from tests.support.normalize import sequence_number
from tests.support.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient
from tests.support.servers import ENSEMBLE_KINDS, connect_string

pytestmark = pytest.mark.compat

CURATOR_SCENARIOS = ["mutex", "leader_latch", "curator_cache", "service_discovery", "transactions"]
JOIN_S = 60


@pytest.fixture(scope="module", params=ENSEMBLE_KINDS)
def server_kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def shared(server_kind, module_ensemble_factory):
    """One serving 3-member ensemble per kind, shared by the non-destructive tests."""
    return module_ensemble_factory(server_kind, 3)


@pytest.fixture
def clients(shared):
    """``clients(n)``: n started kazoo clients on the whole connect string; stopped at the end."""
    made = []

    def make(n: int):
        new = []
        for _ in range(n):
            client = make_client(connect_string(shared))
            made.append(client)
            client.start(20)
            new.append(client)
        return new

    yield make
    stop_clients(made)


@pytest.fixture
def root(request, shared):
    """A fresh path per test (the ensemble is shared), removed afterwards."""
    name = "/" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    yield name
    cleaner = make_client(connect_string(shared))
    cleaner.start(20)
    try:
        cleaner.delete(name, recursive=True)
    except KazooException:
        pass
    stop_clients([cleaner])


def run_threads(targets, join_s: float = JOIN_S) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(fn):
        def runner():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
        return runner

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        errors.append(AssertionError(f"threads still running after {join_s}s"))
    return errors


class Seen:
    """A list filled by watch callbacks, with a deadline-bounded wait."""

    def __init__(self) -> None:
        self.items: list = []
        self.cond = threading.Condition()

    def append(self, item) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout_s: float = 20.0) -> list:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate(self.items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"not satisfied: {self.items!r}")
                self.cond.wait(remaining)
            return list(self.items)


# -- the ensemble itself -----------------------------------------------------------------------

def test_one_leader_and_every_member_serves(shared):
    modes = sorted(mode(m) for m in shared)
    assert modes == ["follower", "follower", "leader"], modes


# -- kazoo recipes through the ensemble --------------------------------------------------------

def test_lock_contention_and_fencing_token(clients, root):
    workers = clients(4)
    workers[0].create(f"{root}/resource", b"-1", makepath=True)
    guard = threading.Lock()
    inside: list[int] = []
    tokens: list[int] = []
    contended = [0]
    problems: list[str] = []

    def worker(index, client):
        def body():
            lock = client.Lock(f"{root}/lock", identifier=f"worker-{index}")
            for _ in range(3):
                with lock:
                    token = sequence_number(lock.node)
                    with guard:
                        inside.append(index)
                        if len(inside) != 1:
                            problems.append(f"two holders at once: {inside}")
                    contended[0] = max(contended[0], len(lock.contenders()))
                    # The previous holder's write reached this member before its lock node's
                    # deletion did, so this read (same member) sees it.
                    data, stat = client.get(f"{root}/resource")
                    if int(data) >= token:
                        problems.append(f"token {token} not above the stored {int(data)}")
                    client.set(f"{root}/resource", str(token).encode(), version=stat.version)
                    with guard:
                        tokens.append(token)
                        inside.remove(index)
        return body

    errors = run_threads([worker(i, c) for i, c in enumerate(workers)])
    assert errors == [] and problems == []
    assert len(tokens) == 12 and tokens == sorted(tokens) and len(set(tokens)) == 12, tokens
    assert contended[0] >= 2, "the lock was never contended"
    reader = workers[3]
    reader.sync(root)
    assert reader.get(f"{root}/resource")[0] == str(tokens[-1]).encode()
    assert reader.get_children(f"{root}/lock") == []


def test_election(clients, root):
    contenders = clients(3)
    leaders = Seen()
    stops = {f"n{i}": threading.Event() for i in range(3)}
    active: list[str] = []
    guard = threading.Lock()
    problems: list[str] = []

    def lead(name):
        with guard:
            active.append(name)
            if len(active) > 1:
                problems.append(f"two leaders: {active}")
        leaders.append(name)
        stops[name].wait(30)
        with guard:
            active.remove(name)

    threads = []
    for index, client in enumerate(contenders):
        name = f"n{index}"
        election = client.Election(f"{root}/election", identifier=name)
        threads.append(threading.Thread(target=election.run, args=(lead, name), daemon=True))
    for thread in threads:
        thread.start()
    first = leaders.wait_for(lambda items: len(items) >= 1)[0]
    observer = contenders[0]
    # Every contender has joined before we look (from whichever member we are on).
    wait_for(lambda: observer.sync(f"{root}/election") is not None and
             len(observer.Election(f"{root}/election").contenders()) == 3, "three contenders")
    listed = observer.Election(f"{root}/election").contenders()
    assert listed[0] == first and sorted(listed) == ["n0", "n1", "n2"]
    stops[first].set()
    second = leaders.wait_for(lambda items: len(items) >= 2)[1]
    stops[second].set()
    third = leaders.wait_for(lambda items: len(items) >= 3)[2]
    assert {first, second, third} == {"n0", "n1", "n2"}
    stops[third].set()
    for thread in threads:
        thread.join(20)
    assert problems == []
    observer.sync(f"{root}/election")
    assert observer.get_children(f"{root}/election") == []


def test_counter(clients, root):
    adders = clients(3)

    def adder(client):
        def body():
            counter = client.Counter(f"{root}/counter")
            for _ in range(10):
                counter += 1
        return body

    assert run_threads([adder(c) for c in adders]) == []
    for client in adders:  # the same value through every member after a sync
        client.sync(f"{root}/counter")
        assert client.Counter(f"{root}/counter").value == 30


def test_party_and_children_watch(clients, root):
    watcher, *members = clients(4)
    watcher.ensure_path(f"{root}/party")
    seen = Seen()

    @watcher.ChildrenWatch(f"{root}/party")
    def on_children(children):
        seen.append(sorted(children))

    seen.wait_for(lambda items: items and items[-1] == [])
    parties = [c.Party(f"{root}/party", identifier=f"member-{i}") for i, c in enumerate(members)]
    for party in parties:
        party.join()
    seen.wait_for(lambda items: len(items[-1]) == 3)
    # The watcher's member has seen all three joins: so has a party read after a sync.
    members[0].sync(f"{root}/party")
    assert sorted(parties[0]) == ["member-0", "member-1", "member-2"]
    parties[1].leave()
    seen.wait_for(lambda items: len(items[-1]) == 2)
    members[2].stop()  # the member's node is ephemeral: it goes with the session
    items = seen.wait_for(lambda items: len(items[-1]) == 1)
    members[0].sync(f"{root}/party")
    assert list(parties[0]) == ["member-0"]
    # Each listing the watcher got differs from the one before it (one event per change).
    assert all(a != b for a, b in zip(items, items[1:])), items


def test_data_watch(clients, root):
    watcher, writer = clients(2)
    seen = Seen()
    path = f"{root}/config"
    writer.ensure_path(root)

    @watcher.DataWatch(path)
    def on_change(data, stat):
        seen.append((data, stat.version if stat else None))

    seen.wait_for(lambda items: items == [(None, None)])
    writer.create(path, b"v0")
    seen.wait_for(lambda items: len(items) == 2)
    writer.set(path, b"v1")
    seen.wait_for(lambda items: len(items) == 3)
    writer.set(path, b"v2")
    seen.wait_for(lambda items: len(items) == 4)
    writer.delete(path)
    items = seen.wait_for(lambda items: len(items) == 5)
    assert items == [(None, None), (b"v0", 0), (b"v1", 1), (b"v2", 2), (None, None)]


# -- Curator and zkCli.sh -----------------------------------------------------------------------

def test_curator_scenarios(shared):
    assert scenario_classpath()  # compiled (cached) before anything runs
    result, records = run_scenarios(connect_string(shared), CURATOR_SCENARIOS)
    stderr_tail = "\n".join(result.stderr.splitlines()[-60:])
    context = (f"\n--- java exit {result.returncode}; stdout:\n{result.stdout}\n--- stderr (tail):\n"
               f"{stderr_tail}\n" + describe_logs(shared))
    for scenario in CURATOR_SCENARIOS:
        record = records.get(scenario)
        assert record is not None, f"CuratorScenarios printed no result for {scenario}" + context
        assert record["ok"], f"{scenario}: {record.get('error')}" + context
    assert result.returncode == 0, context


ZKCLI_SCRIPT = [
    "create /cli hello",
    "create /cli/a one",
    "create -s /cli/s- x",
    "get /cli",
    "set /cli world",
    "get /cli",
    "ls /cli",
    "delete /cli/a",
    "ls /cli",
    "get /cli/a",
]
ZKCLI_EXPECTED = [
    ["Created /cli"],
    ["Created /cli/a"],
    ["Created /cli/s-0000000001"],
    ["hello"],
    [],
    ["world"],
    ["[a, s-0000000001]"],
    [],
    ["[s-0000000001]"],
    ["Node does not exist: /cli/a"],
]


def test_zkcli_through_a_member(shared, clients):
    # Through a follower when there is one: its writes are forwarded to the leader.
    member = next((m for m in shared if mode(m) == "follower"), shared[0])
    stdin = "".join(f"version\n{command}\n" for command in ZKCLI_SCRIPT) + "version\nquit\n"
    _, raw = zkcli(["-server", member.connect_string], stdin, 120)
    transcript, _ = split_transcript(raw, ZKCLI_SCRIPT)
    outputs = [lines for _, lines in transcript]
    assert len(MARKER.findall(raw)) == len(ZKCLI_SCRIPT) + 1, raw
    assert outputs == ZKCLI_EXPECTED, f"zkCli through member {member.myid}:\n{raw}"
    # Every member has zkCli's writes (after a sync).
    reader = clients(1)[0]
    for other in shared:
        from tests.support.ensemble_fixtures import member_client
        direct = member_client(other)
        try:
            direct.sync("/cli")
            assert direct.get("/cli")[0] == b"world"
            assert direct.get_children("/cli") == ["s-0000000001"]
        finally:
            stop_clients([direct])
    reader.delete("/cli", recursive=True)


# -- a leader kill under a kazoo workload -------------------------------------------------------

class Workload:
    """Per client: a lock loop (fencing token checked), an election loop, a counter loop and a
    sequential-create loop; an ephemeral per session. Errors of single operations (connection
    loss while the leader is away) are counted, not fatal: the recipes retry."""

    def __init__(self, hosts: str, count: int) -> None:
        self.hosts = hosts
        self.stop = threading.Event()
        self.guard = threading.Lock()
        self.problems: list[str] = []
        self.errors: dict[str, int] = {}
        self.tokens: list[int] = []
        self.leaderships: list[str] = []
        self.leading: list[str] = []
        self.holding: list[int] = []
        self.increments = 0
        self.acked: list[str] = []
        self.states: dict[int, list] = {}
        self.clients = []
        for index in range(count):
            client = make_client(hosts, timeout_s=10.0)
            self.states[index] = []
            client.add_listener(lambda state, index=index: self.states[index].append(state))
            client.start(20)
            self.clients.append(client)
        self.threads: list[threading.Thread] = []
        self.elections = []

    def progress(self) -> dict[str, int]:
        with self.guard:
            return {"locks": len(self.tokens), "leaderships": len(self.leaderships),
                    "increments": self.increments, "creates": len(self.acked)}

    def _error(self, where: str, error: BaseException) -> None:
        with self.guard:
            key = f"{where}:{type(error).__name__}"
            self.errors[key] = self.errors.get(key, 0) + 1
        time.sleep(0.05)

    def _loop(self, where: str, step) -> None:
        while not self.stop.is_set():
            try:
                step()
            except (KazooException, LockTimeout) as error:
                self._error(where, error)
            except Exception as error:  # noqa: BLE001 - a test failure, not a crash
                with self.guard:
                    self.problems.append(f"{where}: unexpected {error!r}")
                return

    def start(self) -> None:
        setup = self.clients[0]
        setup.create("/w/resource", b"-1", makepath=True)
        setup.ensure_path("/w/seq")
        setup.ensure_path("/w/eph")
        for index, client in enumerate(self.clients):
            client.create(f"/w/eph/c{index}", str(index).encode(), ephemeral=True)
            bodies = {"lock": self._lock_step(index, client),
                      "election": self._election_step(index, client),
                      "counter": self._counter_step(client),
                      "create": self._create_step(client)}
            for where, step in bodies.items():
                thread = threading.Thread(target=self._loop, args=(f"{where}{index}", step),
                                          daemon=True)
                self.threads.append(thread)
                thread.start()

    def _lock_step(self, index, client):
        lock = client.Lock("/w/lock", identifier=f"c{index}")

        def step():
            if not lock.acquire(timeout=5):
                return
            try:
                token = sequence_number(lock.node)
                with self.guard:
                    self.holding.append(index)
                    if len(self.holding) != 1:
                        self.problems.append(f"two lock holders at once: {self.holding}")
                try:
                    data, stat = client.get("/w/resource")
                    if int(data) >= token:
                        self.problems.append(f"fencing token {token} not above stored {int(data)}")
                    client.set("/w/resource", str(token).encode(), version=stat.version)
                    with self.guard:
                        self.tokens.append(token)
                except BadVersionError:
                    self.problems.append(f"/w/resource changed under holder c{index}")
                finally:
                    with self.guard:
                        self.holding.remove(index)
                time.sleep(0.02)
            finally:
                self._release(lock)
        return step

    def _release(self, lock) -> None:
        # Keep trying: a lock node left behind would block everyone (the session lives on).
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                lock.release()
                return
            except KazooException as error:
                self._error("release", error)
        self.problems.append("could not release a lock within 40s")

    def _election_step(self, index, client):
        election = client.Election("/w/election", identifier=f"c{index}")
        self.elections.append(election)

        def lead():
            name = f"c{index}"
            with self.guard:
                self.leading.append(name)
                if len(self.leading) != 1:
                    self.problems.append(f"two election leaders at once: {self.leading}")
                self.leaderships.append(name)
            time.sleep(0.05)
            with self.guard:
                self.leading.remove(name)

        def step():
            election.run(lead)
            time.sleep(0.01)
        return step

    def _counter_step(self, client):
        counter = client.Counter("/w/counter")

        def step():
            nonlocal counter
            counter += 1
            with self.guard:
                self.increments += 1
            time.sleep(0.02)
        return step

    def _create_step(self, client):
        def step():
            path = client.create("/w/seq/n-", b"", sequence=True)
            with self.guard:
                self.acked.append(path)
            time.sleep(0.01)
        return step

    def finish(self) -> None:
        self.stop.set()
        for election in self.elections:
            election.cancel()
        deadline = time.monotonic() + JOIN_S
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            self.problems.append(f"workload threads still running: {stuck}")

    def close(self) -> None:
        self.stop.set()
        for election in self.elections:
            election.cancel()
        stop_clients(self.clients)


def wait_progress(workload: Workload, since: dict[str, int], need: dict[str, int], what: str,
                  members, timeout_s: float = 60.0) -> None:
    def done():
        now = workload.progress()
        return all(now[key] - since.get(key, 0) >= n for key, n in need.items())
    try:
        wait_for(done, what, timeout_s, 0.1)
    except AssertionError:
        raise AssertionError(f"no progress ({what}): {since} -> {workload.progress()}; errors "
                             f"{workload.errors}; problems {workload.problems}\n"
                             + describe_logs(members)) from None


@pytest.mark.parametrize("size", [3, 5])
def test_leader_kill_keeps_sessions_recipes_and_acknowledged_writes(server_kind, size,
                                                                    ensemble_factory):
    members = ensemble_factory(server_kind, size)
    workload = Workload(connect_string(members), 3)
    try:
        workload.start()
        wait_progress(workload, {}, {"locks": 3, "leaderships": 2, "increments": 5, "creates": 10},
                      "before the kill", members)
        sessions = [c.client_id for c in workload.clients]
        leader = leader_of(members)
        before = workload.progress()
        acked_before = len(workload.acked)
        leader.kill()
        survivors = [m for m in members if m is not leader]
        try:
            new_leader = leader_of(survivors, timeout_s=60)
        except AssertionError:
            raise AssertionError("no new leader:\n" + describe_logs(survivors)) from None
        assert new_leader is not leader
        # The recipes keep working under the new leader (every kind of step moves on).
        wait_progress(workload, before, {"locks": 3, "leaderships": 2, "increments": 5,
                                         "creates": 10}, "after the kill", survivors)
        workload.finish()
        assert workload.problems == [], workload.problems
        # The same sessions throughout: never expired, ephemerals still owned by them.
        assert [c.client_id for c in workload.clients] == sessions, "a session was replaced"
        for index, states in workload.states.items():
            assert KazooState.LOST not in states, f"client {index} lost its session: {states}"
        for index, client in enumerate(workload.clients):
            stat = client.exists(f"/w/eph/c{index}")
            assert stat is not None and stat.ephemeralOwner == sessions[index][0], (
                f"client {index}'s ephemeral is gone or not its own")
        assert workload.tokens == sorted(workload.tokens), "fencing tokens went backwards"
        assert len(set(workload.tokens)) == len(workload.tokens)
        acked = list(workload.acked)
        assert len(acked) > acked_before
        increments = workload.increments
        # No acknowledged write lost: every acked create, before or after the kill, is on every
        # surviving member after a sync, and they all agree on the counter and the fencing token.
        from tests.support.ensemble_fixtures import member_client
        values = {}
        for member in survivors:
            direct = member_client(member)
            try:
                direct.sync("/w")
                present = {f"/w/seq/{name}" for name in direct.get_children("/w/seq")}
                missing = sorted(set(acked) - present)
                assert not missing, (f"member {member.myid} lacks {len(missing)} acknowledged "
                                     f"creates, e.g. {missing[:5]}")
                counter = direct.Counter("/w/counter").value
                token = int(direct.get("/w/resource")[0])
                ephemerals = tuple(sorted(direct.get_children("/w/eph")))
                values[member.myid] = (counter, token, ephemerals, len(present))
            finally:
                stop_clients([direct])
        assert len(set(values.values())) == 1, f"members disagree: {values}"
        counter, token, ephemerals, _ = next(iter(values.values()))
        # A retried increment whose first try was applied counts twice: never fewer.
        assert counter >= increments, (counter, increments)
        assert token == workload.tokens[-1]
        assert ephemerals == tuple(f"c{i}" for i in range(len(workload.clients)))
        print(f"{server_kind} x{size}: killed leader {leader.myid}, new leader {new_leader.myid}; "
              f"progress {before} -> {workload.progress()}; op errors {workload.errors}")
    finally:
        workload.close()


class OrderedSession:
    """One raw session pipelining windows of writes, reads, syncs and pings; ``pipeline`` checks
    every reply is for the oldest unanswered request of the connection. A dropped connection is
    resumed on whichever member takes it, xids going on counting (as the Java client's do), so
    the session's replies must also be in increasing xid order across connections."""

    WINDOWS = staticmethod(lambda name: [
        (OpCode.create, r.CreateRequest(f"{name}/n-", b"", OPEN_ACL_UNSAFE, 2)),
        (OpCode.getData, r.GetDataRequest(name, False)),
        (OpCode.exists, r.ExistsRequest(f"{name}/absent", False)),
        (OpCode.sync, r.SyncRequest(name)),
        (OpCode.setData, r.SetDataRequest(name, b"v", -1)),
        (OpCode.getChildren, r.GetChildrenRequest(name, False)),
        (OpCode.ping, None),
        (OpCode.create, r.CreateRequest(f"{name}/n-", b"", OPEN_ACL_UNSAFE, 2)),
    ])

    def __init__(self, index: int, members, first: int) -> None:
        self.name = f"/order/c{index}"
        self.members = members
        self.next_member = first
        self.client = RawClient.from_connect_string(members[first].connect_string,
                                                    timeout_ms=30000, io_timeout_s=30)
        self.session = (self.client.session_id, self.client.passwd)
        self.complete_windows = 0
        self.reconnects = 0
        self.answered: list[int] = []  # every connection's checked reply xids, in order
        self.problems: list[str] = []

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                window = self.WINDOWS(self.name)
                replies = self.client.pipeline(window, timeout_s=30)
                if len(replies) == len(window):
                    self.complete_windows += 1
                if self.client.closed:
                    self._resume(stop)
        except Exception as error:  # noqa: BLE001 - ReplyOrderError above all; the test reports
            self.problems.append(f"{self.name}: {error!r}")
        finally:
            self._collect()
            self.client.disconnect()

    def _collect(self) -> None:
        self.answered += self.client.answered
        self.client.answered = []

    def _resume(self, stop: threading.Event) -> None:
        """The same session on the next member that serves it."""
        self._collect()
        next_xid = self.client._next_xid  # noqa: SLF001 - carried over on purpose
        while not stop.is_set():
            self.next_member = (self.next_member + 1) % len(self.members)
            member = self.members[self.next_member]
            try:
                client = RawClient.from_connect_string(
                    member.connect_string, timeout_ms=30000, io_timeout_s=30,
                    session_id=self.session[0], passwd=self.session[1], first_xid=next_xid)
            except (ConnectionClosed, OSError, TimeoutError):
                time.sleep(0.05)  # down, or not serving yet: try the next member
                continue
            if client.connect_response.timeout_ms <= 0:
                client.disconnect()
                raise AssertionError(f"{self.name}: session {self.session[0]:#x} expired across "
                                     f"the failover (member {member.myid} said so)")
            self.client = client
            self.reconnects += 1
            return


def test_replies_stay_in_request_order_across_a_leader_kill(server_kind, ensemble_factory):
    """Raw sessions, one started on each member, pipeline writes, reads, syncs and pings while
    the leader is SIGKILLed. Every reply must be for the oldest request still unanswered on its
    connection (request order, no gap, no duplicate: a follower whose leader is gone closes the
    connection rather than answer past a write that cannot complete), and across a session's
    connections the xids of its replies only go up."""
    members = ensemble_factory(server_kind, 3)
    setup = RawClient.from_connect_string(members[0].connect_string)
    try:
        setup.create("/order")
        for index in range(len(members)):
            setup.create(f"/order/c{index}")
    finally:
        setup.disconnect()
    sessions = [OrderedSession(index, members, index) for index in range(len(members))]
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in sessions]
    for thread in threads:
        thread.start()
    try:
        def windows_done(since, count):
            return lambda: all(s.problems or s.complete_windows - before >= count
                               for s, before in zip(sessions, since))
        wait_for(windows_done([0] * len(sessions), 3), "windows before the kill", 60, 0.05)
        leader = leader_of(members)
        leader.kill()
        survivors = [m for m in members if m is not leader]
        leader_of(survivors, timeout_s=60)
        since = [s.complete_windows for s in sessions]
        wait_for(windows_done(since, 3), "windows after the kill", 60, 0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "a raw session is still running"
    problems = [p for s in sessions for p in s.problems]
    assert problems == [], "\n".join(problems) + "\n" + describe_logs(members, 60)
    for session in sessions:
        xids = [x for x in session.answered if x >= 0]
        assert xids == sorted(set(xids)), f"{session.name}: replies out of xid order: {xids}"
    assert sum(s.reconnects for s in sessions) >= 1, "no session had to move"
    print(f"{server_kind}: killed leader {leader.myid}; replies checked "
          f"{[len(s.answered) for s in sessions]}, reconnects {[s.reconnects for s in sessions]}")


def test_curator_and_zkcli_across_a_leader_kill(server_kind, ensemble_factory):
    """Curator's mutex and leader latch, running while the leader is SIGKILLed, finish their
    checks through the survivors; zkCli.sh then works through the same connect string."""
    scenario_classpath()  # compile first: a javac error fails here, not mid-run
    members = ensemble_factory(server_kind, 3)
    results = {}

    def curator():
        # Each scenario may run to its own 90 s bound when a session has to expire.
        results["run"] = run_scenarios(connect_string(members), ["mutex", "leader_latch"], 220)

    thread = threading.Thread(target=curator, daemon=True)
    thread.start()
    time.sleep(1.5)  # let the scenarios get going; not a timing check
    leader = leader_of(members)
    leader.kill()
    survivors = [m for m in members if m is not leader]
    leader_of(survivors, timeout_s=60)
    thread.join(240)
    assert not thread.is_alive(), "Curator scenarios did not finish"
    result, records = results["run"]
    for scenario in ("mutex", "leader_latch"):
        record = records.get(scenario)
        assert record is not None and record["ok"], (
            f"{scenario} across a leader kill: {record and record.get('error')}\n"
            + result.stdout + "\n".join(result.stderr.splitlines()[-30:]))
    code, output = zkcli(["-server", connect_string(survivors)],
                         "create /after-kill x\nget /after-kill\nquit\n", 120)
    assert code == 0 and "Created /after-kill" in output and "x" in output.splitlines(), output


def test_a_session_left_on_a_killed_leader_expires_under_the_next(server_kind, ensemble_factory):
    """A client that knew only the leader loses it with the leader: its session cannot be closed
    or renewed, so the next leader must expire it (ephemeral gone) from the session table it
    inherited. The Curator failover above relies on this when a close meets the kill."""
    members = ensemble_factory(server_kind, 3)
    leader = leader_of(members)
    survivors = [m for m in members if m is not leader]
    orphan = member_client(leader, timeout_s=4.0)
    observer = make_client(connect_string(survivors))
    try:
        orphan.create("/orphan", b"", ephemeral=True)
        orphan_session_id = orphan.client_id[0]
        observer.start(20)
        observer.sync("/")
        owner = observer.exists("/orphan").ephemeralOwner
        assert owner == orphan_session_id, (hex(owner), hex(orphan_session_id))
        leader.kill()
        leader_of(survivors, timeout_s=60)
        # A deadline well past the 4 s session, not a timing check.
        wait_for(lambda: observer.exists("/orphan") is None,
                 "the orphaned session to expire under the new leader", 90, 0.2)
    finally:
        stop_clients([orphan, observer])
