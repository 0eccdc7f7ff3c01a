"""What the Kubernetes API server asks of etcd, asked of the reference etcd and zkpy alike:
optimistic Put and Delete in a Txn on mod_revision, paged prefix Ranges at a fixed revision,
count-only Ranges, Watch from rev+1 with prev_kv and progress notifications, RequestProgress.
The responses are compared with revisions renamed in order of appearance.
"""

from __future__ import annotations

import asyncio

import grpc

from tests.support.etcdservers import Renamer
from zkpy.frontends.etcd.keys import prefix_end
from zkpy.frontends.etcd.proto import rpc_pb2, rpc_pb2_grpc

C = rpc_pb2.Compare


def op_put(key, value):
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, prev_kv=True))


def op_get(key):
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))


def mod_is(key, revision):
    return C(key=key, target=C.MOD, result=C.EQUAL, mod_revision=revision)


async def scenario(endpoint: str, p: bytes) -> list:
    rev = Renamer("rev")
    rows = []
    async with grpc.aio.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        key = p + b"/registry/pods/default/web-0"
        # Create: only if absent.
        created = await kv.Txn(rpc_pb2.TxnRequest(compare=[mod_is(key, 0)],
                                                  success=[op_put(key, b"v1")],
                                                  failure=[op_get(key)]))
        rows.append(("create", created.succeeded, rev(str(created.header.revision))))
        resource_version = created.header.revision
        again = await kv.Txn(rpc_pb2.TxnRequest(compare=[mod_is(key, 0)],
                                                success=[op_put(key, b"v1")],
                                                failure=[op_get(key)]))
        kvs = again.responses[0].response_range.kvs
        rows.append(("create again", again.succeeded, kvs[0].value,
                     rev(str(kvs[0].mod_revision))))
        # Update on the resourceVersion, then with a stale one.
        updated = await kv.Txn(rpc_pb2.TxnRequest(compare=[mod_is(key, resource_version)],
                                                  success=[op_put(key, b"v2")],
                                                  failure=[op_get(key)]))
        prev = updated.responses[0].response_put.prev_kv
        rows.append(("update", updated.succeeded, prev.value, rev(str(updated.header.revision))))
        stale = await kv.Txn(rpc_pb2.TxnRequest(compare=[mod_is(key, resource_version)],
                                                success=[op_put(key, b"v3")],
                                                failure=[op_get(key)]))
        current = stale.responses[0].response_range.kvs[0]
        rows.append(("stale update", stale.succeeded, current.value, current.version))
        deleted = await kv.Txn(rpc_pb2.TxnRequest(
            compare=[mod_is(key, current.mod_revision)],
            success=[rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(
                key=key, prev_kv=True))],
            failure=[op_get(key)]))
        gone = deleted.responses[0].response_delete_range
        rows.append(("delete", deleted.succeeded, gone.deleted, [k.value for k in gone.prev_kvs]))

        # A paged list at one revision, while writes go on.
        prefix = p + b"/registry/configmaps/"
        for i in range(25):
            await kv.Put(rpc_pb2.PutRequest(key=prefix + b"cm-%02d" % i, value=b"%d" % i))
        first = await kv.Range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix),
                                                    limit=10))
        at = first.header.revision
        pages = [first]
        await kv.Put(rpc_pb2.PutRequest(key=prefix + b"cm-new", value=b"late"))
        while pages[-1].more:
            start = pages[-1].kvs[-1].key + b"\x00"
            pages.append(await kv.Range(rpc_pb2.RangeRequest(
                key=start, range_end=prefix_end(prefix), limit=10, revision=at)))
        rows.append(("pages", [(len(page.kvs), page.more, page.count) for page in pages],
                     [kv.key[-5:] for page in pages for kv in page.kvs][-3:]))
        counted = await kv.Range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix),
                                                      count_only=True))
        rows.append(("count only", counted.count, len(counted.kvs), counted.more))

        # Watch from the list's revision + 1 with prev_kv and progress notifications.
        watch = rpc_pb2_grpc.WatchStub(channel)
        requests: asyncio.Queue = asyncio.Queue()
        await requests.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=at + 1, prev_kv=True,
            progress_notify=True)))

        async def outgoing():
            while True:
                item = await requests.get()
                if item is None:
                    return
                yield item
        call = watch.Watch(outgoing())
        responses = call.__aiter__()
        created = await responses.__anext__()
        rows.append(("watch created", created.created, created.watch_id))
        history = await responses.__anext__()
        rows.append(("history", [(e.type, e.kv.key[-6:], e.kv.value, e.prev_kv.value)
                                 for e in history.events]))
        await kv.Put(rpc_pb2.PutRequest(key=prefix + b"cm-00", value=b"changed"))
        live = await responses.__anext__()
        rows.append(("live", [(e.kv.value, e.prev_kv.value) for e in live.events],
                     rev(str(live.header.revision))))
        # Idle: a progress notification within the interval (1 s in these tests).
        progress = await asyncio.wait_for(responses.__anext__(), 5)
        rows.append(("progress", len(progress.events), progress.watch_id,
                     rev(str(progress.header.revision))))
        await requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
        while True:
            asked = await asyncio.wait_for(responses.__anext__(), 5)
            if asked.watch_id != 0:  # not another periodic notification of the watch
                break
        rows.append(("requested progress", len(asked.events), asked.watch_id,
                     rev(str(asked.header.revision))))
        await requests.put(None)
        call.cancel()
    return rows


def test_kubernetes_patterns_agree(etcd_pair, prefix):
    results = {kind: asyncio.run(scenario(server.endpoint, prefix.encode()))
               for kind, server in etcd_pair.items()}
    assert results["zkpy"] == results["etcd"]
