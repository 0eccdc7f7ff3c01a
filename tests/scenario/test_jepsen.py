"""Jepsen-style test of a 3-member ensemble under kills and pauses (tests/support/jepsen.py).

Concurrent kazoo clients run a compare-and-set register, sequential creates and a lock while a
nemesis SIGKILLs+restarts or SIGSTOPs+SIGCONTs one member at a time (often the leader) for
about 20 s. The history is then checked: the register's read/write/cas history must be
linearizable (info ops may or may not have happened), versions must map to one value each and
end the same everywhere, every acknowledged create must be on every member with unique sequence
numbers, and lock holders whose sessions stayed alive must never overlap.

A second variant runs the members in network namespaces (tests/support/netns.py, needs root)
and adds partitions to the nemesis: one member (often the leader) is cut off the peer network
for a few seconds, while clients can still reach it.

The run is seeded: ``JEPSEN_SEED=<n>`` repeats one; the seed is printed with the summary and in
any failure. Both kinds run: the reference ZooKeeper shows the harness and checkers are sound.

The checkers themselves are tested first on small hand-made histories.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.support import jepsen
from tests.support.ensemble_fixtures import describe_logs, ensemble_factory  # noqa: F401
from tests.support.jepsen import Hold, Op, check_creates, check_locks, check_register, check_versions
from tests.support.netns import NetnsNetwork, NetnsUnavailable, netns_ensemble
from tests.support.servers import KINDS, start_all


def op(index, f, value, invoke, complete, status="ok", result=None, version=None, process=0):
    return Op(index, process, f, value, invoke, complete, status, result, version)


# -- the checkers on known histories -----------------------------------------------------------

def test_register_checker_accepts_sequential_and_concurrent_histories():
    history = [
        op(0, "write", 1, 0.0, 1.0),
        op(1, "read", None, 2.0, 3.0, result=1),
        op(2, "cas", (1, 2), 4.0, 5.0),
        op(3, "read", None, 6.0, 7.0, result=2),
    ]
    assert check_register(history).ok
    # A read concurrent with a write may see either value.
    for seen in (0, 5):
        concurrent = [op(0, "write", 5, 0.0, 2.0), op(1, "read", None, 1.0, 3.0, result=seen)]
        assert check_register(concurrent).ok, seen
    # Two concurrent cas from the same value: only one can succeed, but either order of the
    # later reads must match the winner.
    racing = [op(0, "cas", (0, 1), 0.0, 2.0), op(1, "cas", (1, 2), 0.5, 2.5),
              op(2, "read", None, 3.0, 4.0, result=2)]
    assert check_register(racing).ok


def test_register_checker_rejects_stale_reads_and_lost_writes():
    stale = [op(0, "write", 1, 0.0, 1.0), op(1, "read", None, 2.0, 3.0, result=0)]
    result = check_register(stale)
    assert not result.ok and "no linearization" in result.detail
    lost = [op(0, "write", 1, 0.0, 1.0), op(1, "write", 2, 1.5, 2.0),
            op(2, "read", None, 3.0, 4.0, result=1)]
    assert not check_register(lost).ok
    # A cas whose expected value was never current cannot have succeeded.
    impossible = [op(0, "cas", (7, 8), 0.0, 1.0)]
    assert not check_register(impossible).ok
    # Reads going back in time between two sequential reads.
    flip = [op(0, "write", 1, 0.0, 3.0), op(1, "read", None, 0.5, 1.0, result=1),
            op(2, "read", None, 1.5, 2.0, result=0)]
    assert not check_register(flip).ok


def test_register_checker_treats_info_as_maybe():
    # An unknown-outcome write may have happened (a later read sees it) ...
    seen = [op(0, "write", 3, 0.0, None, status="info"), op(1, "read", None, 5.0, 6.0, result=3)]
    assert check_register(seen).ok
    # ... or not (a later read still sees the old value) ...
    unseen = [op(0, "write", 3, 0.0, None, status="info"), op(1, "read", None, 5.0, 6.0, result=0)]
    assert check_register(unseen).ok
    # ... but not before it was invoked.
    early = [op(0, "read", None, 0.0, 1.0, result=3), op(1, "write", 3, 2.0, None, status="info")]
    assert not check_register(early).ok
    # Failed ops never happened.
    failed = [op(0, "write", 3, 0.0, 1.0, status="fail"), op(1, "read", None, 2.0, 3.0, result=3)]
    assert not check_register(failed).ok


def test_random_sequential_histories_are_linearizable():
    rng = random.Random(7)
    for _ in range(20):
        state, t, history = 0, 0.0, []
        for index in range(60):
            kind = rng.choice(["read", "write", "cas"])
            if kind == "read":
                history.append(op(index, "read", None, t, t + 0.5, result=state))
            elif kind == "write":
                state = index + 100
                history.append(op(index, "write", state, t, t + 0.5))
            else:
                history.append(op(index, "cas", (state, index + 100), t, t + 0.5))
                state = index + 100
            t += 1.0
        assert check_register(history).ok


def test_version_lock_and_create_checkers():
    acked = [op(0, "write", 1, 0, 1, version=1), op(1, "cas", (1, 2), 2, 3, version=2)]
    assert check_versions(acked, {1: (2, 2), 2: (2, 2)}) == []
    clash = acked + [op(2, "write", 9, 4, 5, version=2)]
    assert any("several values" in p for p in check_versions(clash, {1: (9, 2)}))
    assert any("different" in p for p in check_versions(acked, {1: (2, 2), 2: (1, 1)}))
    assert any("below" in p for p in check_versions(acked, {1: (1, 1)}))

    holds = [Hold(1, 11, 0.0, 1.0, "a"), Hold(2, 12, 1.0, 2.0, "b")]
    assert check_locks(holds) == ([], 0)
    overlapping = holds + [Hold(3, 13, 1.5, 2.5, "c")]
    assert len(check_locks(overlapping)[0]) == 1
    excused = holds + [Hold(3, 13, 1.5, 2.5, "c", session_lost=True)]
    assert check_locks(excused) == ([], 1)

    creates = [op(0, "create", "/jepsen/seq/p1-", 0, 1, result="p1-0000000000"),
               op(1, "create", "/jepsen/seq/p2-", 0, 1, result="p2-0000000001"),
               op(2, "create", "/jepsen/seq/p2-", 2, None, status="info")]
    good = {"p1-0000000000", "p2-0000000001", "p2-0000000002"}
    assert check_creates(creates, {1: good, 2: set(good)}) == []
    assert any("lacks" in p for p in check_creates(creates, {1: good, 2: good - {"p1-0000000000"}}))
    twice = {"p1-0000000000", "p2-0000000001", "p2-0000000000"}
    assert any("twice" in p for p in check_creates(creates, {1: twice}))
    phantom = good | {"p1-0000000007"}
    assert any("unknown outcome" in p for p in check_creates(creates, {1: phantom}))


# -- the real thing ---------------------------------------------------------------------------

# The reference ZooKeeper 3.8.0 itself has been seen, rarely, to leave a member without some
# acknowledged creates after a long SIGSTOP of its leader; its variant gets a second run (with
# another seed) before it counts as failed. zkpy's gets exactly one.
ATTEMPTS = {"zookeeper": 2, "zkpy": 1}


@pytest.mark.parametrize("server_kind", KINDS)
def test_jepsen_kill_and_pause(server_kind, ensemble_factory):
    seed = int(os.environ.get("JEPSEN_SEED", random.randrange(1 << 30)))
    failures = []
    for attempt in range(ATTEMPTS[server_kind]):
        # Session timeouts well above a fault's length: a holder's session should survive.
        members = ensemble_factory(server_kind, 3)
        try:
            report = jepsen.run(server_kind, members, seed + attempt)
        except AssertionError as error:
            raise AssertionError(f"JEPSEN_SEED={seed + attempt} ({server_kind}): {error}") from None
        print(report.summary)
        if not report.problems:
            return
        failures.append(f"JEPSEN_SEED={seed + attempt} ({server_kind}):\n"
                        + "\n".join(report.problems) + "\n" + report.summary + "\n"
                        + describe_logs(members, 40))
        for member in members:
            member.stop()
    raise AssertionError("\n\n".join(failures))


@pytest.fixture
def netns_members(tmp_path):
    """``make(kind)``: a serving 3-member ensemble in network namespaces; torn down after."""
    made = []

    def make(kind: str):
        network = NetnsNetwork(3)
        try:
            network.create()
        except NetnsUnavailable as error:
            pytest.fail(f"cannot build the namespace network (needs root / CAP_NET_ADMIN): {error}")
        members = netns_ensemble(kind, tmp_path / kind, network)
        made.append((network, members))
        start_all(members, 90.0)
        return members

    yield make
    for network, members in made:
        for member in members:
            member.kill()
        network.cleanup()


@pytest.mark.parametrize("server_kind", KINDS)
def test_jepsen_kill_pause_and_partition(server_kind, netns_members):
    seed = int(os.environ.get("JEPSEN_SEED", random.randrange(1 << 30)))
    members = netns_members(server_kind)
    try:
        report = jepsen.run(server_kind, members, seed,
                            faults=("kill", "pause", "partition", "partition"))
    except AssertionError as error:
        raise AssertionError(f"JEPSEN_SEED={seed} ({server_kind}, partitions): {error}") from None
    print(report.summary)
    assert not report.problems, (f"JEPSEN_SEED={seed} ({server_kind}, partitions):\n"
                                 + "\n".join(report.problems) + "\n" + report.summary + "\n"
                                 + describe_logs(members, 40))
