"""The seed scenarios, each against each server kind:

* only one node runs the daily billing job: leader election, failover when the leader's session
  is expired and when the next leader closes its session;
* lock contention with waiters and an increasing fencing token that protects the resource
  from a holder whose session expired while it held the lock;
* a config key watched by several clients who all see the update;
* service instances registering as ephemerals and vanishing from discovery when their session
  expires;
* membership changes seen, one by one, by a watcher.
"""

from __future__ import annotations

import threading
import time

from kazoo.exceptions import KazooException
from kazoo.protocol.states import KazooState

from jute.constants import CreateMode
from tests.support.normalize import sequence_number
from tests.support.rawclient import ConnectionClosed, RawClient


# --- 1. the daily billing job --------------------------------------------------------------------

def test_billing_job_runs_on_exactly_one_node(server_factory, server_kind, kazoo_factory,
                                              expire, recorder):
    server = server_factory(server_kind)
    admin = kazoo_factory(server)
    admin.ensure_path("/billing/days")
    admin.create("/billing/next_day", b"0")
    nodes = {f"node-{i}": kazoo_factory(server) for i in range(3)}
    runs = recorder()  # (node, day, fencing token) for every day the job ran
    shutdown = threading.Event()
    finished = recorder()

    def billing_job(name, client, election):
        """Runs while this node leads; stops as soon as its session is in doubt."""
        token = sequence_number(election.lock.node)
        in_doubt = threading.Event()

        def on_state(state):
            if state != KazooState.CONNECTED:
                in_doubt.set()

        client.add_listener(on_state)
        try:
            while not in_doubt.is_set() and not shutdown.is_set():
                data, stat = client.get("/billing/next_day")
                day = int(data)
                tx = client.transaction()
                tx.set_data("/billing/next_day", str(day + 1).encode(), version=stat.version)
                tx.create(f"/billing/days/day-{day:04d}", f"{name}:{token}".encode())
                results = tx.commit()
                if not any(isinstance(result, Exception) for result in results):
                    runs.append((name, day, token))
                shutdown.wait(0.02)
        except KazooException:
            pass  # the session is gone: so is the leadership
        finally:
            client.remove_listener(on_state)

    def contender(name, client):
        election = client.Election("/billing/leader", identifier=name)

        def body():
            try:
                election.run(billing_job, name, client, election)
            except KazooException:
                pass
            finished.append(name)
        return election, body

    elections = {}
    threads = []
    for name, client in nodes.items():
        election, body = contender(name, client)
        elections[name] = election
        thread = threading.Thread(target=body, daemon=True)
        threads.append(thread)
        thread.start()

    def leader_after(previous, count=3):
        items = runs.wait_for(lambda items: sum(1 for n, _, _ in items if n not in previous)
                              >= count, timeout_s=30)
        return next(n for n, _, _ in items if n not in previous)

    first = leader_after(set())
    expire(server, *nodes[first].client_id)       # the leader's session expires
    second = leader_after({first})
    nodes[second].stop()                           # the next leader shuts down cleanly
    third = leader_after({first, second})
    shutdown.set()
    for election in elections.values():
        election.cancel()
    for thread in threads:
        thread.join(20)

    history = runs.snapshot()
    days = [day for _, day, _ in history]
    assert days == list(range(len(days))), "every day billed once, in order"
    stored = sorted(admin.get_children("/billing/days"))
    assert stored == [f"day-{day:04d}" for day in days]
    # One node at a time: the days form three blocks, one per leader, in election order.
    blocks = []
    for name, _, token in history:
        if not blocks or blocks[-1][0] != name:
            blocks.append((name, token))
    assert [name for name, _ in blocks] == [first, second, third]
    tokens = [token for _, token in blocks]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3, "fencing tokens increase"
    for day, (name, _, token) in zip(days, history):
        assert admin.get(f"/billing/days/day-{day:04d}")[0] == f"{name}:{token}".encode()


# --- 2. lock contention and fencing ---------------------------------------------------------------

class FencedStore:
    """A resource that only accepts writes carrying a newer fencing token than the last one."""

    def __init__(self, client, path):
        self.client = client
        self.path = path
        client.create(path, b"-1")

    def write(self, token: int, value: bytes) -> bool:
        while True:
            data, stat = self.client.get(self.path)
            if token <= int(data.split(b":")[0]):
                return False
            try:
                self.client.set(self.path, f"{token}:".encode() + value, version=stat.version)
                return True
            except KazooException:
                continue


def test_lock_contention_with_fencing_tokens(server_factory, server_kind, kazoo_factory, expire):
    server = server_factory(server_kind)
    store = FencedStore(kazoo_factory(server), "/resource")
    workers = [kazoo_factory(server) for _ in range(4)]
    acquisitions = []  # (worker, token, contenders when it got the lock)
    guard = threading.Lock()
    problems = []

    def work(index, client):
        lock = client.Lock("/locks/resource", identifier=f"w{index}")
        for round_ in range(2):
            with lock:
                token = sequence_number(lock.node)
                with guard:
                    acquisitions.append((index, token, len(lock.contenders())))
                if not store.write(token, f"w{index}-r{round_}".encode()):
                    problems.append(f"w{index} holding the lock was fenced off")
                time.sleep(0.02)

    threads = [threading.Thread(target=work, args=(i, c), daemon=True)
               for i, c in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert problems == [] and len(acquisitions) == 8
    tokens = [token for _, token, _ in acquisitions]
    assert tokens == sorted(tokens) and len(set(tokens)) == 8
    assert max(waiting for _, _, waiting in acquisitions) >= 2, "holders had waiters"

    # A holder "pauses" (its session expires while it holds the lock); a waiter takes over
    # with a higher token; the paused holder's late write is refused by the fence.
    paused_client, next_client = kazoo_factory(server), kazoo_factory(server)
    paused = paused_client.Lock("/locks/resource", identifier="paused")
    assert paused.acquire(timeout=10)
    stale_token = sequence_number(paused.node)
    successor = next_client.Lock("/locks/resource", identifier="successor")
    got_it = threading.Event()
    thread = threading.Thread(target=lambda: successor.acquire(timeout=30) and got_it.set(),
                              daemon=True)
    thread.start()
    expire(server, *paused_client.client_id)
    assert got_it.wait(30), "the waiter did not get the lock after the holder's expiry"
    fresh_token = sequence_number(successor.node)
    assert fresh_token > stale_token
    assert store.write(fresh_token, b"successor")
    assert not store.write(stale_token, b"late write from the paused holder")
    assert store.client.get("/resource")[0] == f"{fresh_token}:successor".encode()
    successor.release()


# --- 3. a watched config key ----------------------------------------------------------------------

def test_config_key_update_reaches_every_watcher(server_factory, server_kind, kazoo_factory,
                                                 recorder):
    server = server_factory(server_kind)
    writer = kazoo_factory(server)
    writer.create("/config/feature-flags", b"v0", makepath=True)
    watchers = [kazoo_factory(server) for _ in range(4)]
    seen = [recorder() for _ in watchers]
    def watch_with(record):
        # DataWatch passes the event as well when the callback takes three arguments
        return lambda data, stat: record.append((stat.version, data))

    for client, record in zip(watchers, seen):
        client.DataWatch("/config/feature-flags", watch_with(record))
    for record in seen:
        record.wait_for(lambda items: items and items[-1] == (0, b"v0"))
    # One update: every watcher sees it.
    writer.set("/config/feature-flags", b"v1")
    for record in seen:
        record.wait_for(lambda items: items[-1] == (1, b"v1"))
    # A burst: watchers may skip intermediate values but never go back, and all end on the
    # last one.
    for version in range(2, 7):
        writer.set("/config/feature-flags", f"v{version}".encode())
    for record in seen:
        items = record.wait_for(lambda items: items[-1] == (6, b"v6"))
        versions = [version for version, _ in items]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        assert all(data == f"v{version}".encode() for version, data in items)


# --- 4. service discovery with ephemerals ---------------------------------------------------------

class Instance:
    """A service instance on a raw session that heartbeats (pings) until it crashes."""

    def __init__(self, server, name, timeout_ms=400):
        self.name = name
        self.client = RawClient("127.0.0.1", server.port, timeout_ms=timeout_ms)
        self.alive = threading.Event()
        self.alive.set()
        self.lock = threading.Lock()
        reply = self.client.create(f"/services/billing-api/{name}",
                                   f"127.0.0.1:{9000 + len(name)}".encode(),
                                   flags=CreateMode.EPHEMERAL)
        assert reply.err == 0, reply
        self.thread = threading.Thread(target=self._heartbeat, daemon=True)
        self.thread.start()

    def _heartbeat(self):
        while self.alive.is_set():
            try:
                with self.lock:
                    self.client.ping()
            except (ConnectionClosed, TimeoutError):
                return
            time.sleep(0.08)

    def hang(self):
        """Stop heartbeating but keep the socket open, like a frozen process."""
        self.alive.clear()
        self.thread.join(5)

    def shutdown(self):
        self.alive.clear()
        self.thread.join(5)
        self.client.disconnect()


def test_service_discovery_drops_expired_instances(server_factory, server_kind, kazoo_factory,
                                                   recorder):
    server = server_factory(server_kind, settings={"tickTime": "200"})
    discovery = kazoo_factory(server)
    discovery.ensure_path("/services/billing-api")
    views = recorder()
    discovery.ChildrenWatch("/services/billing-api",
                            lambda children: views.append(sorted(children)))
    views.wait_for(lambda items: items and items[-1] == [])
    instances = [Instance(server, f"instance-{i}") for i in range(3)]
    try:
        names = [instance.name for instance in instances]
        views.wait_for(lambda items: items[-1] == names)
        for instance in instances:
            data, stat = discovery.get(f"/services/billing-api/{instance.name}")
            assert data.startswith(b"127.0.0.1:")
            assert stat.ephemeralOwner == instance.client.session_id
        # instance-1 freezes: its session expires and discovery stops listing it.
        instances[1].hang()
        views.wait_for(lambda items: items[-1] == ["instance-0", "instance-2"], timeout_s=20)
        # instance-2's process dies (connection gone): it also expires.
        instances[2].shutdown()
        views.wait_for(lambda items: items[-1] == ["instance-0"], timeout_s=20)
        # The survivor kept its registration all along.
        assert discovery.exists("/services/billing-api/instance-0") is not None
        seen = views.snapshot()
        assert all("instance-1" not in view for view in seen[seen.index(["instance-0",
                                                                          "instance-2"]):])
    finally:
        for instance in instances:
            instance.shutdown()


# --- 5. membership changes -------------------------------------------------------------------------

def test_membership_changes_seen_by_watcher(server_factory, server_kind, kazoo_factory,
                                            recorder, expire):
    server = server_factory(server_kind)
    observer = kazoo_factory(server)
    observer.ensure_path("/cluster/members")
    views = recorder()
    observer.ChildrenWatch("/cluster/members", lambda children: views.append(sorted(children)))
    views.wait_for(lambda items: items == [[]])
    members = {}

    def expect(view):
        views.wait_for(lambda items: items[-1] == view)

    for name in ("alpha", "bravo", "charlie"):
        members[name] = kazoo_factory(server)
        members[name].create(f"/cluster/members/{name}", b"up", ephemeral=True)
        expect(sorted(members))
    members["bravo"].delete("/cluster/members/bravo")   # leaves politely
    expect(["alpha", "charlie"])
    members["delta"] = kazoo_factory(server)
    members["delta"].create("/cluster/members/delta", ephemeral=True)
    expect(["alpha", "charlie", "delta"])
    members["charlie"].stop()                          # closes its session
    expect(["alpha", "delta"])
    expire(server, *members["alpha"].client_id)       # its session expires
    expect(["delta"])
    history = views.snapshot()
    # Each step was waited for before the next change: the watcher saw every membership.
    assert history == [[], ["alpha"], ["alpha", "bravo"], ["alpha", "bravo", "charlie"],
                       ["alpha", "charlie"], ["alpha", "charlie", "delta"], ["alpha", "delta"],
                       ["delta"]]
    assert observer.get_children("/cluster/members") == ["delta"]
