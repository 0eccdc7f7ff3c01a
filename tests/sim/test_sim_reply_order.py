"""Per-session reply order across failovers: a reply is for the oldest request still outstanding
on its connection (request order, no gap, no duplicate), whatever happens to the leader, the
member or the connection in between. The simulated clients check this on every reply
(``Simulation._client_frame``); the scripted scenarios below are the interleavings that once
broke it, and the seeded test looks for others."""

from __future__ import annotations

import os

import pytest

from jute import OpCode
from tests.sim.simulator import Faults, Simulation


def _settled(seed: int, faults: Faults | None = None) -> tuple[Simulation, int, int]:
    """A 3-member ensemble with an established leader; returns it, the leader and a follower."""
    sim = Simulation(seed=seed, size=3, faults=faults)
    sim.run_until(3_000)
    leader = sim.leader()
    assert leader is not None, {sid: n.node.peer.state for sid, n in sim.nodes.items()}
    follower = next(sid for sid in sorted(sim.nodes) if sid != leader)
    return sim, leader, follower


def _session_on(sim: Simulation, server_id: int):
    client = sim.add_client(scripted=True)
    sim.connect(client, server_id)
    sim.run_until(sim.now_ms + 300)  # the createSession txn commits; the client is answered
    assert client.session_id and not client.awaiting_connect, client
    return client


def test_a_read_arriving_while_the_member_closes_the_connection_is_not_answered():
    """The follower of a dying leader stops serving: it drops its queued requests (a forwarded
    write that can no longer complete) and closes every client connection. The socket closes
    only at the end of the runtime's loop turn; a read that arrives meanwhile was answered at
    once (the session's queue had just been emptied), so the client got xid 2's reply while it
    still waited for xid 1's (kazoo: 'xids do not match, expected 59 received 61')."""
    sim, leader, follower = _settled(seed=11, faults=Faults(close_lag_probability=1.0))
    client = _session_on(sim, follower)
    write = sim.request(client, OpCode.create, "/forwarded")
    assert [o.xid for o in client.outstanding] == [write]  # with the leader, not committed yet
    sim.nodes[leader].crash()
    sim.run_until(sim.now_ms)  # the follower sees its link to the leader break
    assert not sim.nodes[follower].node.serving
    assert client.node_id == follower, "the close must still be pending for this scenario"
    read = sim.request(client, OpCode.getData, "/")  # still on its way when the close came
    sim.carry_out_lagging_closes()
    # The write's fate is unknown, so nothing after it may be answered: connection loss.
    assert client.answered == [], client.answered
    assert client.node_id is None and client.lost == 2, (read, client)


def test_reply_of_a_request_from_an_earlier_connection_never_reaches_the_new_one():
    """A session moves to a new connection on the same follower while a write it forwarded on
    the old connection is still with the leader. The write's commit was answered on the
    session's current connection, i.e. the new one, where the client had not sent that xid."""
    sim, _leader, follower = _settled(seed=12)
    client = _session_on(sim, follower)
    first = sim.request(client, OpCode.create, "/from-the-old-connection")
    sim.disconnect(client)
    sim.connect(client, follower)  # the same session, resumed at once on the same member
    assert not client.awaiting_connect
    read = sim.request(client, OpCode.getData, "/")
    sim.run_until(sim.now_ms + 300)
    # The old connection's reply is dropped with it; the read comes after the session's write.
    assert client.answered == [(client.connection_id, read)], (first, client.answered)
    assert "/from-the-old-connection" in sim.nodes[follower].node.core.tree.nodes


def test_a_new_connection_reusing_an_old_xid_gets_its_own_reply():
    """kazoo numbers xids from 1 again on every connection. The session's old connection left a
    create (xid 1) with the leader; the new connection on the same member sends another create
    with xid 1. The old create's commit was taken for the new one's and answered on the new
    connection (with the other path), and the new create's own commit was answered again: a
    wrong reply, then a duplicate."""
    sim, _leader, follower = _settled(seed=13)
    client = _session_on(sim, follower)
    sim.request(client, OpCode.create, "/old")
    sim.disconnect(client)
    sim.connect(client, follower)
    client.next_xid = 1  # as kazoo after a reconnection
    again = sim.request(client, OpCode.create, "/new")
    assert again == 1
    sim.run_until(sim.now_ms + 300)
    assert client.answered == [(client.connection_id, 1)], client.answered
    assert client.created == ["/new"]
    assert {"/old", "/new"} <= set(sim.nodes[follower].node.core.tree.nodes)


def test_a_write_pipelined_after_a_sync_on_a_follower_is_answered_after_it():
    """A follower read a create, a sync, a setData and a getData in one turn. It used to send
    the writes to the leader first and the sync after them, so the leader's answer to the sync
    came after the setData's commit; that commit found the sync, not the setData, at the head
    of the session's queue and was never answered: the session hung behind it."""
    sim, _leader, follower = _settled(seed=14)
    client = _session_on(sim, follower)
    xids = sim.pipeline(client, [(OpCode.create, "/s"), (OpCode.sync, "/"),
                                 (OpCode.setData, "/s"), (OpCode.getData, "/s")])
    sim.run_until(sim.now_ms + 500)
    assert [xid for _, xid in client.answered] == xids, (xids, client.answered)


def _seeds(default: int, seed_count):
    base = int(os.environ.get("SIM_SEED_BASE", "0"))
    return range(base, base + (seed_count or default))


@pytest.mark.parametrize("size", [3, 5])
def test_replies_stay_in_request_order_across_failovers(size, seed_count):
    """Crashes, partitions, dropped links, sessions moving between members (or reconnecting to
    the same one), and closes that lag behind the server's decision, while every client
    pipelines creates, setData, getData, exists, sync and ping: every reply must match the
    oldest outstanding request of its connection."""
    checked = {"seeds": 0, "replies": 0, "lost": 0}
    for seed in _seeds(250, seed_count):
        faults = Faults(drop_probability=0.02, vote_drop_probability=0.1, max_delay_ms=30,
                        disk_max_delay_ms=15, crash_probability=0.01, partition_probability=0.02,
                        close_lag_probability=0.5, reconnect_probability=0.03)
        sim = Simulation(seed=seed, size=size, faults=faults)
        sim.add_clients(4)
        try:
            sim.run_until(10_000, chaos=True)
            replies = sum(len(c.answered) for c in sim.clients)
            lost = sum(c.lost for c in sim.clients)
            sim.converge()
            sim.check_final_state()
        except Exception as error:
            raise AssertionError(f"simulation seed {seed} (size {size}) failed: {error}") from error
        checked["seeds"] += 1
        checked["replies"] += replies
        checked["lost"] += lost
    assert checked["replies"] > 50 * checked["seeds"], checked  # the check was not idle
    print(f"size {size}: {checked['seeds']} seeds, {checked['replies']} replies checked in order, "
          f"{checked['lost']} requests lost with their connection")
