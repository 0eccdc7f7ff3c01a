"""A ZooKeeper load generator in the spirit of ClickHouse's keeper-bench.

It speaks the raw client protocol (``benchmarks.client``: jute records over asyncio + uvloop,
no client library), so the numbers are the server's and the generator's, not a client
library's. N sessions each keep
D requests outstanding (pipelining depth D): every reply that comes back is replaced at once by
a new request, so the server always has up to N x D requests to work on.

Workloads (``--workload``):

* ``get``: getData of existing nodes (``--nodes`` of them, ``--value-bytes`` each);
* ``set``: setData (version -1) of the same nodes;
* ``create``: create EPHEMERAL_SEQUENTIAL nodes under one parent (removed when the sessions
  close);
* ``mix``: ``--get-ratio`` gets (default 0.9) and the rest sets, interleaved in a fixed
  shuffled order.

Phases: setup (one session creates the nodes, under a fresh ``/zkbench/<tag>``), warm-up
(``--warmup-s``, load but nothing recorded), measurement (``--duration-s``), drain (no new
requests; the outstanding ones are awaited) and close (closeSession, so ephemerals go away).

A run is *valid* only if it had no error reply, no reply out of xid order (ZooKeeper answers
each session's requests in the order they were sent), no wrong reply body, no lost connection
and at least one completed operation. Reply bodies are checked on a sample (each session's
first reply, then one in 64): getData must return the value written, setData a Stat with that
length, create a path ending in a 10-digit sequence number. Reported: ops/s over the measurement window, latency percentiles
(p50/p99/p999, ms, from send to reply), the generator's own CPU use (near 100% of one core
means the generator, not the server, was the bottleneck) and, with ``--server-pid``, the
server's CPU use over the window.

Sessions are kept alive by pings when they have sent nothing for a third of the session timeout
(under load every request already renews the session).

Several servers (an ensemble): ``--hosts a,b,c`` spreads the sessions over them round-robin
(session i on host i mod n); the setup session uses the first host. ZooKeeper's ordering makes
the setup visible to every session (each session's creation is a transaction committed after
the setup's). ``--server-pid`` then takes the members' pids, and their CPU use is summed.

    python -m benchmarks.loadgen --hosts 127.0.0.1:2181 --sessions 32 --depth 16 \\
        --workload mix --duration-s 5 --warmup-s 1 [--json]

Exit status: 0 for a valid run, 2 for an invalid one, 1 if the run could not happen.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import random
import sys
import time
import uuid
from typing import Any

from jute import records as r
from jute.constants import CreateMode, Err, OpCode

from benchmarks.client import (
    REPLY_HEADER_BYTES, Connection, ConnectionFailed, RequestFailed, connect_request,
    create_request, error_name, event_loop_name, open_session, parse_hosts, pattern_value,
    raise_fd_limit, run_event_loop,
)
from benchmarks.procfs import cpu_seconds
from benchmarks.report import latency_summary_ms

WORKLOADS = ("get", "set", "create", "mix")

_OP_NAMES = {OpCode.getData: "get", OpCode.setData: "set", OpCode.create: "create"}
perf_counter = time.perf_counter


class BenchError(Exception):
    """The run could not be carried out (connection refused, session rejected, setup failed)."""


class _Stats:
    """What the sessions of one run measure together (the per-connection counts, such as
    order violations, stay on each session)."""

    def __init__(self) -> None:
        self.recording = False
        self.issuing = False
        self.latencies: dict[int, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[int] = collections.Counter()
        self.window_errors = 0
        self.verified_replies = 0
        self.bad_replies = 0
        self.first_bad_reply: str | None = None


class LoadSession(Connection):
    """One ZooKeeper session keeping ``depth`` requests of its cyclic ``ops`` outstanding."""

    def __init__(self, stats: _Stats, name: str, depth: int, timeout_ms: int) -> None:
        super().__init__(name, connect_request(timeout_ms))
        self.stats = stats
        self.depth = depth
        self.ops: list[tuple[int, bytes]] = []
        self.value = b""  # what getData must return and setData/create wrote
        self.eph_prefix = ""  # the path create must return, before its sequence number
        self.op_index = 0

    def pipelined_reply(self, xid: int, opcode: int, err: int, payload: bytes, sent_at: float,
                        now: float) -> None:
        stats = self.stats
        if err:
            stats.errors[err] += 1
            if stats.recording:
                stats.window_errors += 1
            return
        if stats.recording:
            stats.latencies[opcode].append(now - sent_at)
        if xid & 63 == 1:  # the first reply, then one in 64
            self.verify(opcode, payload[REPLY_HEADER_BYTES:])

    def replies_received(self, now: float) -> None:
        if self.stats.issuing and self.ops:
            self.refill(now)

    def verify(self, opcode: int, body: bytes) -> None:
        """Check that a reply body is the record, and the value, the request calls for."""
        stats = self.stats
        stats.verified_replies += 1
        value = self.value
        problem = None
        try:
            if opcode == OpCode.getData:
                response = r.GetDataResponse.decode(body)
                if (response.data or b"") != value or response.stat.data_length != len(value):
                    problem = (f"getData returned {len(response.data or b'')} B "
                               f"(stat.dataLength {response.stat.data_length}), "
                               f"expected the {len(value)} B written")
            elif opcode == OpCode.setData:
                response = r.SetDataResponse.decode(body)
                if response.stat.data_length != len(value):
                    problem = (f"setData stat.dataLength {response.stat.data_length}, "
                               f"expected {len(value)}")
            elif opcode == OpCode.create:
                path = r.CreateResponse.decode(body).path
                suffix = path[len(self.eph_prefix):] if path.startswith(self.eph_prefix) else ""
                if len(suffix) != 10 or not suffix.isdigit():
                    problem = f"create returned {path!r}, expected {self.eph_prefix}NNNNNNNNNN"
        except Exception as exc:  # noqa: BLE001 - any undecodable reply is a finding
            problem = f"opcode {opcode}: undecodable reply body ({type(exc).__name__}: {exc})"
        if problem is not None:
            stats.bad_replies += 1
            if stats.first_bad_reply is None:
                stats.first_bad_reply = problem

    def refill(self, now: float) -> None:
        """Top the session up to ``depth`` outstanding requests."""
        want = self.depth - len(self.pending)
        if want <= 0 or self.lost:
            return
        ops = self.ops
        count = len(ops)
        index = self.op_index
        batch = []
        for _ in range(want):
            batch.append(ops[index])
            index += 1
            if index == count:
                index = 0
        self.op_index = index
        self.pipeline(batch, now)

    def ping_if_idle(self, interval_s: float) -> None:
        if not self.lost and not self.closing and perf_counter() - self.last_send >= interval_s:
            self.ping()


async def _connect(stats: _Stats, host: str, port: int, name: str, depth: int,
                   timeout_ms: int, connect_timeout_s: float) -> LoadSession:
    try:
        return await open_session(
            host, port, lambda: LoadSession(stats, name, depth, timeout_ms), connect_timeout_s)
    except ConnectionFailed as exc:
        raise BenchError(f"{name}: {exc}") from exc


async def _setup(session: LoadSession, base: str, nodes: int, value: bytes) -> None:
    """Create ``base`` (and /zkbench), the value nodes and the parent of the ephemerals."""
    def create(path: str, data: bytes):
        return session.call_checked(OpCode.create, create_request(path, data),
                                    f"setup: create {path}")

    try:
        await session.call_checked(OpCode.create, create_request("/zkbench"),
                                   "setup: create /zkbench", allowed=(Err.NODEEXISTS,))
        await create(base, b"")
        await asyncio.gather(*[create(f"{base}/n{i}", value) for i in range(nodes)],
                             create(f"{base}/eph", b""))
    except (RequestFailed, ConnectionFailed) as exc:
        raise BenchError(str(exc)) from exc


def _build_ops(workload: str, base: str, nodes: int, value: bytes, get_ratio: float,
               session_index: int, seed: int) -> list[tuple[int, bytes]]:
    """The cyclic list of (opcode, body) one session sends."""
    gets = [(OpCode.getData, r.GetDataRequest.encode(r.GetDataRequest(f"{base}/n{i}", False)))
            for i in range(nodes)]
    sets = [(OpCode.setData,
             r.SetDataRequest.encode(r.SetDataRequest(f"{base}/n{i}", value, -1)))
            for i in range(nodes)]
    # Sessions start at different nodes so they do not all hit the same one at once.
    shift = (session_index * 7919) % nodes
    gets = gets[shift:] + gets[:shift]
    sets = sets[shift:] + sets[:shift]
    if workload == "get":
        return gets
    if workload == "set":
        return sets
    if workload == "create":
        return [(OpCode.create, create_request(f"{base}/eph/e-", value,
                                               CreateMode.EPHEMERAL_SEQUENTIAL))]
    if workload == "mix":
        length = max(1000, nodes * 10)
        n_get = round(length * get_ratio)
        kinds = [True] * n_get + [False] * (length - n_get)
        random.Random(seed * 1_000_003 + session_index).shuffle(kinds)
        ops = []
        gi = si = 0
        for is_get in kinds:
            if is_get:
                ops.append(gets[gi % nodes])
                gi += 1
            else:
                ops.append(sets[si % nodes])
                si += 1
        return ops
    raise ValueError(f"unknown workload {workload!r}")


SAMPLE_S = 0.05
TIMELINE_STEP_S = 0.5


def _timeline(samples: list[tuple[float, int]], start: float) -> tuple[list[float], float]:
    """ops/s per TIMELINE_STEP_S of the window, and the longest time (s) in which no operation
    completed (to the sampling resolution, SAMPLE_S)."""
    timeline: list[float] = []
    step_end = start + TIMELINE_STEP_S
    step_start, step_ops = start, 0
    longest = 0.0
    stall_since: float | None = None
    for (t0, n0), (t1, n1) in zip(samples, samples[1:]):
        if n1 == n0:
            if stall_since is None:
                stall_since = t0
            longest = max(longest, t1 - stall_since)
        else:
            stall_since = None
        if t1 >= step_end:
            timeline.append(round((n1 - step_ops) / max(t1 - step_start, 1e-9)))
            step_start, step_ops = t1, n1
            step_end = t1 + TIMELINE_STEP_S
    return timeline, round(longest, 3)


async def _connect_sessions(stats: _Stats, addresses: list[tuple[str, int]], sessions: int,
                            depth: int, timeout_ms: int, connect_timeout_s: float,
                            connect_concurrency: int | None) -> list[LoadSession]:
    """Open ``sessions`` sessions, round-robin over ``addresses``; all of them or none."""
    # At most ``connect_concurrency`` handshakes at a time (None: all at once); ZooKeeper
    # listens with a backlog of 50, and a dropped SYN costs a retransmission of 1 s or more.
    limit = asyncio.Semaphore(connect_concurrency or sessions)

    async def connect_one(i: int) -> LoadSession:
        async with limit:
            return await _connect(stats, *addresses[i % len(addresses)], f"session{i}", depth,
                                  timeout_ms, connect_timeout_s)

    clients = await asyncio.gather(*[connect_one(i) for i in range(sessions)],
                                   return_exceptions=True)
    failures = [c for c in clients if isinstance(c, BaseException)]
    if failures:
        await asyncio.gather(*[c.close(2.0) for c in clients if isinstance(c, LoadSession)])
        raise BenchError(f"{len(failures)} of {sessions} sessions failed to connect: "
                         f"{failures[0]}")
    return clients


def _invalid_reasons(result: dict[str, Any], drain_timeout_s: float) -> list[str]:
    """Why a run that happened does not count; empty for a valid run."""
    reasons = []
    if result["error_count"]:
        reasons.append(f"{result['error_count']} error replies: {result['errors']}")
    if result["order_violations"]:
        reasons.append(f"{result['order_violations']} replies out of xid order")
    if result["bad_replies"]:
        reasons.append(f"{result['bad_replies']} of {result['verified_replies']} checked "
                       f"replies were wrong, e.g. {result['first_bad_reply']}")
    if result["unexpected_replies"]:
        reasons.append(f"{result['unexpected_replies']} unexpected replies")
    lost = result["lost_connections"]
    if lost:
        reasons.append(f"{len(lost)} connections lost: {lost[0]}")
    if result["undrained_requests"]:
        reasons.append(f"{result['undrained_requests']} requests unanswered "
                       f"{drain_timeout_s:g} s after the window")
    if result["ops"] == 0:
        reasons.append("no operation completed in the window")
    return reasons


async def run_async(hosts: str, sessions: int = 1, depth: int = 1, workload: str = "get",
                    value_bytes: int = 100, duration_s: float = 5.0, warmup_s: float = 1.0,
                    nodes: int = 100, get_ratio: float = 0.9,
                    session_timeout_ms: int = 30_000, ping_interval_s: float | None = None,
                    connect_timeout_s: float = 10.0, setup_timeout_s: float = 60.0,
                    connect_concurrency: int | None = None,
                    drain_timeout_s: float = 15.0,
                    seed: int = 1, server_pid: int | None = None,
                    server_pids: list[int] | None = None,
                    progress=None) -> dict[str, Any]:
    """Carry out one run and return its result (see ``run``)."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    if sessions < 1 or depth < 1 or nodes < 1 or duration_s <= 0 or warmup_s < 0:
        raise ValueError("sessions, depth, nodes and duration must be positive")
    loop = asyncio.get_running_loop()
    addresses = parse_hosts(hosts)
    # The servers whose CPU use is measured (all members of an ensemble): summed, and per pid.
    pids = list(server_pids or []) + ([server_pid] if server_pid is not None else [])
    stats = _Stats()
    value = pattern_value(value_bytes)
    base = f"/zkbench/{uuid.uuid4().hex[:12]}"
    result: dict[str, Any] = {
        "benchmark": "loadgen", "hosts": hosts, "workload": workload, "sessions": sessions,
        "depth": depth, "value_bytes": value_bytes, "nodes": nodes,
        "get_ratio": get_ratio if workload == "mix" else None,
        "duration_s": duration_s, "warmup_s": warmup_s, "base_path": base,
        "event_loop": event_loop_name(loop),
    }

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    # Setup.
    host, port = addresses[0]
    setup_session = await _connect(stats, host, port, "setup", 1, session_timeout_ms,
                                   connect_timeout_s)
    try:
        await asyncio.wait_for(_setup(setup_session, base, nodes, value), setup_timeout_s)
    except asyncio.TimeoutError as exc:
        raise BenchError(f"setup: no reply within {setup_timeout_s:g} s") from exc
    finally:
        await setup_session.close(5.0)
    say(f"setup done: {nodes} nodes of {value_bytes} B under {base}")

    # Sessions.
    connect_started = perf_counter()
    clients = await _connect_sessions(stats, addresses, sessions, depth, session_timeout_ms,
                                      connect_timeout_s, connect_concurrency)
    result["connect_s"] = perf_counter() - connect_started
    negotiated = min(c.timeout_ms for c in clients)
    result["session_timeout_ms"] = negotiated
    interval = ping_interval_s if ping_interval_s is not None else negotiated / 3000.0
    for index, client in enumerate(clients):
        client.ops = _build_ops(workload, base, nodes, value, get_ratio, index, seed)
        client.value = value
        client.eph_prefix = f"{base}/eph/e-"

    async def pinger() -> None:
        while True:
            await asyncio.sleep(min(1.0, interval / 2))
            for client in clients:
                client.ping_if_idle(interval)

    samples: list[tuple[float, int]] = []  # (time, operations completed so far in the window)

    async def sampler() -> None:
        """Count completions every SAMPLE_S, off the hot path, to see stalls in the window."""
        while True:
            await asyncio.sleep(SAMPLE_S)
            if stats.recording:
                samples.append((perf_counter(),
                                sum(len(values) for values in stats.latencies.values())))

    ping_task = loop.create_task(pinger())
    sample_task = loop.create_task(sampler())
    # The hot path makes no reference cycles: keep the collector from pausing the measurement.
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        # Warm-up, then the measured window.
        stats.issuing = True
        now = perf_counter()
        for client in clients:
            client.refill(now)
        if warmup_s:
            say(f"warm-up {warmup_s:g} s")
            await asyncio.sleep(warmup_s)
        say(f"measuring {duration_s:g} s")
        cpu_before = time.process_time()
        server_cpu_before = [cpu_seconds(pid) for pid in pids]
        stats.recording = True
        window_start = perf_counter()
        samples.append((window_start, 0))
        await asyncio.sleep(duration_s)
        stats.recording = False
        window_end = perf_counter()
        cpu_after = time.process_time()
        server_cpu_after = [cpu_seconds(pid) for pid in pids]
        stats.issuing = False

        # Drain what is outstanding.
        deadline = perf_counter() + drain_timeout_s
        while any(c.pending and not c.lost for c in clients) and perf_counter() < deadline:
            await asyncio.sleep(0.005)
        undrained = sum(len(c.pending) for c in clients if not c.lost)
    finally:
        if gc_was_enabled:
            gc.enable()
        ping_task.cancel()
        sample_task.cancel()
        stats.issuing = False
        await asyncio.gather(*[c.close(5.0) for c in clients], return_exceptions=True)

    window = window_end - window_start
    total_ops = sum(len(values) for values in stats.latencies.values())
    samples.append((window_end, total_ops))
    timeline, longest_stall = _timeline(samples, window_start)
    server_cpu = [(after - before) / window
                  if before is not None and after is not None and window > 0 else None
                  for before, after in zip(server_cpu_before, server_cpu_after)]
    all_latencies = [v for values in stats.latencies.values() for v in values]
    ops = len(all_latencies)
    connections = [setup_session, *clients]
    result.update({
        "window_s": window,
        "ops": ops,
        "ops_per_s": ops / window if window > 0 else 0.0,
        "latency_ms": latency_summary_ms(all_latencies),
        "per_op": {
            _OP_NAMES.get(opcode, str(opcode)): {
                "ops": len(values), "ops_per_s": len(values) / window,
                "latency_ms": latency_summary_ms(values)}
            for opcode, values in sorted(stats.latencies.items())},
        "errors": {error_name(code): count for code, count in stats.errors.items()},
        "error_count": sum(stats.errors.values()),
        "window_error_count": stats.window_errors,
        "order_violations": sum(c.order_violations for c in connections),
        "unexpected_replies": sum(c.unexpected_replies for c in connections),
        "verified_replies": stats.verified_replies,
        "bad_replies": stats.bad_replies,
        "first_bad_reply": stats.first_bad_reply,
        "lost_connections": [c.lost_reason for c in connections if c.lost_reason],
        "undrained_requests": undrained,
        "notifications": sum(c.notifications for c in connections),
        "pings_sent": sum(c.pings_sent for c in connections),
        "ping_replies": sum(c.ping_replies for c in connections),
        "timeline_ops_per_s": timeline,
        "longest_stall_s": longest_stall,
        "client_cpu_util": (cpu_after - cpu_before) / window if window > 0 else None,
        "server_cpu_util": (sum(server_cpu) if server_cpu and None not in server_cpu
                            else None),
        "server_cpu_util_by_pid": dict(zip(map(str, pids), server_cpu)) if len(pids) > 1
        else None,
    })
    reasons = _invalid_reasons(result, drain_timeout_s)
    result["valid"] = not reasons
    result["invalid_reasons"] = reasons
    return result


def run(hosts: str, timeout_s: float | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run one benchmark in a fresh event loop (uvloop when available).

    ``kwargs`` are ``run_async``'s. Raises ``BenchError`` when the run cannot happen at all
    (including when it takes longer than ``timeout_s``, by default warm-up + duration + 120 s);
    a run that happened but saw errors is returned with ``valid: False`` and
    ``invalid_reasons``.
    """
    timeout = timeout_s if timeout_s is not None else (
        kwargs.get("warmup_s", 1.0) + kwargs.get("duration_s", 5.0) + 120.0)
    raise_fd_limit()

    async def guarded() -> dict[str, Any]:
        try:
            return await asyncio.wait_for(run_async(hosts, **kwargs), timeout)
        except asyncio.TimeoutError as exc:
            raise BenchError(f"the run did not finish within {timeout:g} s") from exc

    return run_event_loop(guarded())


def format_text(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{result['workload']} {result['sessions']}x{result['depth']} "
        f"value={result['value_bytes']}B on {result['hosts']} "
        f"({result['window_s']:.2f} s window, {result['event_loop']})",
        f"  {result['ops_per_s']:,.0f} ops/s ({result['ops']:,} ops)  latency ms: "
        f"p50 {ms(lat['p50'])}  p99 {ms(lat['p99'])}  p999 {ms(lat['p999'])}  "
        f"max {ms(lat['max'])}",
    ]
    if len(result["per_op"]) > 1:
        for name, op in result["per_op"].items():
            lines.append(f"    {name}: {op['ops_per_s']:,.0f} ops/s  p50 "
                         f"{ms(op['latency_ms']['p50'])}  p99 {ms(op['latency_ms']['p99'])}")
    if result.get("longest_stall_s", 0) >= 0.25:
        lines.append(f"  longest stall (no reply at all): {result['longest_stall_s']:.2f} s")
    cpu = result["client_cpu_util"]
    server_cpu = result["server_cpu_util"]
    lines.append(f"  generator CPU {cpu * 100:.0f}% of a core"
                 + (f", server CPU {server_cpu * 100:.0f}%" if server_cpu is not None else ""))
    lines.append("  VALID" if result["valid"] else
                 "  INVALID: " + "; ".join(result["invalid_reasons"]))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", required=True, help="host:port[,host:port...]; sessions are "
                        "spread over them round-robin")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1, help="requests outstanding per session")
    parser.add_argument("--workload", choices=WORKLOADS, default="get")
    parser.add_argument("--get-ratio", type=float, default=0.9, help="share of gets in mix")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=100, help="nodes read/written")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--session-timeout-ms", type=int, default=30_000)
    parser.add_argument("--ping-interval-s", type=float, default=None,
                        help="ping a session idle this long (default: timeout/3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-pid", default=None,
                        help="report this process's CPU use over the window (pid[,pid...]: "
                        "the members of an ensemble, summed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = None if args.quiet else (lambda m: print(f"[loadgen] {m}", file=sys.stderr,
                                                        flush=True))
    try:
        result = run(args.hosts, sessions=args.sessions, depth=args.depth,
                     workload=args.workload, value_bytes=args.value_bytes,
                     duration_s=args.duration_s, warmup_s=args.warmup_s, nodes=args.nodes,
                     get_ratio=args.get_ratio, session_timeout_ms=args.session_timeout_ms,
                     ping_interval_s=args.ping_interval_s, seed=args.seed,
                     server_pids=[int(p) for p in args.server_pid.split(",") if p.strip()]
                     if args.server_pid else None, progress=progress)
    except (BenchError, ValueError) as exc:
        if args.json:
            print(json.dumps({"benchmark": "loadgen", "valid": False, "failed": str(exc)}))
        else:
            print(f"loadgen failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0 if result["valid"] else 2


if __name__ == "__main__":
    sys.exit(main())
