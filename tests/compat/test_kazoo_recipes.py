"""kazoo's recipes against each server kind.

Lock (contention from several clients, a fencing token from the lock node's sequence number
that increases per holder), Election, Counter, Barrier/DoubleBarrier, Queue/LockingQueue,
Party/ShallowParty, SetPartitioner, ChildrenWatch/DataWatch and TreeCache. Waiting is always
for an event with a deadline, never a timing assertion.
"""

from __future__ import annotations

import threading
import time

from kazoo.recipe.cache import TreeCache, TreeEvent

from tests.support.normalize import sequence_number

JOIN_S = 60


def run_threads(targets) -> list[BaseException]:
    """Run callables in threads; return the exceptions they raised."""
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
    deadline = time.monotonic() + JOIN_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threads if t.is_alive()]
    if stuck:
        errors.append(AssertionError(f"{len(stuck)} threads still running after {JOIN_S}s"))
    return errors


def test_lock_contention_and_fencing_token(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    clients = [kazoo_factory(server) for _ in range(4)]
    clients[0].create("/resource", b"-1", makepath=True)
    guard = threading.Lock()
    inside: list[int] = []
    tokens: list[int] = []
    max_contenders = [0]
    problems: list[str] = []

    def worker(index, client):
        def body():
            lock = client.Lock("/locks/resource", identifier=f"worker-{index}")
            for _ in range(3):
                with lock:
                    token = sequence_number(lock.node)
                    with guard:
                        inside.append(index)
                        if len(inside) != 1:
                            problems.append(f"two holders at once: {inside}")
                    max_contenders[0] = max(max_contenders[0], len(lock.contenders()))
                    data, stat = client.get("/resource")
                    if int(data) >= token:
                        problems.append(f"token {token} not above the stored {int(data)}")
                    # The version check makes a lost update visible as BadVersionError.
                    client.set("/resource", str(token).encode(), version=stat.version)
                    tokens.append(token)
                    time.sleep(0.01)
                    with guard:
                        inside.remove(index)
        return body

    errors = run_threads([worker(i, c) for i, c in enumerate(clients)])
    assert errors == [] and problems == []
    assert len(tokens) == 12
    assert tokens == sorted(tokens) and len(set(tokens)) == 12, tokens
    assert max_contenders[0] >= 2, "the lock was never contended"
    assert clients[0].get("/resource")[0] == str(tokens[-1]).encode()
    assert clients[0].get_children("/locks/resource") == []


def test_lock_nonblocking_and_timeout(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    a, b = kazoo_factory(server), kazoo_factory(server)
    lock_a = a.Lock("/l", identifier="a")
    lock_b = b.Lock("/l", identifier="b")
    assert lock_a.acquire()
    assert lock_b.acquire(blocking=False) is False
    from kazoo.exceptions import LockTimeout
    try:
        lock_b.acquire(timeout=0.3)
        acquired = True
    except LockTimeout:
        acquired = False
    assert acquired is False
    assert lock_a.contenders() == ["a"]
    # The holder's session ends: its ephemeral lock node goes, the waiter gets the lock.
    waiter = threading.Thread(target=lock_b.acquire, daemon=True)
    waiter.start()
    a.stop()
    waiter.join(20)
    assert lock_b.is_acquired
    assert sequence_number(lock_b.node) > sequence_number(lock_a.node)
    lock_b.release()


def test_read_write_locks(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    a, b, c = (kazoo_factory(server) for _ in range(3))
    r1, r2 = a.ReadLock("/rw"), b.ReadLock("/rw")
    w = c.WriteLock("/rw")
    assert r1.acquire(timeout=10) and r2.acquire(timeout=10), "readers share"
    assert w.acquire(blocking=False) is False
    r1.release()
    r2.release()
    assert w.acquire(timeout=10)
    assert a.ReadLock("/rw").acquire(blocking=False) is False
    w.release()


def test_semaphore(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    clients = [kazoo_factory(server) for _ in range(3)]
    sems = [c.Semaphore("/sem", identifier=f"s{i}", max_leases=2) for i, c in enumerate(clients)]
    assert sems[0].acquire(timeout=10) and sems[1].acquire(timeout=10)
    assert sems[2].acquire(blocking=False) is False
    assert sorted(sems[2].lease_holders()) == ["s0", "s1"]
    sems[0].release()
    assert sems[2].acquire(timeout=10)
    assert sorted(sems[1].lease_holders()) == ["s1", "s2"]


def test_election(server_factory, server_kind, kazoo_factory, recorder):
    server = server_factory(server_kind)
    clients = [kazoo_factory(server) for _ in range(3)]
    leaders = recorder()
    stops = {f"n{i}": threading.Event() for i in range(3)}
    active = []
    guard = threading.Lock()
    problems = []
    elections = {}

    def lead(name):
        with guard:
            active.append(name)
            if len(active) > 1:
                problems.append(f"two leaders: {active}")
        leaders.append(name)
        stops[name].wait(30)
        with guard:
            active.remove(name)

    def contender(index, client):
        name = f"n{index}"
        election = client.Election("/election", identifier=name)
        elections[name] = election
        return lambda: election.run(lead, name)

    targets = [contender(i, c) for i, c in enumerate(clients)]
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    first = leaders.wait_for(lambda items: len(items) >= 1)[0]
    observer = clients[0].Election("/election")
    # The other contenders' threads may not have queued yet: wait for them (a deadline, not a
    # timing check).
    deadline = time.monotonic() + 30
    contenders = observer.contenders()
    while len(contenders) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        contenders = observer.contenders()
    # the observer has not joined: the leader comes first, everyone is listed once
    assert contenders[0] == first and sorted(contenders) == ["n0", "n1", "n2"]
    stops[first].set()
    second = leaders.wait_for(lambda items: len(items) >= 2)[1]
    assert second != first
    stops[second].set()
    third = leaders.wait_for(lambda items: len(items) >= 3)[2]
    assert {first, second, third} == {"n0", "n1", "n2"}
    stops[third].set()
    for thread in threads:
        thread.join(20)
    assert problems == []
    assert clients[0].get_children("/election") == []


def test_counter(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    clients = [kazoo_factory(server) for _ in range(3)]

    def adder(client):
        def body():
            counter = client.Counter("/counter")
            for _ in range(15):
                counter += 1
        return body

    assert run_threads([adder(c) for c in clients]) == []
    counter = clients[0].Counter("/counter")
    assert counter.value == 45
    counter -= 5
    assert (counter.pre_value, counter.post_value, counter.value) == (45, 40, 40)
    floating = clients[1].Counter("/fcounter", default=0.0)
    floating += 2.5
    assert floating.value == 2.5
    curator = clients[2].Counter("/ccounter", support_curator=True)
    curator += 7
    assert curator.value == 7
    assert clients[2].get("/ccounter")[0] == b"\x00\x00\x00\x07"


def test_barrier(server_factory, server_kind, kazoo_factory, recorder):
    server = server_factory(server_kind)
    owner, a, b = (kazoo_factory(server) for _ in range(3))
    barrier = owner.Barrier("/barrier")
    barrier.create()
    assert a.Barrier("/barrier").wait(timeout=0.2) is False
    passed = recorder()
    threads = [threading.Thread(target=lambda c=c, n=n: passed.append((n, c.Barrier("/barrier").wait(20))),
                                daemon=True) for n, c in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    # Both are waiting with an exists watch on the barrier node.
    owner_stat = owner.exists("/barrier")
    assert owner_stat is not None
    barrier.remove()
    items = passed.wait_for(lambda items: len(items) == 2)
    assert sorted(items) == [("a", True), ("b", True)]
    assert a.Barrier("/barrier").wait(timeout=1) is True


def test_double_barrier(server_factory, server_kind, kazoo_factory, recorder):
    server = server_factory(server_kind)
    clients = [kazoo_factory(server) for _ in range(3)]
    arrived = recorder()
    entered = recorder()
    left = recorder()

    def participant(index, client):
        def body():
            barrier = client.DoubleBarrier("/double", 3, identifier=f"p{index}")
            arrived.append(index)
            barrier.enter()
            # nobody gets through enter() before all three have arrived
            entered.append((index, len(arrived.snapshot())))
            barrier.leave()
            left.append(index)
        return body

    errors = run_threads([participant(i, c) for i, c in enumerate(clients)])
    assert errors == []
    assert sorted(entered.snapshot()) == [(0, 3), (1, 3), (2, 3)]
    assert sorted(left.snapshot()) == [0, 1, 2]


def test_queue(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    producer, consumer1, consumer2 = (kazoo_factory(server) for _ in range(3))
    queue = producer.Queue("/queue")
    for i in range(5):
        queue.put(f"low-{i}".encode(), priority=50)
    queue.put(b"urgent", priority=1)
    queue.put(b"late", priority=99)
    assert len(queue) == 7
    q1, q2 = consumer1.Queue("/queue"), consumer2.Queue("/queue")
    got = [q1.get() if i % 2 == 0 else q2.get() for i in range(7)]
    assert got == [b"urgent"] + [f"low-{i}".encode() for i in range(5)] + [b"late"]
    assert q1.get() is None and len(queue) == 0


def test_queue_concurrent_consumers(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    producer = kazoo_factory(server)
    consumers = [kazoo_factory(server) for _ in range(3)]
    queue = producer.Queue("/work")
    items = [f"item-{i:03d}".encode() for i in range(30)]
    for item in items:
        queue.put(item)
    taken = [[] for _ in consumers]

    def consume(index, client):
        def body():
            q = client.Queue("/work")
            while True:
                value = q.get()
                if value is None:
                    return
                taken[index].append(value)
        return body

    assert run_threads([consume(i, c) for i, c in enumerate(consumers)]) == []
    everything = [value for values in taken for value in values]
    assert sorted(everything) == items, "every item taken exactly once"


def test_locking_queue(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    a, b = kazoo_factory(server), kazoo_factory(server)
    qa, qb = a.LockingQueue("/lq"), b.LockingQueue("/lq")
    qa.put(b"one")
    qa.put_all([b"two", b"three"], priority=500)
    assert len(qa) == 3
    assert qa.get(timeout=10) == b"one"
    assert qa.holds_lock()
    # The first entry is locked by a: b gets the next one.
    assert qb.get(timeout=10) == b"two"
    assert qa.release() is True
    assert qa.get(timeout=10) == b"one"
    assert qa.consume() is True
    assert qb.consume() is True
    assert len(qa) == 1
    assert qb.get(timeout=10) == b"three"
    assert qb.consume() is True
    assert qa.get(timeout=0.3) is None
    assert len(qa) == 0


def test_party(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    clients = [kazoo_factory(server) for _ in range(3)]
    parties = [c.Party("/party", identifier=f"member-{i}") for i, c in enumerate(clients)]
    for party in parties:
        party.join()
    assert len(parties[0]) == 3
    assert sorted(parties[1]) == ["member-0", "member-1", "member-2"]
    parties[1].leave()
    assert sorted(parties[0]) == ["member-0", "member-2"]
    clients[2].stop()  # the member's node is ephemeral
    assert list(parties[0]) == ["member-0"]
    shallow = [c.ShallowParty("/shallow", identifier=f"s{i}") for i, c in enumerate(clients[:2])]
    for party in shallow:
        party.join()
    assert sorted(shallow[0]) == ["s0", "s1"] and len(shallow[1]) == 2


def test_set_partitioner(server_factory, server_kind, kazoo_factory):
    server = server_factory(server_kind)
    a, b = kazoo_factory(server), kazoo_factory(server)
    items = {f"shard-{i}" for i in range(10)}
    pa = a.SetPartitioner("/partition", set=items, identifier="a", time_boundary=0.5)
    pb = b.SetPartitioner("/partition", set=items, identifier="b", time_boundary=0.5)
    deadline = time.monotonic() + 30
    while not (pa.acquired and pb.acquired):
        assert time.monotonic() < deadline, (pa.state, pb.state)
        for partitioner in (pa, pb):
            if partitioner.release:
                partitioner.release_set()
            if partitioner.allocating:
                partitioner.wait_for_acquire(timeout=5)
        time.sleep(0.01)
    mine_a, mine_b = set(pa), set(pb)
    assert mine_a | mine_b == items and not mine_a & mine_b
    assert mine_a and mine_b
    pa.finish()
    pb.finish()


def test_data_watch(server_factory, server_kind, kazoo_factory, recorder):
    server = server_factory(server_kind)
    watcher, writer = kazoo_factory(server), kazoo_factory(server)
    seen = recorder()

    @watcher.DataWatch("/config")
    def on_change(data, stat):
        seen.append((data, stat.version if stat else None))

    seen.wait_for(lambda items: items == [(None, None)])
    writer.create("/config", b"v0")
    seen.wait_for(lambda items: len(items) == 2)
    writer.set("/config", b"v1")
    seen.wait_for(lambda items: len(items) == 3)
    writer.set("/config", b"v2")
    seen.wait_for(lambda items: len(items) == 4)
    writer.delete("/config")
    items = seen.wait_for(lambda items: len(items) == 5)
    assert items == [(None, None), (b"v0", 0), (b"v1", 1), (b"v2", 2), (None, None)]


def test_children_watch(server_factory, server_kind, kazoo_factory, recorder):
    server = server_factory(server_kind)
    watcher, writer = kazoo_factory(server), kazoo_factory(server)
    writer.ensure_path("/members")
    seen = recorder()

    @watcher.ChildrenWatch("/members")
    def on_children(children):
        seen.append(sorted(children))

    seen.wait_for(lambda items: items == [[]])
    writer.create("/members/a")
    seen.wait_for(lambda items: len(items) == 2)
    writer.create("/members/b", ephemeral=True)
    seen.wait_for(lambda items: len(items) == 3)
    writer.set("/members/a", b"data changes do not count")
    writer.delete("/members/a")
    items = seen.wait_for(lambda items: len(items) == 4)
    assert items == [[], ["a"], ["a", "b"], ["b"]]
    writer.stop()
    items = seen.wait_for(lambda items: len(items) == 5)
    assert items[-1] == []


def test_tree_cache(server_factory, server_kind, kazoo_factory, recorder):
    server = server_factory(server_kind)
    client, writer = kazoo_factory(server), kazoo_factory(server)
    writer.create("/tree/a", b"1", makepath=True)
    events = recorder()
    cache = TreeCache(client, "/tree")
    cache.listen(lambda event: events.append(
        (event.event_type, event.event_data.path if event.event_data else None)))
    cache.start()
    events.wait_for(lambda items: (TreeEvent.INITIALIZED, None) in items)
    assert cache.get_data("/tree/a").data == b"1"
    assert sorted(cache.get_children("/tree")) == ["a"]
    writer.create("/tree/b/c", b"deep", makepath=True)
    events.wait_for(lambda items: (TreeEvent.NODE_ADDED, "/tree/b/c") in items)
    writer.set("/tree/a", b"2")
    events.wait_for(lambda items: (TreeEvent.NODE_UPDATED, "/tree/a") in items)
    assert cache.get_data("/tree/a").data == b"2"
    assert cache.get_data("/tree/a").stat.version == 1
    writer.delete("/tree/b", recursive=True)
    events.wait_for(lambda items: (TreeEvent.NODE_REMOVED, "/tree/b") in items
                    and (TreeEvent.NODE_REMOVED, "/tree/b/c") in items)
    assert sorted(cache.get_children("/tree")) == ["a"]
    added = [path for kind, path in events.snapshot() if kind == TreeEvent.NODE_ADDED]
    assert sorted(added) == ["/tree", "/tree/a", "/tree/b", "/tree/b/c"]
    cache.close()
