"""Bad input on the etcd port: malformed protobuf, unknown methods, inverted ranges, unknown
leases answer as etcd 3.4 answers them; a watch stream its client never reads is closed with a
log line naming the client, and every other client goes on being served."""

from __future__ import annotations

import asyncio
import time

import grpc

from zkpy.frontends.etcd.proto import rpc_pb2, rpc_pb2_grpc


async def raw_call(endpoint: str, method: str, payload: bytes):
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        try:
            await call(payload, timeout=10)
            return "ok"
        except grpc.aio.AioRpcError as error:
            return error.code().name


async def probes(endpoint: str, p: bytes) -> list:
    rows = [("garbage Range", await raw_call(endpoint, "/etcdserverpb.KV/Range", b"\xff\xff\xff")),
            ("garbage Put", await raw_call(endpoint, "/etcdserverpb.KV/Put",
                                           b"\x0a\xff\xff\xff\xff\x0f")),
            ("unknown method", await raw_call(endpoint, "/etcdserverpb.KV/Nope", b"")),
            ("unknown service", await raw_call(endpoint, "/nothing.Here/Call", b""))]
    async with grpc.aio.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        lease = rpc_pb2_grpc.LeaseStub(channel)
        await kv.Put(rpc_pb2.PutRequest(key=p + b"/b", value=b"1"))
        inverted = await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=p + b"/z", range_end=p + b"/a"))
        rows.append(("inverted delete", inverted.deleted))
        listed = await kv.Range(rpc_pb2.RangeRequest(key=p + b"/z", range_end=p + b"/a"))
        rows.append(("inverted range", len(listed.kvs), listed.count))
        unknown = 0x7E57
        ttl = await lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=unknown))
        rows.append(("ttl of unknown lease", ttl.TTL))
        try:
            await lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=unknown))
            rows.append(("revoke unknown", "ok"))
        except grpc.aio.AioRpcError as error:
            rows.append(("revoke unknown", error.code().name, error.details()))

        async def keepalives():
            yield rpc_pb2.LeaseKeepAliveRequest(ID=unknown)
        async for response in lease.LeaseKeepAlive(keepalives()):
            rows.append(("keep-alive unknown", response.ID, response.TTL))
            break
        try:
            await kv.Range(rpc_pb2.RangeRequest(key=p + b"/b", revision=1 << 62))
        except grpc.aio.AioRpcError as error:
            rows.append(("future revision", error.code().name, error.details()))
        still = await kv.Range(rpc_pb2.RangeRequest(key=p + b"/b"))
        rows.append(("still served", still.kvs[0].value))
    return rows


def test_bad_requests_answer_as_etcd(etcd_pair, prefix):
    results = {kind: asyncio.run(probes(server.endpoint, prefix.encode()))
               for kind, server in etcd_pair.items()}
    assert results["zkpy"] == results["etcd"]


def test_a_watch_stream_never_read_is_closed_and_others_are_served(etcd_pair, prefix):
    server = etcd_pair["zkpy"]
    key = prefix.encode() + b"/flood"
    value = b"v" * 2048

    async def scenario():
        async with grpc.aio.insecure_channel(server.endpoint) as slow, \
                grpc.aio.insecure_channel(server.endpoint) as fast:
            async def requests():
                yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key))
                await asyncio.sleep(120)
            call = rpc_pb2_grpc.WatchStub(slow).Watch(requests())
            first = await call.read()  # created; then the stream is never read again
            assert first.created
            kv = rpc_pb2_grpc.KVStub(fast)
            deadline = time.monotonic() + 90
            while "etcd watch stream not read" not in server.log_path.read_text(errors="replace"):
                assert time.monotonic() < deadline, "the unread stream was never closed"
                await asyncio.gather(*(kv.Put(rpc_pb2.PutRequest(key=key, value=value))
                                       for _ in range(64)))
            got = await kv.Range(rpc_pb2.RangeRequest(key=key))
            assert got.kvs[0].value == value
            call.cancel()
    asyncio.run(scenario())
    line = next(l for l in server.log_path.read_text(errors="replace").splitlines()
                if "etcd watch stream not read" in l)
    assert "client=ipv4:127.0.0.1:" in line
