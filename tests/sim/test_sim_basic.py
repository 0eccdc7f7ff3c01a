"""ZAB with real data trees on a simulated network, clock and disk."""

from __future__ import annotations

import os

import pytest

from tests.sim.simulator import Faults, Simulation


def _seeds(default: int, seed_count):
    base = int(os.environ.get("SIM_SEED_BASE", "0"))
    return range(base, base + (seed_count or default))


def test_three_nodes_elect_a_leader_and_replicate_writes():
    sim = Simulation(seed=1, size=3)
    sim.add_clients(3)
    sim.run_until(3_000)
    leaders = [sid for sid, n in sim.nodes.items() if n.node.role == "leader"]
    assert len(leaders) == 1, {sid: n.node.peer.state for sid, n in sim.nodes.items()}
    assert sim.acked, "no write was acknowledged"
    sim.converge()
    sim.check_final_state()


def test_leader_crash_elects_a_new_leader_and_keeps_acknowledged_writes():
    sim = Simulation(seed=2, size=3)
    sim.add_clients(3)
    sim.run_until(2_000)
    leader = next(sid for sid, n in sim.nodes.items() if n.node.role == "leader")
    before = dict(sim.acked)
    sim.nodes[leader].crash()
    sim.run_until(6_000)
    new_leaders = [sid for sid, n in sim.nodes.items() if n.alive and n.node.role == "leader"]
    assert len(new_leaders) == 1 and new_leaders[0] != leader
    assert len(sim.acked) > len(before), "no write acknowledged after the failover"
    sim.converge()
    sim.check_final_state()


@pytest.mark.parametrize("size", [3, 5])
def test_random_faults_keep_the_invariants(size, seed_count):
    """Drops (connection resets), delays, lost votes, slow disks, crashes with restarts and
    partitions; after each step at most one leader per epoch and one txn per zxid; at the end,
    healed, every node holds the same tree and every acknowledged write."""
    checked = {"seeds": 0, "acked": 0, "faults": 0, "epochs": 0, "snapshots": 0}
    for seed in _seeds(1000, seed_count):
        faults = Faults(drop_probability=0.02, vote_drop_probability=0.1, max_delay_ms=30,
                        disk_max_delay_ms=15, crash_probability=0.01, partition_probability=0.02)
        sim = Simulation(seed=seed, size=size, faults=faults)
        sim.add_clients(4)
        try:
            sim.run_until(15_000, chaos=True)
            sim.converge()
            sim.check_final_state()
        except Exception as error:
            raise AssertionError(f"simulation seed {seed} (size {size}) failed: {error}") from error
        checked["seeds"] += 1
        checked["acked"] += len(sim.acked)
        checked["faults"] += len(sim.trace)
        checked["epochs"] += len(sim.leaders_by_epoch)
        checked["snapshots"] += sim.snapshots_taken
        sim.close()
    print(f"size {size}: {checked['seeds']} seeds, {checked['acked']} acknowledged writes checked, "
          f"{checked['faults']} injected crashes/restarts/partitions, {checked['epochs']} epochs, "
          f"{checked['snapshots']} snapshots")
    # The members' real storage snapshotted and purged its log along the way.
    assert checked["snapshots"] > 0


def test_observers_follow_commits_without_voting(seed_count):
    """3 voters and 2 observers: observers never lead or ack, see every commit, and the
    voters alone keep the quorum."""
    for seed in _seeds(300, seed_count):
        faults = Faults(drop_probability=0.02, vote_drop_probability=0.1, max_delay_ms=30,
                        disk_max_delay_ms=15, crash_probability=0.01, partition_probability=0.02)
        sim = Simulation(seed=seed, size=3, faults=faults, observers=2)
        sim.add_clients(4)
        try:
            sim.run_until(12_000, chaos=True)
            for epoch, leaders in sim.leaders_by_epoch.items():
                assert not leaders & sim.observers, f"an observer led epoch {epoch}"
            sim.converge()
            sim.check_final_state()
        except Exception as error:
            raise AssertionError(f"simulation seed {seed} (3+2 observers) failed: {error}") from error
        assert all(sim.nodes[o].node.peer.state == "observing" for o in sim.observers)


def test_a_member_that_promised_a_later_epoch_still_rejoins():
    """A member that acked the epoch of a leader that never established it (here: its stored
    acceptedEpoch is set past the ensemble's) refuses the established leader's epoch. The leader
    steps down and the next election proposes an epoch it accepts (seed 1922 of the observer
    test once hung this way)."""
    sim = Simulation(seed=3, size=3)
    sim.add_clients(3)
    sim.run_until(3_000)
    leader = next(sid for sid, n in sim.nodes.items() if n.node.role == "leader")
    follower = next(sid for sid in sim.nodes if sid != leader)
    epoch = sim.nodes[leader].node.peer.epoch
    sim.nodes[follower].crash()
    sim.run_until(4_000)
    sim.nodes[follower].restart(
        while_down=lambda storage: storage.persist_epochs(epoch + 3, storage.epochs()[1]))
    sim.converge()
    sim.check_final_state()
    assert all(n.node.peer.current_epoch > epoch for n in sim.nodes.values())
