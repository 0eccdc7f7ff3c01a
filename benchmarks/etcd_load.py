"""The etcd API load generator: one process, asyncio and grpcio's asyncio channels, the stubs
generated from zkpy's copy of etcd's protos (the same wire messages etcd's clients send).

    python -m benchmarks.etcd_load --endpoints A,B,C --workload put --concurrency 32 \
        --duration 4 --warmup 1

Workloads: ``put`` (each worker puts its own 100 keys in turn), ``range`` (linearizable
single-key gets of 1,000 preloaded keys), ``watch`` (``--watchers`` streams on one prefix,
spread over the endpoints, while ``--concurrency`` writers put to it (one writer per 8 of ``--concurrency``); the latency is from a
put's send to each watcher's receipt, timed by the value). Prints one JSON object: ops/s (for
``watch``: events delivered per second), latency percentiles in ms, and the generator's own
CPU use (``client_cpu_util``: 1.0 is one core busy), which says how close it came to being
the bottleneck: it is Python, on the same machine as the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import struct
import time

import grpc

from benchmarks.report import latency_summary_ms
from zkpy.frontends.etcd.proto import rpc_pb2, rpc_pb2_grpc

VALUE_BYTES = 100
RANGE_KEYS = 1000


def _stubs(endpoints: list[str]):
    channels = [grpc.aio.insecure_channel(e) for e in endpoints]
    return channels, [rpc_pb2_grpc.KVStub(c) for c in channels], \
        [rpc_pb2_grpc.WatchStub(c) for c in channels]


async def _timed_loop(call, deadline_warm: float, deadline_end: float, latencies: list) -> int:
    done = 0
    while True:
        started = time.perf_counter()
        if started >= deadline_end:
            return done
        await call()
        finished = time.perf_counter()
        if started >= deadline_warm:
            latencies.append(finished - started)
            done += 1


async def run_put(kv_stubs, concurrency: int, warmup_s: float, duration_s: float) -> dict:
    value = os.urandom(VALUE_BYTES)
    now = time.perf_counter()
    warm, end = now + warmup_s, now + warmup_s + duration_s
    latencies: list[float] = []

    async def worker(index: int) -> int:
        stub = kv_stubs[index % len(kv_stubs)]
        counter = 0

        async def put():
            nonlocal counter
            counter += 1
            await stub.Put(rpc_pb2.PutRequest(key=b"/bench/%d/%d" % (index, counter % 100),
                                              value=value))
        return await _timed_loop(put, warm, end, latencies)
    counts = await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"ops": sum(counts), "latencies": latencies}


async def run_range(kv_stubs, concurrency: int, warmup_s: float, duration_s: float) -> dict:
    value = os.urandom(VALUE_BYTES)
    await asyncio.gather(*(kv_stubs[0].Put(rpc_pb2.PutRequest(key=b"/r/%d" % i, value=value))
                           for i in range(RANGE_KEYS)))
    now = time.perf_counter()
    warm, end = now + warmup_s, now + warmup_s + duration_s
    latencies: list[float] = []

    async def worker(index: int) -> int:
        stub = kv_stubs[index % len(kv_stubs)]
        rng = random.Random(index)

        async def get():
            await stub.Range(rpc_pb2.RangeRequest(key=b"/r/%d" % rng.randrange(RANGE_KEYS)))
        return await _timed_loop(get, warm, end, latencies)
    counts = await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"ops": sum(counts), "latencies": latencies}


async def run_watch(kv_stubs, watch_stubs, watchers: int, concurrency: int, warmup_s: float,
                    duration_s: float) -> dict:
    stamp = struct.Struct(">d")
    latencies: list[float] = []
    delivered = 0
    start = time.perf_counter()
    warm, end = start + warmup_s, start + warmup_s + duration_s
    ready = 0
    all_ready = asyncio.Event()

    async def watcher(index: int) -> None:
        nonlocal delivered, ready
        queue: asyncio.Queue = asyncio.Queue()
        await queue.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"/fan/", range_end=b"/fan0")))

        async def requests():
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item
        call = watch_stubs[index % len(watch_stubs)].Watch(requests())
        try:
            async for response in call:
                if response.created:
                    ready += 1
                    if ready == watchers:
                        all_ready.set()
                    continue
                now = time.perf_counter()
                for event in response.events:
                    sent = stamp.unpack_from(event.kv.value)[0]
                    if warm <= sent < end:  # sent in the window, received by end + 1 s
                        latencies.append(now - sent)
                        delivered += 1
                if now >= end + 1.0:
                    break
        except grpc.aio.AioRpcError:
            pass
        finally:
            await queue.put(None)
            call.cancel()

    async def writer(index: int) -> None:
        await all_ready.wait()
        stub = kv_stubs[index % len(kv_stubs)]
        padding = os.urandom(VALUE_BYTES - stamp.size)
        counter = 0
        while time.perf_counter() < end:
            counter += 1
            await stub.Put(rpc_pb2.PutRequest(key=b"/fan/%d/%d" % (index, counter % 50),
                                              value=stamp.pack(time.perf_counter()) + padding))

    tasks = [asyncio.ensure_future(watcher(i)) for i in range(watchers)]
    await asyncio.wait_for(all_ready.wait(), 60)
    # The clock restarts once every watcher is registered.
    start = time.perf_counter()
    warm, end = start + warmup_s, start + warmup_s + duration_s
    # A few writers: the fan-out, not the write rate, is what is measured.
    await asyncio.gather(*(writer(i) for i in range(max(1, concurrency // 8))))
    await asyncio.sleep(1.5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"ops": delivered, "latencies": latencies}


async def main_async(args) -> dict:
    endpoints = args.endpoints.split(",")
    channels, kv_stubs, watch_stubs = _stubs(endpoints)
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    try:
        if args.workload == "put":
            result = await run_put(kv_stubs, args.concurrency, args.warmup, args.duration)
        elif args.workload == "range":
            result = await run_range(kv_stubs, args.concurrency, args.warmup, args.duration)
        else:
            result = await run_watch(kv_stubs, watch_stubs, args.watchers, args.concurrency,
                                     args.warmup, args.duration)
    finally:
        for channel in channels:
            await channel.close()
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    return {"ops_per_s": result["ops"] / args.duration,
            "latency_ms": latency_summary_ms(result["latencies"]),
            "client_cpu_util": cpu / wall if wall else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--workload", choices=("put", "range", "watch"), required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--watchers", type=int, default=64)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
