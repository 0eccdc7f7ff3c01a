"""The etcd front end over a standalone replica core, without sockets or sleeps: plans, retries
of stale plans, compares under contention, leases as sessions, compaction and watch history."""

from __future__ import annotations

import random

import pytest

from jute import OpCode
from jute import records as r
from zkpy.frontends.etcd.frontend import EtcdError, EtcdFrontEnd, EtcdSettings
from zkpy.frontends.etcd.keys import key_of, prefix_end, znode_name
from zkpy.frontends.etcd.proto import rpc_pb2
from zkpy.replica.core import CoreSettings, ReplicaCore
from zkpy.replica.request import Request
from zkpy.tree.datatree import OPEN_ACL

C = rpc_pb2.Compare


class Harness:
    def __init__(self) -> None:
        self.now_ms = 1_000
        self.core = ReplicaCore(CoreSettings(tick_ms=500), self.now_ms)
        self.etcd = EtcdFrontEnd(self.core, EtcdSettings(member_id=1))
        self.etcd.now_ms = self.now_ms
        self.tokens = 0

    def pump(self) -> None:
        """Log and apply until nothing is left: the runtime's flush, with no disk."""
        while True:
            batch = self.core.take_log_batch()
            if not batch:
                return
            self.core.log_durable(batch, self.now_ms)

    def call(self, method, request):
        self.tokens += 1
        token = self.tokens
        method(token, request)
        self.pump()
        outcomes = dict(self.etcd.completions)
        self.etcd.completions.clear()
        return outcomes[token]

    def put(self, key: bytes, value: bytes, **options):
        return self.call(self.etcd.put, rpc_pb2.PutRequest(key=key, value=value, **options))

    def get(self, key: bytes, **options):
        return self.call(self.etcd.range, rpc_pb2.RangeRequest(key=key, **options))

    def advance(self, ms: int) -> None:
        self.now_ms += ms
        self.etcd.now_ms = self.now_ms
        self.core.tick(self.now_ms)
        self.etcd.tick(self.now_ms)
        self.pump()


@pytest.fixture
def h():
    return Harness()


def test_put_get_revisions_are_zxids(h):
    first = h.put(b"/a", b"1")
    second = h.put(b"/a", b"2", prev_kv=True)
    assert second.header.revision > first.header.revision
    assert second.prev_kv.value == b"1" and second.prev_kv.mod_revision == first.header.revision
    got = h.get(b"/a")
    kv = got.kvs[0]
    assert (kv.value, kv.version, kv.create_revision, kv.mod_revision) == (
        b"2", 2, first.header.revision, second.header.revision)
    node = h.core.tree.nodes["/etcd/kv/" + znode_name(b"/a")]
    assert (node.czxid, node.mzxid, node.data) == (kv.create_revision, kv.mod_revision, b"2")
    old = h.get(b"/a", revision=first.header.revision)
    assert old.kvs[0].value == b"1"


def test_puts_planned_on_the_same_view_are_both_applied(h):
    """Two puts of a new key in one loop turn are both planned as creates; the second is
    refused by prep (NODEEXISTS) and planned again as a setData on the newer view."""
    h.put(b"/seed", b"s")
    etcd = h.etcd
    etcd.put(101, rpc_pb2.PutRequest(key=b"/k", value=b"one"))
    etcd.put(102, rpc_pb2.PutRequest(key=b"/k", value=b"two", prev_kv=True))
    h.pump()
    outcomes = dict(etcd.completions)
    assert not isinstance(outcomes[101], EtcdError) and not isinstance(outcomes[102], EtcdError)
    assert outcomes[102].prev_kv.value == b"one"
    kv = h.get(b"/k").kvs[0]
    assert (kv.value, kv.version) == (b"two", 2)


def test_create_if_absent_under_contention_has_one_winner(h):
    """The lock recipe's txn: of many planned on the same view, exactly one succeeds."""
    h.put(b"/seed", b"s")
    etcd = h.etcd
    for token in range(10):
        etcd.txn(token, rpc_pb2.TxnRequest(
            compare=[C(key=b"/lock", target=C.CREATE, result=C.EQUAL, create_revision=0)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(
                key=b"/lock", value=str(token).encode()))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"/lock"))]))
    h.pump()
    outcomes = dict(etcd.completions)
    winners = [t for t, o in outcomes.items() if o.succeeded]
    assert len(winners) == 1
    holder = h.get(b"/lock").kvs[0]
    assert holder.value == str(winners[0]).encode() and holder.version == 1
    for token, outcome in outcomes.items():
        if token != winners[0]:
            assert outcome.responses[0].response_range.kvs[0].value == holder.value


def test_compare_on_an_absent_key_is_checked_at_commit(h):
    """A txn that only compares an absent key still fails if the key appears before it
    commits: the plan asserts the absence with a create and delete of the znode."""
    h.put(b"/seed", b"s")
    etcd = h.etcd
    # A ZooKeeper client's create of the flag is prepared, not yet applied, when the txn is
    # planned: the plan sees no flag.
    flag = "/etcd/kv/" + znode_name(b"/flag")
    h.core.submit(Request(0, 0, OpCode.create, r.CreateRequest(flag, b"up", OPEN_ACL, 0)), h.now_ms)
    etcd.txn(1, rpc_pb2.TxnRequest(
        compare=[C(key=b"/flag", target=C.VERSION, result=C.EQUAL, version=0)],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/out", value=b"absent"))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"/flag"))]))
    h.pump()
    outcome = dict(etcd.completions)[1]
    # Prep refused the first plan (the flag exists by then); the second saw the flag.
    assert not outcome.succeeded
    assert outcome.responses[0].response_range.kvs[0].value == b"up"
    assert h.get(b"/out").kvs == []
    assert "/etcd/kv/" + znode_name(b"/out") not in h.core.tree.nodes


def test_lease_expiry_deletes_its_keys_in_one_txn(h):
    granted = h.call(h.etcd.lease_grant, rpc_pb2.LeaseGrantRequest(TTL=5))
    assert granted.TTL == 5 and granted.ID
    h.put(b"/svc/a", b"1", lease=granted.ID)
    h.put(b"/svc/b", b"2", lease=granted.ID)
    h.put(b"/svc/c", b"3")
    watch_stream = "watcher"
    h.etcd.watch(watch_stream, rpc_pb2.WatchCreateRequest(key=b"/svc/", range_end=prefix_end(b"/svc/")), 0)
    h.etcd.watch_out.clear()
    for _ in range(4):
        h.advance(1_000)
        assert h.etcd.lease_keep_alive(granted.ID, h.now_ms).TTL == 5
    h.advance(8_000)
    assert [kv.key for kv in h.get(b"/svc/", range_end=prefix_end(b"/svc/")).kvs] == [b"/svc/c"]
    (stream, response), = h.etcd.watch_out
    assert stream == watch_stream and [(e.type, e.kv.key) for e in response.events] == [
        (1, b"/svc/a"), (1, b"/svc/b")]
    assert h.etcd.lease_keep_alive(granted.ID, h.now_ms).TTL == 0
    with pytest.raises(EtcdError, match="requested lease not found"):
        raise h.put(b"/svc/d", b"4", lease=granted.ID)


def test_compaction_and_watch_history(h):
    revisions = [h.put(b"/h", str(i).encode()).header.revision for i in range(5)]
    h.call(h.etcd.delete_range, rpc_pb2.DeleteRangeRequest(key=b"/h"))
    h.etcd.watch("s", rpc_pb2.WatchCreateRequest(key=b"/h", start_revision=revisions[1],
                                                 prev_kv=True), 7)
    created, history = h.etcd.watch_out
    assert created[1].created and created[1].watch_id == 7
    events = history[1].events
    assert [e.kv.value for e in events] == [b"1", b"2", b"3", b"4", b""]
    assert [e.prev_kv.value for e in events] == [b"0", b"1", b"2", b"3", b"4"]
    h.etcd.watch_out.clear()
    h.call(h.etcd.compact, rpc_pb2.CompactionRequest(revision=revisions[3]))
    with pytest.raises(EtcdError, match="compacted"):
        raise h.get(b"/h", revision=revisions[2])
    h.etcd.watch("s", rpc_pb2.WatchCreateRequest(key=b"/h", start_revision=revisions[2]), 8)
    _, cancelled = h.etcd.watch_out[-1]
    assert cancelled.canceled and cancelled.compact_revision == revisions[3]
    with pytest.raises(EtcdError, match="future revision"):
        raise h.get(b"/h", revision=revisions[-1] + 1000)


def test_a_zookeeper_clients_write_is_an_etcd_put(h):
    h.put(b"/shared", b"from etcd")
    path = "/etcd/kv/" + znode_name(b"/shared")
    h.etcd.watch("s", rpc_pb2.WatchCreateRequest(key=b"/shared"), 0)
    h.etcd.watch_out.clear()
    h.core.submit(Request(0, 0, OpCode.setData, r.SetDataRequest(path, b"from zookeeper", -1)), h.now_ms)
    h.pump()
    kv = h.get(b"/shared").kvs[0]
    assert (kv.value, kv.version) == (b"from zookeeper", 2)
    (_, response), = h.etcd.watch_out
    assert response.events[0].kv.value == b"from zookeeper"


def test_txn_errors(h):
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/d", value=b"1"))
    with pytest.raises(EtcdError, match="duplicate key"):
        raise h.call(h.etcd.txn, rpc_pb2.TxnRequest(success=[put, put]))
    with pytest.raises(EtcdError, match="too many operations"):
        raise h.call(h.etcd.txn, rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/d%d" % i)) for i in range(129)]))
    with pytest.raises(EtcdError, match="key is not provided"):
        raise h.put(b"", b"x")
    with pytest.raises(EtcdError, match="key not found"):
        raise h.put(b"/nothing", b"", ignore_value=True)


@pytest.mark.parametrize("seed", range(5))
def test_key_escaping_round_trips_and_keeps_names_valid(seed):
    rng = random.Random(seed)
    from zkpy.tree.paths import path_error
    try:
        for _ in range(500):
            key = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
            if rng.random() < 0.1:
                key = b"." * rng.randrange(1, 3)
            name = znode_name(key)
            assert key_of(name) == key
            assert path_error("/etcd/kv/" + name) is None, name
    except AssertionError:
        print(f"seed {seed}")
        raise


def test_history_is_bounded_per_member():
    h = Harness()
    h.etcd.settings = h.etcd.settings._replace(max_history_versions=40)
    revisions = [h.put(b"/k%d" % (i % 3), b"%d" % i).header.revision for i in range(60)]
    index = h.etcd.index
    assert index.version_count <= 40 and index.compact_revision > revisions[0]
    with pytest.raises(EtcdError, match="compacted"):
        raise h.get(b"/k0", revision=revisions[0])
    # The latest state of every key is kept, whatever the bound.
    assert [kv.value for kv in h.get(b"/k", range_end=b"/l").kvs] == [b"57", b"58", b"59"]
    assert h.get(b"/k1", revision=revisions[-2]).kvs[0].value == b"58"
