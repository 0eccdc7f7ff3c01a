"""etcd's messages from the front end's records: KeyValues and Events as protobuf, and the
Range options (filters, sort) applied to a list of records. Pure functions."""

from __future__ import annotations

from jute import Err

from zkpy.frontends.etcd.mvcc import Event, KeyValue
from zkpy.frontends.etcd.proto import kv_pb2, rpc_pb2
from zkpy.tree.datatree import TxnResult


def unwrap(response: rpc_pb2.TxnResponse, kind: str):
    """A Put or DeleteRange ran as a one-op txn: its own response, with the full header."""
    if kind == "put":
        inner = response.responses[0].response_put
    elif kind == "delete":
        inner = response.responses[0].response_delete_range
    else:
        return response
    inner.header.CopyFrom(response.header)
    return inner


def passes_filters(kv: KeyValue, request: rpc_pb2.RangeRequest) -> bool:
    if request.min_mod_revision and kv.mod_revision < request.min_mod_revision:
        return False
    if request.max_mod_revision and kv.mod_revision > request.max_mod_revision:
        return False
    if request.min_create_revision and kv.create_revision < request.min_create_revision:
        return False
    if request.max_create_revision and kv.create_revision > request.max_create_revision:
        return False
    return True


_SORT_KEYS = {
    rpc_pb2.RangeRequest.KEY: lambda kv: kv.key,
    rpc_pb2.RangeRequest.VERSION: lambda kv: kv.version,
    rpc_pb2.RangeRequest.CREATE: lambda kv: kv.create_revision,
    rpc_pb2.RangeRequest.MOD: lambda kv: kv.mod_revision,
    rpc_pb2.RangeRequest.VALUE: lambda kv: kv.value,
}


def sorted_kvs(kvs: list[KeyValue], order: int, target: int) -> list[KeyValue]:
    """etcd's sort: by key ascending unless asked; a target without an order ascends."""
    R = rpc_pb2.RangeRequest
    if order == R.NONE and target != R.KEY:
        order = R.ASCEND
    if order == R.NONE or (order == R.ASCEND and target == R.KEY):
        return kvs  # the index's own order
    return sorted(kvs, key=_SORT_KEYS[target], reverse=order == R.DESCEND)


def at_revision(request: rpc_pb2.RangeRequest, revision: int) -> rpc_pb2.RangeRequest:
    if request.revision:
        return request
    copy = rpc_pb2.RangeRequest()
    copy.CopyFrom(request)
    copy.revision = revision
    return copy


def pb_event(event: Event, with_prev: bool) -> kv_pb2.Event:
    if event.kv is None:
        pb = kv_pb2.Event(type=kv_pb2.Event.DELETE,
                          kv=kv_pb2.KeyValue(key=event.key, mod_revision=event.revision))
    else:
        pb = kv_pb2.Event(type=kv_pb2.Event.PUT, kv=pb_kv(event.kv))
    if with_prev and event.prev is not None:
        pb.prev_kv.CopyFrom(pb_kv(event.prev))
    return pb


def pb_kv(kv: KeyValue, keys_only: bool = False) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(key=kv.key, create_revision=kv.create_revision,
                           mod_revision=kv.mod_revision, version=kv.version,
                           value=b"" if keys_only else kv.value, lease=signed(kv.lease))


def signed(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def txn_error(result: TxnResult) -> int:
    if result.err:
        return result.err
    for sub in result.sub_results:
        if sub.err and sub.err != int(Err.RUNTIMEINCONSISTENCY):
            return sub.err
    return 0
