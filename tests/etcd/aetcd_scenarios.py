"""aetcd scenarios, run in a child process by test_aetcd.py: aetcd's generated protos and
zkpy's register the same message names (mvccpb.KeyValue, ...) in protobuf's default pool, so
the two cannot be imported by one process.

    python -m tests.etcd.aetcd_scenarios NAME HOST:PORT PREFIX [ARG...]

prints the scenario's observations, one repr per line.
"""

from __future__ import annotations

import asyncio
import sys

import aetcd
import aetcd.exceptions

from tests.support.etcdservers import Renamer


class Observer:
    """Records results in a form both servers must agree on."""

    def __init__(self) -> None:
        self.rows: list = []
        self.revisions = Renamer("rev")
        self.leases = Renamer("lease")

    def rev(self, value: int) -> str:
        return self.revisions(str(value)) if value else "0"

    def kv(self, kv) -> tuple | None:
        if kv is None:
            return None
        return (kv.key, kv.value, self.rev(kv.create_revision), self.rev(kv.mod_revision),
                kv.version, self.leases(str(kv.lease)) if kv.lease else 0)

    def add(self, *row) -> None:
        self.rows.append(row)



async def kv_calls(client, o, p):
    put = await client.put(p + b"/a", b"1")
    o.add("put header", o.rev(put.header.revision))
    prev = await client.put(p + b"/a", b"2", prev_kv=True)
    o.add("prev", o.kv(prev.prev_kv))
    for name in (b"/b", b"/c", b"/d"):
        await client.put(p + name, name)
    o.add("get", o.kv(await client.get(p + b"/a")))
    o.add("missing", await client.get(p + b"/zz"))
    ranged = await client.get_prefix(p + b"/", sort_order="descend", sort_target="key")
    o.add("prefix desc", [o.kv(kv) for kv in ranged])
    ranged = await client.get_range(p + b"/b", p + b"/d")
    o.add("range", [o.kv(kv) for kv in ranged])
    deleted = await client.delete(p + b"/b", prev_kv=True)
    o.add("delete", deleted.deleted, o.kv(deleted.prev_kv))
    gone = await client.delete_prefix(p + b"/")
    o.add("delete prefix", gone.deleted)


async def transactions(client, o, p):
    t = client.transactions
    await client.put(p + b"/k", b"v1")
    ok, responses = await client.transaction(
        compare=[t.value(p + b"/k") == b"v1", t.version(p + b"/k") > 0],
        success=[t.put(p + b"/k", b"v2"), t.get(p + b"/k")],
        failure=[t.put(p + b"/k", b"failed")])
    o.add("txn", ok, [[o.kv(kv) for _, kv in r] if isinstance(r, list) else r.WhichOneof("response")
                      for r in responses])
    ok, responses = await client.transaction(
        compare=[t.mod(p + b"/k") < 1],
        success=[t.delete(p + b"/k")],
        failure=[t.get(p + b"/k"), t.txn(compare=[t.create(p + b"/new") == 0],
                                         success=[t.put(p + b"/new", b"n")], failure=[])])
    o.add("txn else", ok, len(responses))
    o.add("nested put", o.kv(await client.get(p + b"/new")))
    replaced = await client.replace(p + b"/k", b"v2", b"v3")
    o.add("replace", replaced, o.kv(await client.get(p + b"/k")))
    replaced = await client.replace(p + b"/k", b"wrong", b"v4")
    o.add("replace stale", replaced)


async def leases_and_lock(client, o, p):
    lease = await client.lease(30)
    o.add("lease ttl", lease.ttl)
    await client.put(p + b"/eph", b"x", lease=lease)
    o.add("info", await lease.remaining_ttl() in (29, 30), await lease.granted_ttl(),
          sorted(await lease.keys()))
    refreshed = await lease.refresh()
    o.add("refresh", refreshed.TTL)
    o.add("attached", o.kv(await client.get(p + b"/eph")))
    await lease.revoke()
    o.add("after revoke", await client.get(p + b"/eph"))
    try:
        await client.put(p + b"/eph", b"x", lease=lease)
    except aetcd.exceptions.ClientError as error:
        o.add("put on a revoked lease", type(error).__name__, str(error))
    lock = client.lock(p + b"/lock", ttl=10)
    await lock.acquire()
    o.add("locked", await lock.is_acquired())
    other = client.lock(p + b"/lock", ttl=10)
    o.add("second acquire", await other.acquire(timeout=1))
    await lock.release()
    o.add("after release", await other.acquire(timeout=5))
    await other.release()


async def watch_calls(client, o, p):
    first = await client.put(p + b"/w/a", b"1")
    await client.put(p + b"/w/b", b"2")
    await client.delete(p + b"/w/a")
    watch = await client.watch_prefix(p + b"/w/", start_revision=first.header.revision,
                                      prev_kv=True)
    seen = []

    async def collect():
        async for event in watch:
            seen.append((event.kind, event.kv.key, event.kv.value,
                         o.kv(event.prev_kv) if event.prev_kv else None))
            if len(seen) == 4:
                return
    task = asyncio.ensure_future(collect())
    await asyncio.sleep(0.5)
    await client.put(p + b"/w/c", b"3")
    await asyncio.wait_for(task, 10)
    await watch.cancel()
    o.add("events", seen)
    compacted_at = (await client.put(p + b"/w/d", b"4")).header.revision
    await client.put(p + b"/w/d", b"5")
    await client.compact(compacted_at)
    try:
        stale = await client.watch(p + b"/w/d", start_revision=compacted_at - 1)
        async for event in stale:
            o.add("event below compaction", event.kind)
            break
    except aetcd.exceptions.ClientError as error:
        compacted = getattr(error, "compacted_revision", None)
        o.add("watch below compaction", type(error).__name__,
              compacted == compacted_at or compacted)
    status = await client.status()
    o.add("status", status.version[:3], status.leader is not None)
    o.add("members", len([m async for m in client.members()]))


async def request_size_limit(client, o, p, size_bytes):
    try:
        await client.put(p + b"/big", b"x" * size_bytes)
        o.add("stored", len((await client.get(p + b"/big")).value))
    except aetcd.exceptions.ClientError as error:
        o.add("refused", type(error).__name__)


async def put_over_jute_maxbuffer(client, o, p):
    try:
        await client.put(p + b"/big", b"x" * (1100 * 1024))
        o.add("stored")
    except aetcd.exceptions.ClientError as error:
        o.add("refused", type(error).__name__, "request is too large" in str(error))


SCENARIOS = {name: globals()[name] for name in (
    "kv_calls", "transactions", "leases_and_lock", "watch_calls", "request_size_limit",
    "put_over_jute_maxbuffer")}


async def run_on(endpoint: str, name: str, prefix: bytes, args: list) -> list:
    host, port = endpoint.split(":")
    observer = Observer()
    async with aetcd.Client(host=host, port=int(port), timeout=20) as client:
        await SCENARIOS[name](client, observer, prefix, *args)
    return observer.rows


def main(argv: list[str]) -> None:
    name, endpoint, prefix, *args = argv
    rows = asyncio.run(run_on(endpoint, name, prefix.encode(), [int(a) for a in args]))
    for row in rows:
        print(repr(row))


if __name__ == "__main__":
    main(sys.argv[1:])
