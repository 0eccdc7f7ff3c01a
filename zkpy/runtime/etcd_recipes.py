"""etcd's Lock and Election services (v3lock, v3election), run as etcd runs them: as a client of
its own KV, Lease and Watch API, with the concurrency recipes etcdctl uses.

A lock or candidacy is the key ``<name>/<lease in hex>``, put with the lease in a txn that
creates it only if it does not exist yet; its create revision is its place in the queue. The
holder is the key with the lowest create revision under the prefix; a waiter watches for the
deletion of the key just ahead of it (sorted by create revision, at most its own minus one),
so each release wakes one waiter. Everything goes through the etcd front end, so the keys are
replicated, and a lease that expires releases its locks in the same closeSession txn.
"""

from __future__ import annotations

import asyncio

import grpc

from zkpy.frontends.etcd.frontend import EtcdError
from zkpy.frontends.etcd.keys import prefix_end
from zkpy.frontends.etcd.proto import rpc_pb2, v3election_pb2, v3lock_pb2

_C = rpc_pb2.Compare
_R = rpc_pb2.RangeRequest
NOT_LEADER = "election: not leader"
NO_LEADER = "election: no leader"
SESSION_EXPIRED = "session: session is expired"


class Recipes:
    def __init__(self, listener) -> None:
        self.listener = listener
        self.frontend = listener.frontend

    async def _call(self, method, request):
        return await self.listener.call(method, request)

    # -- the queue under a prefix ---------------------------------------------------------------

    async def _enqueue(self, name: bytes, lease: int, value: bytes) -> tuple[bytes, int, rpc_pb2.TxnResponse]:
        """Put ``<name>/<lease>`` unless it is there: (key, its create revision, the txn's
        response)."""
        key = name + b"/" + format(lease & 0xFFFFFFFFFFFFFFFF, "x").encode()
        txn = rpc_pb2.TxnRequest(
            compare=[_C(key=key, target=_C.CREATE, result=_C.EQUAL, create_revision=0)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value,
                                                                       lease=lease))],
            failure=[rpc_pb2.RequestOp(request_range=_R(key=key))])
        response = await self._call(self.frontend.txn, txn)
        if response.succeeded:
            return key, response.header.revision, response
        kvs = response.responses[0].response_range.kvs
        return key, kvs[0].create_revision, response

    async def _wait_turn(self, name: bytes, create_revision: int) -> rpc_pb2.ResponseHeader:
        """Wait until no key under ``name/`` was created before ``create_revision``."""
        prefix = name + b"/"
        while True:
            ahead = await self._call(self.frontend.range, _R(
                key=prefix, range_end=prefix_end(prefix), max_create_revision=create_revision - 1,
                sort_order=_R.DESCEND, sort_target=_R.CREATE, limit=1))
            if not ahead.kvs:
                return ahead.header
            await self._wait_deleted(ahead.kvs[0].key, ahead.header.revision)

    async def _wait_turn_or_leave(self, name: bytes, revision: int, key: bytes):
        try:
            return await self._wait_turn(name, revision)
        except BaseException:
            # A waiter that gives up (cancelled, or its lease gone) leaves the queue.
            asyncio.ensure_future(self._delete(key))
            raise

    async def _wait_deleted(self, key: bytes, revision: int) -> None:
        await self._wait_event(rpc_pb2.WatchCreateRequest(
            key=key, start_revision=revision + 1, filters=[rpc_pb2.WatchCreateRequest.NOPUT]))

    async def _wait_event(self, watch: rpc_pb2.WatchCreateRequest) -> None:
        """Until the watch sees an event (or is cancelled), through an internal stream."""
        happened = asyncio.Event()

        def sink(response: rpc_pb2.WatchResponse) -> None:
            if response.canceled or response.events:
                happened.set()

        stream_id, _ = self.listener.open_stream(sink)
        try:
            self.frontend.watch(stream_id, watch, 0)
            self.listener.deliver()
            await happened.wait()
        finally:
            self.listener.close_stream(stream_id)

    async def _delete(self, key: bytes) -> rpc_pb2.DeleteRangeResponse:
        return await self._call(self.frontend.delete_range, rpc_pb2.DeleteRangeRequest(key=key))

    # -- v3lock ---------------------------------------------------------------------------------

    async def lock(self, request: v3lock_pb2.LockRequest, context):
        try:
            key, revision, _ = await self._enqueue(request.name, request.lease, b"")
        except EtcdError as error:
            await _abort(context, error)
        header = await self._wait_turn_or_leave(request.name, revision, key)
        # As etcd's Mutex: the lease may have run out while we waited, and with it our key;
        # then nothing is held, whatever the queue says.
        mine = await self._call(self.frontend.range, _R(key=key))
        if not mine.kvs or mine.kvs[0].create_revision != revision:
            await context.abort(grpc.StatusCode.UNKNOWN, SESSION_EXPIRED)
        return v3lock_pb2.LockResponse(header=header, key=key)

    async def unlock(self, request: v3lock_pb2.UnlockRequest, context):
        response = await self._delete(request.key)
        return v3lock_pb2.UnlockResponse(header=response.header)

    # -- v3election -----------------------------------------------------------------------------

    async def campaign(self, request: v3election_pb2.CampaignRequest, context):
        try:
            key, revision, response = await self._enqueue(request.name, request.lease,
                                                          request.value)
            if not response.succeeded:
                kv = response.responses[0].response_range.kvs[0]
                if kv.value != request.value:
                    await self._proclaim(key, revision, request.lease, request.value)
        except EtcdError as error:
            await _abort(context, error)
        header = await self._wait_turn_or_leave(request.name, revision, key)
        return v3election_pb2.CampaignResponse(header=header, leader=v3election_pb2.LeaderKey(
            name=request.name, key=key, rev=revision, lease=request.lease))

    async def _proclaim(self, key: bytes, revision: int, lease: int, value: bytes):
        txn = rpc_pb2.TxnRequest(
            compare=[_C(key=key, target=_C.CREATE, result=_C.EQUAL, create_revision=revision)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value,
                                                                       lease=lease))])
        return await self._call(self.frontend.txn, txn)

    async def proclaim(self, request: v3election_pb2.ProclaimRequest, context):
        leader = request.leader
        try:
            response = await self._proclaim(leader.key, leader.rev, leader.lease, request.value)
        except EtcdError as error:
            await _abort(context, error)
        if not response.succeeded:
            await context.abort(grpc.StatusCode.UNKNOWN, NOT_LEADER)
        return v3election_pb2.ProclaimResponse(header=response.header)

    async def _leader(self, name: bytes) -> rpc_pb2.RangeResponse:
        prefix = name + b"/"
        return await self._call(self.frontend.range, _R(
            key=prefix, range_end=prefix_end(prefix), sort_order=_R.ASCEND,
            sort_target=_R.CREATE, limit=1))

    async def leader(self, request: v3election_pb2.LeaderRequest, context):
        response = await self._leader(request.name)
        if not response.kvs:
            await context.abort(grpc.StatusCode.UNKNOWN, NO_LEADER)
        return v3election_pb2.LeaderResponse(header=response.header, kv=response.kvs[0])

    async def observe(self, request: v3election_pb2.LeaderRequest, context):
        """Every change of the leader's record, the current one first."""
        last = None
        while True:
            response = await self._leader(request.name)
            if response.kvs:
                kv = response.kvs[0]
                if last is None or (kv.key, kv.mod_revision) != last:
                    last = (kv.key, kv.mod_revision)
                    yield v3election_pb2.LeaderResponse(header=response.header, kv=kv)
            await self._wait_change(request.name + b"/", response.header.revision)

    async def _wait_change(self, prefix: bytes, revision: int) -> None:
        await self._wait_event(rpc_pb2.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=revision + 1))

    async def resign(self, request: v3election_pb2.ResignRequest, context):
        leader = request.leader
        txn = rpc_pb2.TxnRequest(
            compare=[_C(key=leader.key, target=_C.CREATE, result=_C.EQUAL,
                        create_revision=leader.rev)],
            success=[rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(
                key=leader.key))])
        try:
            response = await self._call(self.frontend.txn, txn)
        except EtcdError as error:
            await _abort(context, error)
        return v3election_pb2.ResignResponse(header=response.header)


_STATUS = {code.value[0]: code for code in grpc.StatusCode}


def grpc_status(code: int) -> grpc.StatusCode:
    """The grpc.StatusCode of an EtcdError's code."""
    return _STATUS.get(code, grpc.StatusCode.UNKNOWN)


async def _abort(context, error: EtcdError):
    # etcd's lock and election servers run as clients of etcd's own API and hand its errors
    # on as plain errors: the message stays, the code becomes UNKNOWN.
    await context.abort(grpc.StatusCode.UNKNOWN, error.message)
