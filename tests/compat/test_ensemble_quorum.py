"""A minority refuses writes; the ensemble converges once the quorum is back.

3 members (zkpy and the reference, to show the test itself is sound, and the mixed ensembles of
Java and zkpy members): data is written, then two
members are SIGKILLed, leaving the leader alone. It must stop serving (``srvr`` answers "not
currently serving requests") and no client may write through it: a client that was connected to
it, and a new client naming only it, both get connection loss or a time-out, never a success.
Then the two come back; every member must serve again and hold exactly the same data (a dump of
the whole tree through each member, after a sync), with nothing of what was tried alone.
"""

from __future__ import annotations

import threading

import pytest
from kazoo.exceptions import ConnectionLoss, KazooException, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError

from tests.support.ensemble_fixtures import (NOT_SERVING, describe_logs,  # noqa: F401
                                             ensemble_factory, fast_retry, leader_of, make_client,
                                             member_client, mode, stop_clients, tree_of,
                                             wait_for, wait_serving)
from tests.support.servers import ENSEMBLE_KINDS, connect_string, four_letter_word

pytestmark = pytest.mark.compat


def attempt(fn) -> str:
    """'ok', or what stopped it: refusals are expected, a success is not."""
    try:
        fn()
        return "ok"
    except (ConnectionLoss, SessionExpiredError, KazooTimeoutError) as error:
        return type(error).__name__
    except KazooException as error:
        return f"other:{type(error).__name__}"


@pytest.mark.parametrize("server_kind", ENSEMBLE_KINDS)
def test_minority_refuses_writes_then_converges(server_kind, ensemble_factory):
    members = ensemble_factory(server_kind, 3)
    writer = make_client(connect_string(members))
    writer.start(20)
    clients = [writer]
    try:
        writer.create("/q/before", b"1", makepath=True)
        for index in range(30):
            writer.create("/q/n-", str(index).encode(), sequence=True)
        writer.set("/q/before", b"2")
        lonely = leader_of(members)
        others = [m for m in members if m is not lonely]
        # A client of the lonely member, connected before the split (short retries: it must
        # fail, not wait for the quorum to come back).
        stranded = make_client(lonely.connect_string, timeout_s=6.0,
                               connection_retry=fast_retry(max_tries=3),
                               command_retry=fast_retry(max_tries=1))
        stranded.start(20)
        clients.append(stranded)
        stranded.sync("/q")
        assert stranded.get("/q/before")[0] == b"2"

        for member in others:
            member.kill()
        wait_for(lambda: mode(lonely) == "not-serving", "the lone member to stop serving", 30)
        srvr = four_letter_word(lonely.port, "srvr")
        assert NOT_SERVING in srvr, srvr

        outcomes = {"stranded": attempt(lambda: stranded.create("/q/minority-1", b"x"))}
        stranded.stop()
        fresh = make_client(lonely.connect_string, timeout_s=4.0,
                            connection_retry=fast_retry(max_tries=2),
                            command_retry=fast_retry(max_tries=1))
        clients.append(fresh)

        def fresh_write():
            fresh.start(8)
            fresh.create("/q/minority-2", b"x")

        outcomes["fresh"] = attempt(fresh_write)
        assert "ok" not in outcomes.values(), f"a write succeeded without a quorum: {outcomes}"
        assert mode(lonely) == "not-serving", describe_logs(members)
        fresh.stop()

        for member in others:
            member.launch()
        wait_serving(members, 60)
        trees = {}
        for member in members:
            direct = member_client(member)
            try:
                direct.sync("/")
                trees[member.myid] = tree_of(direct)
            finally:
                stop_clients([direct])
        reference_tree = trees[lonely.myid]
        for myid, tree in trees.items():
            assert tree == reference_tree, (f"member {myid} differs from member {lonely.myid}: "
                                            f"{sorted(set(tree.items()) ^ set(reference_tree.items()))[:10]}")
        assert reference_tree["/q/before"] == b"2"
        assert len([p for p in reference_tree if p.startswith("/q/n-")]) == 30
        assert "/q/minority-1" not in reference_tree and "/q/minority-2" not in reference_tree
        # And the healed ensemble takes writes again, through every member.
        for member in members:
            direct = member_client(member)
            try:
                direct.create(f"/q/after-{member.myid}", b"")
            finally:
                stop_clients([direct])
        print(f"{server_kind}: lone leader {lonely.myid} refused writes ({outcomes}); converged on "
              f"{len(reference_tree)} znodes")
    finally:
        stop_clients(clients)
