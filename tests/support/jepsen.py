"""A small Jepsen-style harness: concurrent kazoo clients, a nemesis, a recorded history, checkers.

Workloads (each process is its own kazoo session on the whole connect string):

* ``register``: a single znode used as a register with unique integer values. Operations:
  ``read`` (get, then a check-only multi on the version read: the multi goes through the leader
  like any write, so an ok read is linearizable even against a deposed leader serving stale
  data; a failed check makes the read a ``fail``), ``write`` (a blind set) and ``cas(old, new)``
  (get; when the value is ``old``, set with the version read: the version check makes the set
  the linearization point). Each op is recorded as invoke / ok / fail / info with monotonic
  timestamps; ``info`` means the outcome is unknown (connection loss during a write).
* ``create``: sequential creates under one parent, a prefix per process; acked names recorded.
* ``lock``: kazoo ``Lock`` acquisitions; a holder's interval runs from the acquire's return to
  the release's invocation, and the session's state changes are recorded so that a holder whose
  session was lost (the lock is then legitimately someone else's) is not counted.

The nemesis SIGKILLs and restarts, or SIGSTOPs and SIGCONTs, one member at a time (often the
leader), each fault for a bounded time, and waits for the ensemble to serve again before the
next one. When the members run in network namespaces (tests/support/netns.py) it also cuts a
member off the peer network for a while (``partition``: packets dropped, no reset; clients can
still reach it). Without namespaces (the plain loopback ensembles) kill and pause still exercise
elections, log recovery, re-sync and stale leaders.

Checkers:

* ``check_register``: Wing & Gong / Lowe-style search for a linearization of the register
  history (ok ops must take effect between invoke and completion; info ops may take effect at
  any time after their invocation, or never; failed ops never), with memoisation on (set of
  linearized ops, register value);
* ``check_versions``: every acknowledged write/cas and every read carries a znode version: one
  version never maps to two values (no two acked writes share a version), versions only grow
  for the final state, every member ends with the same value and version;
* ``check_creates``: every acked create is present on every member at the end, acked names are
  unique, sequence numbers are unique across all prefixes, nothing appears that was neither
  acked nor indeterminate, and every member has the same children;
* ``check_locks``: holder intervals of sessions that stayed alive never overlap.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import (BadVersionError, ConnectionClosedError, ConnectionLoss,
                              KazooException, LockTimeout, NoNodeError, OperationTimeoutError,
                              SessionExpiredError)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

from tests.support.ensemble_fixtures import (leader_of, make_client, member_client, mode, pause,
                                             resume, stop_clients, wait_serving)

# Errors after which a write may or may not have taken effect.
INDETERMINATE = (ConnectionLoss, OperationTimeoutError, KazooTimeoutError, SessionExpiredError,
                 ConnectionClosedError)
REGISTER = "/jepsen/register"
SEQ_PARENT = "/jepsen/seq"
LOCK_PATH = "/jepsen/lock"
INITIAL_VALUE = 0


# -- history ------------------------------------------------------------------------------------

@dataclass
class Op:
    index: int
    process: int
    f: str
    value: Any
    invoke: float
    complete: float | None = None
    status: str = "invoke"          # ok | fail | info
    result: Any = None              # read: value; write/cas: version; create: path
    version: int | None = None
    error: str | None = None

    def __repr__(self) -> str:
        end = f"{self.complete:.3f}" if self.complete is not None else "?"
        return (f"#{self.index} p{self.process} {self.f}({self.value!r}) -> {self.status} "
                f"{self.result!r} v{self.version} [{self.invoke:.3f}..{end}]"
                + (f" {self.error}" if self.error else ""))


class History:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def invoke(self, process: int, f: str, value: Any = None) -> Op:
        with self.lock:
            op = Op(len(self.ops), process, f, value, self.now())
            self.ops.append(op)
            return op

    def finish(self, op: Op, status: str, result: Any = None, version: int | None = None,
               error: BaseException | None = None) -> Op:
        op.complete = self.now()
        op.status = status
        op.result = result
        op.version = version
        op.error = type(error).__name__ if error is not None else None
        return op

    def of(self, *fs: str) -> list[Op]:
        with self.lock:
            return [op for op in self.ops if op.f in fs]


# -- the register checker -----------------------------------------------------------------------

def _step(state: int, op: Op) -> tuple[bool, int]:
    if op.f == "read":
        return state == op.result, state
    if op.f == "write":
        return True, op.value
    if op.f == "cas":
        old, new = op.value
        return (True, new) if state == old else (False, state)
    raise ValueError(op.f)


class _Entry:
    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op, is_call):
        self.op = op
        self.is_call = is_call
        self.match = None
        self.prev = None
        self.next = None


@dataclass
class CheckResult:
    ok: bool
    ops: int
    detail: str = ""
    explored: int = 0


def check_register(ops: list[Op], initial: int = INITIAL_VALUE, max_steps: int = 5_000_000) -> CheckResult:
    """Is there a linearization of ``ops`` (a register's read/write/cas history)?"""
    relevant = [op for op in ops if op.status == "ok" or (op.status == "info" and op.f != "read")]
    if not relevant:
        return CheckResult(True, 0)
    events = []
    for op in relevant:
        events.append((op.invoke, 0, op, True))
        if op.status == "ok":
            events.append((op.complete, 1, op, False))
    # At equal times calls come first: the more permissive reading of concurrency.
    events.sort(key=lambda e: (e[0], e[1], e[2].index))
    head = _Entry(None, False)
    previous = head
    calls = {}
    for _, _, op, is_call in events:
        entry = _Entry(op, is_call)
        if is_call:
            calls[op.index] = entry
        else:
            calls[op.index].match = entry
        entry.prev = previous
        previous.next = entry
        previous = entry
    bit = {op.index: 1 << i for i, op in enumerate(relevant)}
    returns_left = sum(1 for op in relevant if op.status == "ok")

    def lift(entry):
        entry.prev.next = entry.next
        if entry.next is not None:
            entry.next.prev = entry.prev
        match = entry.match
        if match is not None:
            match.prev.next = match.next
            if match.next is not None:
                match.next.prev = match.prev

    def unlift(entry):
        match = entry.match
        if match is not None:
            match.prev.next = match
            if match.next is not None:
                match.next.prev = match
        entry.prev.next = entry
        if entry.next is not None:
            entry.next.prev = entry

    state = initial
    linearized = 0
    stack: list[tuple[_Entry, int]] = []
    cache: set[tuple[int, int]] = set()
    entry = head.next
    steps = 0
    best: list[Op] = []
    while True:
        if returns_left == 0:
            return CheckResult(True, len(relevant), explored=steps)
        steps += 1
        if steps > max_steps:
            return CheckResult(False, len(relevant), f"search gave up after {max_steps} steps",
                               steps)
        if entry is None:  # only info calls remain ahead: cannot happen while returns are left
            raise AssertionError("walked off the history with returns left")
        if entry.is_call:
            legal, new_state = _step(state, entry.op)
            if legal:
                new_linearized = linearized | bit[entry.op.index]
                key = (new_linearized, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    lift(entry)
                    if entry.match is not None:
                        returns_left -= 1
                    if len(stack) > len(best):
                        best = [e.op for e, _ in stack]
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # An op returned before we could linearize it here: undo the last choice.
            if not stack:
                return CheckResult(False, len(relevant), _explain(best, relevant, initial), steps)
            entry, state = stack.pop()
            linearized &= ~bit[entry.op.index]
            unlift(entry)
            if entry.match is not None:
                returns_left += 1
            entry = entry.next


def _explain(best: list[Op], relevant: list[Op], initial: int) -> str:
    state = initial
    lines = [f"no linearization; the longest linearizable prefix has {len(best)} ops "
             f"(of {len(relevant)}):"]
    for op in best[-8:]:
        lines.append(f"  {op!r}")
    for op in best:
        state = _step(state, op)[1]
    done = {op.index for op in best}
    last_time = max((op.complete or op.invoke) for op in best) if best else 0.0
    pending = [op for op in relevant if op.index not in done and op.invoke <= last_time + 1.0]
    lines.append(f"register value after it: {state!r}; ops that could not follow:")
    lines.extend(f"  {op!r}" for op in sorted(pending, key=lambda o: o.invoke)[:12])
    return "\n".join(lines)


# -- the other checkers -------------------------------------------------------------------------

def check_versions(ops: list[Op], finals: dict[int, tuple[int, int]]) -> list[str]:
    problems = []
    by_version: dict[int, set] = {}
    for op in ops:
        if op.status != "ok" or op.version is None:
            continue
        value = op.result if op.f == "read" else (op.value if op.f == "write" else op.value[1])
        by_version.setdefault(op.version, set()).add(value)
    for version, values in sorted(by_version.items()):
        if len(values) > 1:
            problems.append(f"version {version} carried several values {sorted(values)}")
    if len(set(finals.values())) != 1:
        problems.append(f"members end with different (value, version): {finals}")
    final_value, final_version = next(iter(finals.values()))
    acked = [op for op in ops if op.status == "ok" and op.f in ("write", "cas")]
    if acked:
        top = max(op.version for op in acked)
        if final_version < top:
            problems.append(f"final version {final_version} below an acked write's version {top}")
    known = by_version.get(final_version)
    if known and final_value not in known:
        problems.append(f"final value {final_value} at version {final_version}, but that version "
                        f"was acked/read with {sorted(known)}")
    return problems


def check_creates(ops: list[Op], finals: dict[int, set[str]]) -> list[str]:
    problems = []
    acked = [op.result for op in ops if op.status == "ok"]
    indeterminate: dict[str, int] = {}
    for op in ops:
        if op.status == "info":
            prefix = op.value.rsplit("/", 1)[1]
            indeterminate[prefix] = indeterminate.get(prefix, 0) + 1
    if len(set(acked)) != len(acked):
        dupes = sorted({p for p in acked if acked.count(p) > 1})
        problems.append(f"the same name acked twice: {dupes[:5]}")
    for myid, names in sorted(finals.items()):
        missing = sorted(set(acked) - names)
        if missing:
            problems.append(f"member {myid} lacks {len(missing)} acked creates, e.g. {missing[:5]}")
    if len({frozenset(n) for n in finals.values()}) != 1:
        problems.append("members have different children under " + SEQ_PARENT)
    names = next(iter(finals.values()))
    sequence = [int(n[-10:]) for n in names]
    if len(set(sequence)) != len(sequence):
        problems.append("a sequence number was given out twice")
    # A child nobody was told about must come from a create whose outcome was unknown.
    extra: dict[str, list[str]] = {}
    for name in names - set(acked):
        extra.setdefault(name.rsplit("-", 1)[0] + "-", []).append(name)
    for prefix, extras in sorted(extra.items()):
        if len(extras) > indeterminate.get(prefix, 0):
            problems.append(f"{len(extras)} children {sorted(extras)[:5]} under {prefix} but only "
                            f"{indeterminate.get(prefix, 0)} creates with an unknown outcome")
    return problems


@dataclass
class Hold:
    process: int
    session: int
    start: float
    end: float
    node: str
    session_lost: bool = False


def check_locks(holds: list[Hold]) -> tuple[list[str], int]:
    valid = [h for h in holds if not h.session_lost]
    problems = []
    ordered = sorted(valid, key=lambda h: h.start)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.start >= a.end:
                break
            problems.append(f"lock held by p{a.process} [{a.start:.3f}..{a.end:.3f}] ({a.node}) "
                            f"and p{b.process} [{b.start:.3f}..{b.end:.3f}] ({b.node}) at once")
    return problems, len(holds) - len(valid)


# -- workloads ----------------------------------------------------------------------------------

class Workers:
    def __init__(self, hosts: str, history: History, rng_seed: int, session_timeout_s: float) -> None:
        self.hosts = hosts
        self.history = history
        self.seed = rng_seed
        self.session_timeout_s = session_timeout_s
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.clients = []
        self.holds: list[Hold] = []
        self.states: dict[int, list[tuple[float, str]]] = {}
        self.crashes: list[str] = []
        self.guard = threading.Lock()

    def _client(self, process: int):
        client = make_client(self.hosts, timeout_s=self.session_timeout_s)
        self.states[process] = []
        client.add_listener(lambda state, p=process: self.states[p].append((self.history.now(), state)))
        client.start(30)
        self.clients.append(client)
        return client

    def _spawn(self, name: str, body) -> None:
        def run():
            try:
                body()
            except Exception as error:  # noqa: BLE001 - reported as a harness failure
                with self.guard:
                    self.crashes.append(f"{name}: {error!r}")
        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    # register
    def start_register(self, processes: list[int], max_ops: int) -> None:
        for process in processes:
            client = self._client(process)
            rng = random.Random(self.seed * 1000 + process)
            self._spawn(f"register-{process}", lambda c=client, p=process, r=rng: self._register(c, p, r, max_ops))

    def _register(self, client, process: int, rng: random.Random, max_ops: int) -> None:
        history = self.history
        believed = INITIAL_VALUE
        counter = 0
        for _ in range(max_ops):
            if self.stop.is_set():
                return
            time.sleep(rng.uniform(0.1, 0.6))  # spread over the whole run: ~200 ops in all
            roll = rng.random()
            if roll < 0.45:
                op = history.invoke(process, "read")
                try:
                    data, stat = client.get(REGISTER)
                    transaction = client.transaction()
                    transaction.check(REGISTER, stat.version)
                    results = transaction.commit()
                    if results and results[0] is True:
                        history.finish(op, "ok", int(data), stat.version)
                        believed = int(data)
                    else:
                        history.finish(op, "fail", error=BadVersionError())
                except KazooException as error:
                    history.finish(op, "fail", error=error)  # a read has no effect either way
                continue
            counter += 1
            new = process * 100_000 + counter
            if roll < 0.55:
                op = history.invoke(process, "write", new)
                try:
                    stat = client.set(REGISTER, str(new).encode())
                    history.finish(op, "ok", version=stat.version)
                    believed = new
                except INDETERMINATE as error:
                    history.finish(op, "info", error=error)
                except KazooException as error:
                    history.finish(op, "fail", error=error)
                continue
            op = history.invoke(process, "cas", (believed, new))
            try:
                data, stat = client.get(REGISTER)
            except KazooException as error:
                history.finish(op, "fail", error=error)  # nothing was written
                continue
            if int(data) != believed:
                history.finish(op, "fail", result=int(data))
                believed = int(data)
                continue
            try:
                stat = client.set(REGISTER, str(new).encode(), version=stat.version)
                history.finish(op, "ok", version=stat.version)
                believed = new
            except BadVersionError as error:
                history.finish(op, "fail", error=error)
            except INDETERMINATE as error:
                history.finish(op, "info", error=error)
            except KazooException as error:
                history.finish(op, "fail", error=error)

    # sequential creates
    def start_creates(self, processes: list[int]) -> None:
        for process in processes:
            client = self._client(process)
            self._spawn(f"create-{process}", lambda c=client, p=process: self._creates(c, p))

    def _creates(self, client, process: int) -> None:
        prefix = f"{SEQ_PARENT}/p{process}-"
        while not self.stop.is_set():
            op = self.history.invoke(process, "create", prefix)
            try:
                path = client.create(prefix, b"", sequence=True)
                self.history.finish(op, "ok", path.rsplit("/", 1)[1])
            except INDETERMINATE as error:
                self.history.finish(op, "info", error=error)
                time.sleep(0.1)
            except KazooException as error:
                self.history.finish(op, "fail", error=error)
                time.sleep(0.1)
            time.sleep(0.03)

    # locks
    def start_locks(self, processes: list[int]) -> None:
        for process in processes:
            client = self._client(process)
            rng = random.Random(self.seed * 2000 + process)
            self._spawn(f"lock-{process}", lambda c=client, p=process, r=rng: self._locks(c, p, r))

    def _locks(self, client, process: int, rng: random.Random) -> None:
        lock = client.Lock(LOCK_PATH, identifier=f"p{process}")
        history = self.history
        while not self.stop.is_set():
            op = history.invoke(process, "acquire")
            try:
                got = lock.acquire(timeout=8)
            except (KazooException, LockTimeout) as error:
                history.finish(op, "fail", error=error)
                time.sleep(0.1)
                continue
            if not got:
                history.finish(op, "fail")
                continue
            history.finish(op, "ok", lock.node)
            session = client.client_id[0] if client.client_id else 0
            start = op.complete
            time.sleep(rng.uniform(0.02, 0.12))
            end = history.now()  # the release's invocation ends the interval
            release = history.invoke(process, "release")
            released = False
            deadline = time.monotonic() + 60
            while not released and time.monotonic() < deadline:
                try:
                    lock.release()
                    released = True
                except KazooException:
                    time.sleep(0.1)
            history.finish(release, "ok" if released else "info")
            lost = any(start <= t <= release.complete and state == KazooState.LOST
                       for t, state in list(self.states[process]))
            current = client.client_id[0] if client.client_id else 0
            with self.guard:
                self.holds.append(Hold(process, session, start, end, lock.node or "?",
                                       session_lost=lost or current != session))
            if not released:
                with self.guard:
                    self.crashes.append(f"lock-{process}: could not release within 60s")
                return
            time.sleep(rng.uniform(0.0, 0.05))

    def finish(self, timeout_s: float = 60.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            self.crashes.append(f"workers still running after {timeout_s}s: {stuck}")

    def close(self) -> None:
        self.stop.set()
        stop_clients(self.clients)


# -- nemesis ------------------------------------------------------------------------------------

@dataclass
class Fault:
    at: float
    kind: str          # kill | pause
    member: int
    role: str
    held_s: float
    healed_at: float = 0.0


class Nemesis:
    """One fault at a time: SIGKILL + restart, or SIGSTOP + SIGCONT, of one member."""

    def __init__(self, members, history: History, rng: random.Random,
                 kinds: tuple[str, ...] = ("kill", "pause")) -> None:
        self.members = members
        self.history = history
        self.rng = rng
        self.kinds = kinds
        self.faults: list[Fault] = []
        self.error: str | None = None

    def run(self, duration_s: float, stop: threading.Event) -> None:
        end = time.monotonic() + duration_s
        try:
            while time.monotonic() < end and not stop.is_set():
                time.sleep(self.rng.uniform(0.8, 2.0))
                if time.monotonic() >= end:
                    break
                self._one_fault()
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.error = repr(error)
        finally:
            self.heal()

    def _one_fault(self) -> None:
        rng = self.rng
        if rng.random() < 0.6:
            target = leader_of(self.members, timeout_s=30)
        else:
            target = rng.choice(self.members)
        role = mode(target)
        kind = rng.choice(self.kinds)
        # Pauses and partitions of a few seconds: shorter and longer than syncLimit (5 ticks of
        # 1 s), so some leaders are replaced while they sleep (or are cut off) and come back
        # deposed.
        held = rng.uniform(0.5, 3.0) if kind == "kill" else rng.uniform(1.0, 7.0)
        fault = Fault(self.history.now(), kind, target.myid, role, round(held, 2))
        self.faults.append(fault)
        if kind == "kill":
            target.kill()
            time.sleep(held)
            target.launch()
        elif kind == "partition":
            target.network.partition(target.index)
            time.sleep(held)
            target.network.heal(target.index)
        else:
            pause(target)
            time.sleep(held)
            resume(target)
        fault.healed_at = self.history.now()
        wait_serving(self.members, 90)

    def heal(self) -> None:
        for member in self.members:
            network = getattr(member, "network", None)
            if network is not None and member.index in network.partitioned:
                network.heal(member.index)
            if member.process is None:
                member.launch()
            else:
                resume(member)


# -- the whole run ------------------------------------------------------------------------------

@dataclass
class Report:
    seed: int
    kind: str
    problems: list[str] = field(default_factory=list)
    summary: str = ""


def _final_state(members) -> tuple[dict[int, tuple[int, int]], dict[int, set[str]]]:
    register_finals: dict[int, tuple[int, int]] = {}
    seq_finals: dict[int, set[str]] = {}
    for member in members:
        client = member_client(member, timeout_s=10.0, start_timeout_s=30.0)
        try:
            client.sync("/jepsen")
            data, stat = client.get(REGISTER)
            register_finals[member.myid] = (int(data), stat.version)
            seq_finals[member.myid] = set(client.get_children(SEQ_PARENT))
        finally:
            stop_clients([client])
    return register_finals, seq_finals


def run(kind: str, members, seed: int, nemesis_s: float = 20.0, session_timeout_s: float = 20.0,
        register_processes: int = 4, register_max_ops: int = 80,
        faults: tuple[str, ...] = ("kill", "pause")) -> Report:
    from tests.support.servers import connect_string

    report = Report(seed, kind)
    rng = random.Random(seed)
    history = History()
    hosts = connect_string(members)
    setup = make_client(hosts)
    setup.start(30)
    setup.create(REGISTER, str(INITIAL_VALUE).encode(), makepath=True)
    setup.ensure_path(SEQ_PARENT)
    setup.ensure_path(LOCK_PATH)
    stop_clients([setup])

    workers = Workers(hosts, history, seed, session_timeout_s)
    nemesis = Nemesis(members, history, rng, faults)
    try:
        register = list(range(register_processes))
        creates = [100 + i for i in range(2)]
        locks = [200 + i for i in range(3)]
        workers.start_register(register, register_max_ops)
        workers.start_creates(creates)
        workers.start_locks(locks)
        nemesis.run(nemesis_s, workers.stop)
        wait_serving(members, 90)
        time.sleep(1.0)  # a little quiet traffic on the healed ensemble
        workers.finish()
    finally:
        workers.close()
        nemesis.heal()
    wait_serving(members, 90)

    # Final state through every member, after a sync. A member that was paused or restarted
    # last may still be catching up when first asked: ask again until the members agree or a
    # deadline passes (what they then disagree on is reported).
    acked = {op.result for op in history.of("create") if op.status == "ok"}
    deadline = time.monotonic() + 30
    while True:
        register_finals, seq_finals = _final_state(members)
        agreed = (len(set(register_finals.values())) == 1
                  and len({frozenset(c) for c in seq_finals.values()}) == 1
                  and all(acked <= c for c in seq_finals.values()))
        if agreed or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    problems = report.problems
    if nemesis.error:
        problems.append(f"nemesis: {nemesis.error}")
    problems.extend(workers.crashes)
    register_ops = history.of("read", "write", "cas")
    # The final read (after everything) belongs to the register's history too.
    final_value, final_version = next(iter(register_finals.values()))
    last = history.invoke(-1, "read")
    history.finish(last, "ok", final_value, final_version)
    register_ops.append(last)
    linear = check_register(register_ops)
    if not linear.ok:
        problems.append("register history is not linearizable: " + linear.detail)
    problems.extend(check_versions(register_ops, register_finals))
    create_ops = history.of("create")
    problems.extend(check_creates(create_ops, seq_finals))
    lock_problems, excluded = check_locks(workers.holds)
    problems.extend(lock_problems)

    def counts(ops):
        out: dict[str, int] = {}
        for op in ops:
            key = f"{op.f}:{op.status}"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    kills = [f for f in nemesis.faults if f.kind == "kill"]
    pauses = [f for f in nemesis.faults if f.kind == "pause"]
    cuts = [f for f in nemesis.faults if f.kind == "partition"]
    report.summary = (
        f"jepsen[{kind}] seed={seed}: {len(register_ops)} register ops {counts(register_ops)} "
        f"(linearizability search: {linear.explored} steps); {len(create_ops)} creates "
        f"{counts(create_ops)}; {len(workers.holds)} lock holds ({excluded} excluded: session "
        f"lost); nemesis: {len(kills)} kills, {len(pauses)} pauses, {len(cuts)} partitions "
        f"[{', '.join(f'{f.at:.1f}s {f.kind} {f.role} m{f.member} {f.held_s}s' for f in nemesis.faults)}]; "
        f"final register {register_finals}")
    return report
