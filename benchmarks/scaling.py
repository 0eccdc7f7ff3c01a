"""Scaling benchmarks, zkpy against the reference ZooKeeper: many sessions, idle sessions, a
million znodes (memory, snapshot, restart), mass watch notification, and curves over the znode,
session and watch counts. Part of ``make bench`` (``BENCH_SCALING=0`` skips it); on its own:

    python -m benchmarks.scaling          # writes bench-results/scaling.{json,md}, scaling_*.png

Every experiment starts a fresh standalone server (own data directory, the settings of
``tests.support.servers`` plus what is named below, the same for both kinds) and only that
server runs; the two kinds alternate (the reference first in even-numbered experiments, zkpy
first in odd ones). Server CPU is utime+stime of the server's process group
(``/proc/<pid>/stat``) over a window, as a share of one core; RSS is ``VmRSS`` of
``/proc/<pid>/status`` (the JVM's whole process for the reference: heap, metaspace, threads).
The reference runs with ``-Xmx`` from ``BENCH_SCALING_ZK_HEAP`` (default 2g) instead of the
test harness's 512m, which a million znodes would not fit in.

1. **1000 sessions x depth 1** (``benchmarks.loadgen``), get and set of 100 B values (100
   nodes), ``BENCH_SCALING_WARMUP_S`` (2 s) + ``BENCH_SCALING_DURATION_S`` (5 s), a fresh
   server per run, ``BENCH_SCALING_REPEATS`` runs per server: median ops/s, p50, p99. The
   sessions connect at most ``BENCH_SCALING_CONNECT_CONCURRENCY`` (200) at a time.
2. **Idle sessions** (10, 100, 1k, 10k): N sessions are opened (session timeout 30 s requested,
   at most ``BENCH_SCALING_CONNECT_CONCURRENCY`` handshakes at a time), each then pings at the
   Java client's interval (a third of the negotiated timeout, 10 s) with a random phase, so
   N/10 pings a second arrive evenly spread. After 2 s of settling, an idle window
   (``BENCH_SCALING_IDLE_S``, 20 s, for the largest count; ``BENCH_SCALING_IDLE_SHORT_S``, 8 s,
   for the others): server CPU over the window, RSS sampled every second (median; the maximum
   is kept too), the RSS growth per session over the server's RSS before the sessions, ping
   round-trip p99, and how many sessions were still connected at the end. A handshake that
   fails is retried (up to 3 attempts, as a client would reconnect); the retries are counted
   and shown.
3. **A million znodes** (``BENCH_SCALING_MAX_ZNODES``), loaded by a pipelined raw client
   (``BENCH_SCALING_LOADER``, 16 sessions x 16 multis in flight, each multi
   ``BENCH_SCALING_MULTI_OPS`` = 100 creates of 100 B values; 1000 children per parent,
   ``/scale/bK/nJ``). The server runs with snapCount 10,000,000 so that no snapshot falls into
   the loading or the throughput runs. Measured at the largest count:

   * *restart, log replay*: stop, then a start with snapCount ``BENCH_SCALING_SNAPCOUNT``
     (4000): seconds from launching the process until ``srvr`` shows ``Mode:`` and a node
     count >= the znodes loaded. Recovery replays the whole transaction log (the only
     snapshot is the empty one taken at the first start); the reference also writes a full
     snapshot before it serves, as ZooKeeper always does at startup.
   * *snapshot*: with the counters reset by that restart, snapCount + 200 setData on one node
     are written (4 sessions x 32 in flight), which makes both servers take exactly one
     snapshot (zkpy after snapCount txns; ZooKeeper after snapCount/2 + a random share of
     snapCount/2). Its duration is zkpy's log line ``snapshot taken ... seconds=`` and the
     reference's ``zk_sum_snapshottime`` (mntr) increase; its end is the log line's time
     (zkpy) or the new snapshot file's mtime (reference). Throughout, 8 probe sessions each
     send a getData of a random loaded znode, wait for the reply and pause 2 ms (first, for
     3 s not recorded, without the pause: the restarted servers warm up, the JVM's JIT above
     all); the
     latencies of the gets in flight during the snapshot are reported (p50/p99/max) beside
     those of the 2 s before the trigger writes.
   * *restart from the snapshot*: stop, start, the same readiness test; recovery loads that
     snapshot and replays the few txns after it.
   * stop times, RSS after loading and after each restart, the data directory's size; for
     the reference, to read its RSS, the heap in use after a full GC (``jcmd <pid> GC.run``,
     then ``GC.heap_info``), taken after the throughput runs at the largest count.

4. **Watches firing on one change**: ``BENCH_SCALING_WATCH_SESSIONS`` (100) sessions each set
   a data watch (getData with watch=true) on each of C children of ``/wW``, W = 100 x C
   watches; one more session then sends ONE multi that sets all C children (one transaction,
   C data changes). Measured from just before that multi is written to the socket: the time
   to the last of the W NodeDataChanged notifications (across all sessions), to the first, to
   the multi's reply; W / (time to the last) as notifications/s; server CPU from the send to
   the last notification. The generator reads the notifications in one Python process; its
   CPU share is reported. The RSS growth per watch (after the watches are set, over before)
   is reported too.
5. **Curves** (tables and ``scaling_*.png``): with the znode count (1k, 10k, 100k, 1M, all on
   the server of item 3, loaded step by step): RSS after loading, and get and set throughput
   at 32 sessions x depth 16 (``BENCH_SCALING_SHORT_WARMUP_S`` 1 s + ``BENCH_SCALING_SHORT_S``
   2 s; loadgen's own 100-node working set, the loaded znodes sit beside it); with the
   session count (item 2); with the watch count (1k, 10k, 100k; item 4).

Environment: ``BENCH_SCALING_KINDS`` (default ``BENCH_KINDS`` or both), ``BENCH_SCALING_PARTS``
(``sessions,idle,watches,znodes``), ``BENCH_SCALING_REPEATS`` (runs of item 1, default 3),
``BENCH_SCALING_ZNODE_COUNTS`` (default 1000,10000,100000,1000000, capped by
``BENCH_SCALING_MAX_ZNODES``), ``BENCH_SCALING_SESSION_COUNTS`` (10,100,1000,10000; capped by
``BENCH_SCALING_MAX_SESSIONS``), ``BENCH_SCALING_WATCH_COUNTS`` (1000,10000,100000; capped by
``BENCH_SCALING_MAX_WATCHES``), ``BENCH_SCALING_BIG_SESSIONS`` (1000, item 1),
``BENCH_SCALING_RESTART_TIMEOUT_S`` (300), ``BENCH_OUT``, ``BENCH_TMPDIR``. The defaults take
about 10-12 minutes on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from jute import records as r
from jute.constants import EventType, OpCode
from zkpy.runtime import fourletter
from tests.support.servers import KINDS, ServerProcess

from benchmarks import loadgen
from benchmarks.client import (
    REPLY_HEADER_BYTES, Connection, ConnectionFailed, RequestFailed, connect_request,
    create_body, create_request, create_tail, error_name, multi_body, multi_error,
    open_session, pattern_value, raise_fd_limit, run_event_loop,
)
from benchmarks.procfs import cpu_seconds, rss_bytes
from benchmarks.report import (
    PLOT_COLORS, PLOT_LABELS, SHORT_NAMES, fmt, latency_summary_ms, median, pyplot, ratio,
    render_table, short_error,
)
from benchmarks.servers import mntr, server_version, srvr
from benchmarks.settings import env_float, env_ints, env_list, parse_shape

PARTS = ("sessions", "idle", "watches", "znodes")
perf_counter = time.perf_counter

_INT = struct.Struct(">i")
CHILDREN_PER_PARENT = 1000
SESSION_TIMEOUT_MS = 30_000
LOAD_SNAPCOUNT = 10_000_000
SHORT_COUNT_GRACE_S = 10.0
CONNECT_ATTEMPTS = 3  # idle sessions: a handshake that fails is retried, as a client would
WARM_S = 3.0  # gets without pause after the restart, before the snapshot test (JIT warm-up)


class ScalingError(Exception):
    """An experiment could not be carried out."""


# What makes one experiment fail and the others go on.
EXPERIMENT_FAILURES = (ScalingError, ConnectionFailed, RequestFailed, loadgen.BenchError, OSError)


# --- configuration ---------------------------------------------------------------------------

def config_from_env(kinds: list[str] | None = None) -> dict[str, Any]:
    cfg = {
        "kinds": env_list("BENCH_SCALING_KINDS", tuple(kinds or env_list("BENCH_KINDS", KINDS))),
        "parts": env_list("BENCH_SCALING_PARTS", PARTS),
        "repeats": int(env_float("BENCH_SCALING_REPEATS", 3)),
        "big_sessions": int(env_float("BENCH_SCALING_BIG_SESSIONS", 1000)),
        "duration_s": env_float("BENCH_SCALING_DURATION_S", 5.0),
        "warmup_s": env_float("BENCH_SCALING_WARMUP_S", 2.0),
        "short_s": env_float("BENCH_SCALING_SHORT_S", 2.0),
        "short_warmup_s": env_float("BENCH_SCALING_SHORT_WARMUP_S", 1.0),
        "value_bytes": int(env_float("BENCH_VALUE_BYTES", 100)),
        "session_counts": env_ints("BENCH_SCALING_SESSION_COUNTS", (10, 100, 1000, 10_000),
                                   "BENCH_SCALING_MAX_SESSIONS"),
        "idle_s": env_float("BENCH_SCALING_IDLE_S", 20.0),
        "idle_short_s": env_float("BENCH_SCALING_IDLE_SHORT_S", 8.0),
        "connect_concurrency": int(env_float("BENCH_SCALING_CONNECT_CONCURRENCY", 200)),
        "znode_counts": env_ints("BENCH_SCALING_ZNODE_COUNTS", (1000, 10_000, 100_000, 1_000_000),
                                 "BENCH_SCALING_MAX_ZNODES"),
        "loader": parse_shape(os.environ.get("BENCH_SCALING_LOADER") or "16x16"),
        "multi_ops": int(env_float("BENCH_SCALING_MULTI_OPS", 100)),
        "snap_count": int(env_float("BENCH_SCALING_SNAPCOUNT", 4000)),
        "restart_timeout_s": env_float("BENCH_SCALING_RESTART_TIMEOUT_S", 300.0),
        "watch_counts": env_ints("BENCH_SCALING_WATCH_COUNTS", (1000, 10_000, 100_000),
                                 "BENCH_SCALING_MAX_WATCHES"),
        "watch_sessions": int(env_float("BENCH_SCALING_WATCH_SESSIONS", 100)),
        "zk_heap": os.environ.get("BENCH_SCALING_ZK_HEAP") or "2g",
    }
    for part in cfg["parts"]:
        if part not in PARTS:
            raise SystemExit(f"unknown part {part!r} in BENCH_SCALING_PARTS ({','.join(PARTS)})")
    for kind in cfg["kinds"]:
        if kind not in KINDS:
            raise SystemExit(f"unknown server kind {kind!r}")
    return cfg


# --- servers ---------------------------------------------------------------------------------

class BenchServer(ServerProcess):
    """A test-harness server whose reference JVM gets ``-Xmx<heap>`` instead of the harness's
    512m, which a million znodes would not fit in."""

    def __init__(self, kind: str, workdir: Path, settings: dict[str, str] | None,
                 heap: str) -> None:
        super().__init__(kind, workdir, settings)
        self.heap = heap

    def command(self, config_path: Path) -> list[str]:
        cmd = super().command(config_path)
        if self.kind == "zookeeper" and self.heap:
            cmd = [f"-Xmx{self.heap}" if c.startswith("-Xmx") else c for c in cmd]
        return cmd


class RssSampler:
    """Samples a process group's RSS every ``interval_s`` in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_bytes(self.pid)
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def max(self) -> int | None:
        return max(self.samples) if self.samples else None

    @property
    def median(self) -> int | None:
        return int(statistics.median(self.samples)) if self.samples else None


# --- sessions --------------------------------------------------------------------------------

class ScalingSession(Connection):
    """A session that also times the watch notifications it receives."""

    def __init__(self, name: str, timeout_ms: int) -> None:
        super().__init__(name, connect_request(timeout_ms))
        self.first_notification: float | None = None
        self.last_notification: float | None = None
        self.expected_event: int | None = None  # the WatcherEvent type every notification has
        self.bad_notifications = 0

    def notification(self, payload: bytes, now: float) -> None:
        if self.first_notification is None:
            self.first_notification = now
        self.last_notification = now
        if (self.expected_event is not None
                and _INT.unpack_from(payload, REPLY_HEADER_BYTES)[0] != self.expected_event):
            self.bad_notifications += 1


async def connect(host: str, port: int, name: str, timeout_ms: int = SESSION_TIMEOUT_MS,
                  connect_timeout_s: float = 30.0) -> ScalingSession:
    return await open_session(host, port, lambda: ScalingSession(name, timeout_ms),
                              connect_timeout_s)


def znode_path(index: int) -> str:
    return f"/scale/b{index // CHILDREN_PER_PARENT}/n{index % CHILDREN_PER_PARENT}"


async def _run_batches(clients: list[ScalingSession], depth: int, bodies, opcode: int,
                       what: str) -> int:
    """Send the request bodies from the iterator ``bodies`` over ``clients`` with ``depth``
    outstanding on each; every reply must succeed (multis: every op)."""
    iterator = iter(bodies)
    done = 0

    async def worker(client: ScalingSession) -> None:
        nonlocal done
        for body in iterator:
            err, reply = await client.call(opcode, body)
            if err:
                raise ScalingError(f"{what}: {error_name(err)}")
            if opcode == OpCode.multi:
                failed = multi_error(reply)
                if failed:
                    raise ScalingError(f"{what}: multi failed with {failed}")
            done += 1

    await asyncio.gather(*[worker(c) for c in clients for _ in range(depth)])
    return done


async def load_znodes(host: str, port: int, start: int, end: int, value: bytes,
                      shape: tuple[int, int], multi_ops: int) -> dict[str, Any]:
    """Create znodes [start, end) (and their parents) with pipelined multis."""
    sessions, depth = shape
    clients = await asyncio.gather(*[connect(host, port, f"loader{i}") for i in range(sessions)])
    try:
        if start == 0:
            await clients[0].call_checked(OpCode.create, create_request("/scale"),
                                          "create /scale")
        first_parent = math.ceil(start / CHILDREN_PER_PARENT)
        last_parent = (end - 1) // CHILDREN_PER_PARENT
        parent_tail = create_tail(b"")
        parents = [create_body(f"/scale/b{p}", parent_tail)
                   for p in range(first_parent, last_parent + 1)]
        started = perf_counter()
        await _run_batches(clients, depth, (multi_body(parents[i:i + multi_ops], OpCode.create)
                                            for i in range(0, len(parents), multi_ops)),
                           OpCode.multi, "creating parents")
        tail = create_tail(value)

        def batches():
            for i in range(start, end, multi_ops):
                yield multi_body([create_body(znode_path(j), tail)
                                  for j in range(i, min(end, i + multi_ops))], OpCode.create)

        multis = await _run_batches(clients, depth, batches(), OpCode.multi, "creating znodes")
        elapsed = perf_counter() - started
    finally:
        await asyncio.gather(*[c.close() for c in clients], return_exceptions=True)
    created = end - start
    return {"created": created, "parents": len(parents), "multis": multis, "seconds": elapsed,
            "creates_per_s": created / elapsed if elapsed > 0 else None}


def _mb(value: int | None) -> float | None:
    return None if value is None else value / (1024 * 1024)


class Runner:
    """Shared state of one scaling run: configuration, output, progress, server versions."""

    def __init__(self, cfg: dict[str, Any], tmp_root: Path, say: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.tmp_root = tmp_root
        self.say = say
        self.versions: dict[str, str | None] = {k: None for k in cfg["kinds"]}
        self.experiment = 0

    def order(self) -> list[str]:
        """Kinds alternate: the first kind first in even experiments, last in odd ones."""
        kinds = list(self.cfg["kinds"])
        self.experiment += 1
        return kinds if self.experiment % 2 == 1 else list(reversed(kinds))

    def start(self, kind: str, label: str, settings: dict[str, str] | None = None):
        workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-{label}-", dir=self.tmp_root))
        server = BenchServer(kind, workdir, settings, self.cfg["zk_heap"])
        started = time.monotonic()
        try:
            server.start(timeout_s=60.0)
        except Exception as exc:  # noqa: BLE001
            shutil.rmtree(workdir, ignore_errors=True)
            raise ScalingError(f"{kind} did not start: {exc}"[:3000]) from exc
        server.start_s = time.monotonic() - started
        if self.versions.get(kind) is None:
            self.versions[kind] = server_version(server.port)
        return server

    @staticmethod
    def finish(server, timeout_s: float = 60.0) -> None:
        try:
            server.stop(timeout_s=timeout_s)
        finally:
            shutil.rmtree(server.workdir, ignore_errors=True)


def _failure(kind: str, exc: BaseException, server=None) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": kind, "status": "failed",
                              "error": f"{type(exc).__name__}: {exc}"[:3000]}
    if server is not None:
        alive = server.process is not None and server.process.poll() is None
        record["server_alive"] = alive
        record["server_log_tail"] = server.log_tail(25)
    return record


# --- 1. many sessions, depth 1 ---------------------------------------------------------------

def run_sessions(run: Runner) -> list[dict[str, Any]]:
    cfg = run.cfg
    records = []
    for workload in ("get", "set"):
        for repeat in range(cfg["repeats"]):
            for kind in run.order():
                label = (f"{kind:9} {cfg['big_sessions']}x1 {workload} run "
                         f"{repeat + 1}/{cfg['repeats']}")
                server = None
                try:
                    server = run.start(kind, f"sessions-{workload}")
                    with RssSampler(server.process.pid) as sampler:
                        result = loadgen.run(
                            server.connect_string, sessions=cfg["big_sessions"], depth=1,
                            workload=workload, value_bytes=cfg["value_bytes"],
                            duration_s=cfg["duration_s"], warmup_s=cfg["warmup_s"],
                            server_pid=server.process.pid, connect_timeout_s=60.0,
                            connect_concurrency=cfg["connect_concurrency"],
                            setup_timeout_s=30.0, drain_timeout_s=15.0,
                            session_timeout_ms=SESSION_TIMEOUT_MS,
                            timeout_s=cfg["warmup_s"] + cfg["duration_s"] + 180.0)
                    record = {"kind": kind, "workload": workload, "repeat": repeat,
                              "status": "ok" if result["valid"] else "invalid",
                              "result": result, "server_rss_max": sampler.max}
                    lat = result["latency_ms"]
                    run.say(f"{label}: {result['ops_per_s']:,.0f} ops/s p50 {lat['p50']:.2f} ms "
                            f"p99 {lat['p99']:.2f} ms (connect {result['connect_s']:.1f} s, "
                            f"server CPU {(result['server_cpu_util'] or 0) * 100:.0f}%, gen CPU "
                            f"{result['client_cpu_util'] * 100:.0f}%)"
                            + ("" if result["valid"] else
                               "  INVALID: " + "; ".join(result["invalid_reasons"])[:300]))
                except EXPERIMENT_FAILURES as exc:
                    record = _failure(kind, exc, server)
                    record.update(workload=workload, repeat=repeat)
                    run.say(f"{label}: FAILED: {short_error(record['error'])}")
                finally:
                    if server is not None:
                        run.finish(server)
                records.append(record)
    return records


# --- 2. idle sessions ----------------------------------------------------------------------

async def _idle_async(port: int, pid: int, count: int, idle_s: float, concurrency: int,
                      say: Callable[[str], None]) -> dict[str, Any]:
    rng = random.Random(count)
    clients: list[ScalingSession] = []
    schedule: list[tuple[float, int]] = []
    interval = [SESSION_TIMEOUT_MS / 3000.0]
    semaphore = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    connect_errors: list[str] = []  # failed handshakes that were retried

    async def open_one(i: int) -> None:
        async with semaphore:
            for attempt in range(CONNECT_ATTEMPTS):
                try:
                    client = await connect("127.0.0.1", port, f"idle{i}", SESSION_TIMEOUT_MS,
                                           60.0)
                    break
                except ConnectionFailed as exc:
                    if attempt == CONNECT_ATTEMPTS - 1:
                        failures.append(str(exc))
                        return
                    connect_errors.append(str(exc))
                    await asyncio.sleep(0.1)
        if not clients:
            interval[0] = client.timeout_ms / 3000.0
        clients.append(client)
        heapq.heappush(schedule, (perf_counter() + rng.uniform(0, interval[0]), len(clients) - 1))

    async def pinger() -> None:
        while True:
            await asyncio.sleep(0.05)
            now = perf_counter()
            while schedule and schedule[0][0] <= now:
                due, index = heapq.heappop(schedule)
                clients[index].ping()
                heapq.heappush(schedule, (due + interval[0], index))

    rss_before = rss_bytes(pid)
    ping_task = asyncio.get_running_loop().create_task(pinger())
    try:
        started = perf_counter()
        await asyncio.gather(*[open_one(i) for i in range(count)])
        connect_s = perf_counter() - started
        if failures:
            raise ScalingError(f"{len(failures)} of {count} sessions failed to connect: "
                               f"{failures[0]}")
        say(f"    {count} sessions connected in {connect_s:.1f} s "
            f"({count / connect_s:,.0f}/s)"
            + (f" after retrying {len(connect_errors)} failed handshakes (e.g. "
               f"{connect_errors[0]})" if connect_errors else "")
            + f"; settling 2 s, then {idle_s:g} s idle")
        await asyncio.sleep(2.0)
        rtts: list[float] = []
        for client in clients:
            client.ping_rtts = rtts
        pings_before = sum(c.pings_sent for c in clients)
        cpu0, gen0, t0 = cpu_seconds(pid), time.process_time(), perf_counter()
        samples = []
        while perf_counter() - t0 < idle_s:
            await asyncio.sleep(min(1.0, max(0.0, idle_s - (perf_counter() - t0))))
            value = rss_bytes(pid)
            if value is not None:
                samples.append(value)
        window = perf_counter() - t0
        cpu1, gen1 = cpu_seconds(pid), time.process_time()
        pings = sum(c.pings_sent for c in clients) - pings_before
        alive = sum(1 for c in clients if not c.lost)
        try:
            stats = mntr(port)
        except OSError:
            stats = {}
    finally:
        ping_task.cancel()
        for client in clients:
            client.abort()
    lost = [c.lost_reason for c in clients if c.lost and c.lost_reason]
    rss_idle = int(statistics.median(samples)) if samples else None
    record = {
        "sessions": count, "connected": len(clients), "alive_at_end": alive,
        "connect_s": connect_s, "sessions_per_s": count / connect_s if connect_s else None,
        "window_s": window, "negotiated_timeout_ms": clients[0].timeout_ms if clients else None,
        "ping_interval_s": interval[0], "pings_in_window": pings,
        "ping_rtt_ms": latency_summary_ms(rtts),
        "server_cpu_util": (cpu1 - cpu0) / window if None not in (cpu0, cpu1) else None,
        "generator_cpu_util": (gen1 - gen0) / window,
        "rss_before": rss_before, "rss_idle": rss_idle,
        "rss_idle_max": max(samples) if samples else None,
        "rss_per_session": ((rss_idle - rss_before) / count
                            if rss_idle is not None and rss_before is not None else None),
        "mntr_alive_connections": stats.get("zk_num_alive_connections"),
        "mntr_global_sessions": stats.get("zk_global_sessions"),
        "lost": lost[:5], "lost_count": len(lost),
        "connect_retries": len(connect_errors), "connect_errors": connect_errors[:3],
    }
    reasons = []
    if alive < count:
        reasons.append(f"{count - alive} sessions lost their connection: "
                       f"{lost[0] if lost else '?'}")
    if rtts and len(rtts) < 0.5 * pings:
        reasons.append(f"only {len(rtts)} of {pings} pings answered")
    record["status"] = "invalid" if reasons else "ok"
    record["invalid_reasons"] = reasons
    return record


def run_idle(run: Runner) -> list[dict[str, Any]]:
    cfg = run.cfg
    counts = cfg["session_counts"]
    records = []
    for count in counts:
        idle_s = cfg["idle_s"] if count == max(counts) else cfg["idle_short_s"]
        for kind in run.order():
            label = f"{kind:9} idle {count:>6,} sessions"
            run.say(f"{label}: starting")
            server = None
            try:
                server = run.start(kind, f"idle{count}")
                record = run_event_loop(_idle_async(server.port, server.process.pid, count, idle_s,
                                                cfg["connect_concurrency"], run.say))
                record["kind"] = kind
                if server.process.poll() is not None:
                    record["status"] = "invalid"
                    record["invalid_reasons"].append(
                        f"server exited with {server.process.returncode}")
                    record["server_log_tail"] = server.log_tail(25)
                rtt = record["ping_rtt_ms"]
                run.say(f"{label}: server CPU {record['server_cpu_util'] * 100:.1f}%, RSS "
                        f"{_mb(record['rss_idle']):.0f} MB (before sessions "
                        f"{_mb(record['rss_before']):.0f} MB), ping p99 "
                        f"{rtt['p99'] if rtt['p99'] is not None else float('nan'):.2f} ms, "
                        f"{record['alive_at_end']}/{count} connected, gen CPU "
                        f"{record['generator_cpu_util'] * 100:.0f}%"
                        + ("" if record["status"] == "ok" else
                           "  INVALID: " + "; ".join(record["invalid_reasons"])[:300]))
            except EXPERIMENT_FAILURES as exc:
                record = _failure(kind, exc, server)
                record["sessions"] = count
                run.say(f"{label}: FAILED: {short_error(record['error'])}")
            finally:
                if server is not None:
                    run.finish(server)
            records.append(record)
    return records


# --- 4. watches ----------------------------------------------------------------------------

async def _watches_async(port: int, pid: int, counts: list[int], sessions: int, value: bytes,
                         say: Callable[[str], None]) -> list[dict[str, Any]]:
    host = "127.0.0.1"
    setup = await connect(host, port, "watch-setup")
    watchers = await asyncio.gather(*[connect(host, port, f"watcher{i}")
                                      for i in range(sessions)])
    trigger = await connect(host, port, "trigger")
    results = []
    ping_stop = asyncio.Event()

    async def keepalive() -> None:
        while not ping_stop.is_set():
            try:
                await asyncio.wait_for(ping_stop.wait(), 5.0)
            except asyncio.TimeoutError:
                for client in (setup, trigger, *watchers):
                    client.ping()

    keep = asyncio.get_running_loop().create_task(keepalive())
    try:
        for total in counts:
            children = max(1, total // sessions)
            watches = children * sessions
            parent = f"/w{total}"
            record: dict[str, Any] = {"watches": watches, "sessions": sessions,
                                      "children": children}
            tail = create_tail(value)
            await setup.call_checked(OpCode.create, create_request(parent), f"create {parent}")
            paths = [f"{parent}/c{i}" for i in range(children)]
            await _run_batches([setup], 8, (multi_body([create_body(p, tail)
                                                        for p in paths[i:i + 100]],
                                                       OpCode.create)
                                            for i in range(0, children, 100)),
                               OpCode.multi, f"creating children of {parent}")
            gc.collect()
            rss_before = rss_bytes(pid)
            # Watches: each session getData(watch=true) on every child, 8 in flight per session.
            bodies = [r.GetDataRequest.encode(r.GetDataRequest(p, True)) for p in paths]
            started = perf_counter()
            await asyncio.gather(*[_run_batches([w], 8, iter(bodies), OpCode.getData,
                                                "getData(watch)") for w in watchers])
            record["set_watches_s"] = perf_counter() - started
            await asyncio.sleep(0.5)
            stats = mntr(port)
            record["mntr_watch_count"] = int(stats.get("zk_watch_count", -1))
            record["rss_before_watches"] = rss_before
            record["rss_with_watches"] = rss_after = rss_bytes(pid)
            record["rss_per_watch"] = ((rss_after - rss_before) / watches
                                       if rss_after is not None and rss_before is not None
                                       else None)
            for w in watchers:
                w.notifications = 0
                w.first_notification = w.last_notification = None
                w.expected_event = EventType.NodeDataChanged
                w.bad_notifications = 0
            new_value = bytes(reversed(value)) or b"x"
            body = multi_body([r.SetDataRequest.encode(r.SetDataRequest(p, new_value, -1))
                               for p in paths], OpCode.setData)
            cpu0, gen0 = cpu_seconds(pid), time.process_time()
            t0 = perf_counter()
            reply_future = trigger.call(OpCode.multi, body)
            err, reply = await reply_future
            t_reply = perf_counter()
            if err or multi_error(reply):
                raise ScalingError(f"the setData multi on {parent} failed: "
                                   f"{error_name(err) if err else multi_error(reply)}")
            deadline = perf_counter() + 120.0
            while (sum(w.notifications for w in watchers) < watches
                   and perf_counter() < deadline
                   and not any(w.lost for w in watchers)):
                await asyncio.sleep(0.002)
            cpu1, gen1 = cpu_seconds(pid), time.process_time()
            received = sum(w.notifications for w in watchers)
            lasts = [w.last_notification for w in watchers if w.last_notification is not None]
            firsts = [w.first_notification for w in watchers if w.first_notification is not None]
            last = max(lasts) if lasts else None
            elapsed = (last - t0) if last is not None else None
            record.update({
                "notifications": received,
                "bad_notifications": sum(w.bad_notifications for w in watchers),
                "multi_reply_ms": (t_reply - t0) * 1000,
                "first_notification_ms": (min(firsts) - t0) * 1000 if firsts else None,
                "last_notification_ms": elapsed * 1000 if elapsed is not None else None,
                "median_session_last_ms": (statistics.median(lasts) - t0) * 1000
                if lasts else None,
                "notifications_per_s": received / elapsed if elapsed else None,
                "server_cpu_s": (cpu1 - cpu0) if None not in (cpu0, cpu1) else None,
                "generator_cpu_s": gen1 - gen0,
                "wall_s": perf_counter() - t0,
            })
            reasons = []
            if received != watches:
                reasons.append(f"{received} of {watches} notifications arrived")
            if record["bad_notifications"]:
                reasons.append(f"{record['bad_notifications']} notifications were not "
                               f"NodeDataChanged")
            if record["mntr_watch_count"] < watches:
                reasons.append(f"mntr zk_watch_count {record['mntr_watch_count']} < {watches}")
            lost = [w.lost_reason for w in watchers if w.lost]
            if lost:
                reasons.append(f"{len(lost)} watcher sessions lost: {lost[0]}")
            record["status"] = "invalid" if reasons else "ok"
            record["invalid_reasons"] = reasons
            results.append(record)
            say(f"    {watches:>7,} watches ({sessions} sessions x {children} children): all "
                f"notified in {record['last_notification_ms'] or float('nan'):.1f} ms (first "
                f"{record['first_notification_ms'] or float('nan'):.1f} ms, multi reply "
                f"{record['multi_reply_ms']:.1f} ms), {received:,} received; server CPU "
                f"{(record['server_cpu_s'] or 0) * 1000:.0f} ms, gen CPU "
                f"{record['generator_cpu_s'] * 1000:.0f} ms; setting the watches took "
                f"{record['set_watches_s']:.1f} s"
                + ("" if not reasons else "  INVALID: " + "; ".join(reasons)))
            if lost:
                break
    finally:
        ping_stop.set()
        await keep
        await asyncio.gather(*[c.close(2.0) for c in (setup, trigger, *watchers)],
                             return_exceptions=True)
    return results


def run_watches(run: Runner) -> list[dict[str, Any]]:
    cfg = run.cfg
    records = []
    value = pattern_value(cfg["value_bytes"])
    for kind in run.order():
        run.say(f"{kind:9} watches {', '.join(f'{c:,}' for c in cfg['watch_counts'])}: "
                "starting")
        server = None
        try:
            server = run.start(kind, "watches")
            results = run_event_loop(_watches_async(server.port, server.process.pid,
                                                cfg["watch_counts"], cfg["watch_sessions"],
                                                value, run.say))
            for result in results:
                result["kind"] = kind
            records.extend(results)
        except EXPERIMENT_FAILURES as exc:
            record = _failure(kind, exc, server)
            run.say(f"{kind:9} watches: FAILED: {short_error(record['error'])}")
            records.append(record)
        finally:
            if server is not None:
                run.finish(server)
    return records


# --- 3 and 5. znodes -----------------------------------------------------------------------

_ZKPY_SNAPSHOT = re.compile(r"^(\S+) \[\w+\s*\] snapshot taken\s+(.*)$")


def _zkpy_snapshot_lines(log_path: Path, offset: int) -> list[dict[str, Any]]:
    lines = []
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        match = _ZKPY_SNAPSHOT.match(line.strip())
        if not match:
            continue
        fields = dict(item.split("=", 1) for item in match.group(2).split() if "=" in item)
        try:
            end = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
        except ValueError:
            end = None
        lines.append({"end_epoch": end, "seconds": float(fields.get("seconds", "nan")),
                      "nodes": int(fields["nodes"]) if "nodes" in fields else None,
                      "line": line.strip()})
    return lines


def _zkpy_log_lines(log_path: Path, offset: int, needle: str) -> list[str]:
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if needle in line]


def _log_size(server) -> int:
    try:
        return server.log_path.stat().st_size
    except OSError:
        return 0


def _restart(server, expect_nodes: int, timeout_s: float, settings: dict[str, str] | None = None
             ) -> dict[str, Any]:
    """Stop, optionally change settings, launch; time until srvr has Mode and the nodes."""
    started = time.monotonic()
    server.stop(timeout_s=120.0)
    stop_s = time.monotonic() - started
    if settings:
        server.settings.update(settings)
    offset = _log_size(server)
    launched = time.monotonic()
    server.launch()
    first_answer = None
    deadline = launched + timeout_s
    info: dict[str, Any] = {}
    short_since: float | None = None  # serving, but with fewer nodes than loaded, since
    while True:
        if server.process.poll() is not None:
            raise ScalingError(f"{server.kind} exited with {server.process.returncode} while "
                               f"restarting; log:\n{server.log_tail(20)}")
        if time.monotonic() > deadline:
            raise ScalingError(f"{server.kind} not serving {expect_nodes} nodes {timeout_s:g} s "
                               f"after the restart (last srvr: {info}); log:\n"
                               f"{server.log_tail(20)}")
        try:
            info = srvr(server.port, timeout_s=2.0)
            if first_answer is None:
                first_answer = time.monotonic() - launched
            if info.get("mode") and (info.get("nodes") or 0) >= expect_nodes:
                break
            if info.get("mode"):
                short_since = short_since or time.monotonic()
                if time.monotonic() - short_since > SHORT_COUNT_GRACE_S:
                    raise ScalingError(
                        f"{server.kind} serves after the restart, but with "
                        f"{info.get('nodes')} nodes instead of >= {expect_nodes} (znodes lost) "
                        f"for {SHORT_COUNT_GRACE_S:g} s; log:\n{server.log_tail(8)}")
        except OSError:
            pass
        time.sleep(0.05)
    start_s = time.monotonic() - launched
    record = {"stop_s": stop_s, "start_s": start_s, "nodes": info.get("nodes"),
              "first_socket_answer_s": first_answer, "rss_after": rss_bytes(server.process.pid)}
    if server.kind == "zkpy":
        record["recovery_log"] = _zkpy_log_lines(server.log_path, offset, "restor")[-3:]
    return record


def jvm_heap_after_full_gc(pid: int) -> dict[str, Any]:
    """For reading the JVM's RSS: ``jcmd <pid> GC.run`` (a full GC), then ``GC.heap_info``'s
    used and committed heap. Done once, after the measurements it could disturb."""
    java = shutil.which("java")
    jcmd = Path(os.path.realpath(java)).with_name("jcmd") if java else None
    if jcmd is None or not jcmd.exists():
        return {"error": "jcmd not found"}
    try:
        subprocess.run([str(jcmd), str(pid), "GC.run"], capture_output=True, timeout=60,
                       check=True)
        text = subprocess.run([str(jcmd), str(pid), "GC.heap_info"], capture_output=True,
                              text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"jcmd failed: {exc}"}
    match = re.search(r"total (\d+)K, used (\d+)K", text)
    if not match:
        return {"error": "no 'total ...K, used ...K' in GC.heap_info", "text": text[:500]}
    return {"committed": int(match.group(1)) * 1024, "used_after_full_gc":
            int(match.group(2)) * 1024, "rss_after": rss_bytes(pid), "text": text[:800]}


async def _snapshot_async(server, nodes: int, snap_count: int, value: bytes,
                          say: Callable[[str], None]) -> dict[str, Any]:
    host, port = "127.0.0.1", server.port
    rng = random.Random(7)
    probes = await asyncio.gather(*[connect(host, port, f"probe{i}") for i in range(8)])
    writers = await asyncio.gather(*[connect(host, port, f"trigger{i}") for i in range(4)])
    samples: list[tuple[float, float]] = []  # (wall clock at send, latency s)
    stop = asyncio.Event()
    errors: list[str] = []
    node_count = nodes

    warm = [True]  # no pause between gets while the server warms up after its restart

    async def probe(client: ScalingSession) -> None:
        while not stop.is_set():
            body = r.GetDataRequest.encode(r.GetDataRequest(
                znode_path(rng.randrange(node_count)), False))
            wall, t = time.time(), perf_counter()
            try:
                err, _ = await client.call(OpCode.getData, body)
            except ConnectionFailed as exc:
                errors.append(str(exc))
                return
            if not warm[0]:
                samples.append((wall, perf_counter() - t))
            if err:
                errors.append(error_name(err))
            await asyncio.sleep(0 if warm[0] else 0.002)

    cnt_before = int(mntr(port).get("zk_cnt_snapshottime", "0"))
    sum_before = int(mntr(port).get("zk_sum_snapshottime", "0") or 0)
    log_offset = _log_size(server)
    tasks = [asyncio.get_running_loop().create_task(probe(c)) for c in probes]
    record: dict[str, Any] = {"snap_count": snap_count}
    try:
        await asyncio.sleep(WARM_S)
        warm[0] = False
        await asyncio.sleep(2.0)
        trigger_start = time.time()
        writes = snap_count + 200
        set_body = r.SetDataRequest.encode(r.SetDataRequest("/snaptrigger", b"t", -1))
        await _run_batches(writers, 32, (set_body for _ in range(writes)), OpCode.setData,
                           "trigger writes")
        trigger_end = time.time()
        record.update(trigger_writes=writes, trigger_s=trigger_end - trigger_start)
        say(f"    {writes} trigger writes in {trigger_end - trigger_start:.2f} s; waiting for the "
            "snapshot")
        deadline = perf_counter() + 300.0
        stats = {}
        while perf_counter() < deadline:
            stats = mntr(port)
            if int(stats.get("zk_cnt_snapshottime", "0")) > cnt_before:
                break
            await asyncio.sleep(0.1)
        else:
            raise ScalingError("no snapshot within 300 s of the trigger writes")
        detected = time.time()
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*[c.close(2.0) for c in (*probes, *writers)],
                             return_exceptions=True)
    if server.kind == "zkpy":
        lines = _zkpy_snapshot_lines(server.log_path, log_offset)
        if not lines:
            await asyncio.sleep(0.5)
            lines = _zkpy_snapshot_lines(server.log_path, log_offset)
        if not lines:
            raise ScalingError("mntr counted a snapshot but no 'snapshot taken' line was logged")
        seconds, end = lines[0]["seconds"], lines[0]["end_epoch"]
        record["log_line"] = lines[0]["line"]
        record["snapshots"] = len(lines)
    else:
        seconds = (int(stats.get("zk_sum_snapshottime", "0")) - sum_before) / 1000.0
        files = sorted((server.data_dir / "version-2").glob("snapshot.*"),
                       key=lambda p: p.stat().st_mtime)
        end = files[-1].stat().st_mtime if files else detected
        record["snapshot_file"] = files[-1].name if files else None
        record["snapshot_file_bytes"] = files[-1].stat().st_size if files else None
        record["snapshots"] = int(stats.get("zk_cnt_snapshottime", "0")) - cnt_before
    start = end - seconds
    record.update(snapshot_s=seconds, snapshot_start_epoch=start, snapshot_end_epoch=end,
                  trigger_overlap_s=max(0.0, min(trigger_end, end) - max(trigger_start, start)))
    baseline = [lat for wall, lat in samples if wall + lat < trigger_start]
    during = [lat for wall, lat in samples if wall <= end and wall + lat >= start]
    writes_only = [lat for wall, lat in samples
                   if wall >= trigger_start and wall + lat <= min(trigger_end, start)]
    record.update(get_baseline_ms=latency_summary_ms(baseline),
                  get_during_snapshot_ms=latency_summary_ms(during),
                  get_during_writes_before_snapshot_ms=latency_summary_ms(writes_only),
                  get_max_overall_ms=max((lat for _, lat in samples), default=0) * 1000,
                  probe_errors=errors[:5], probe_error_count=len(errors))
    record["status"] = "invalid" if errors else "ok"
    return record


def run_znodes(run: Runner) -> list[dict[str, Any]]:
    cfg = run.cfg
    counts = cfg["znode_counts"]
    value = pattern_value(cfg["value_bytes"])
    records = []
    for kind in run.order():
        record: dict[str, Any] = {"kind": kind, "steps": [], "status": "ok"}
        records.append(record)
        server = None
        try:
            server = run.start(kind, "znodes", {"snapCount": str(LOAD_SNAPCOUNT)})
            pid = server.process.pid
            record["rss_empty"] = rss_bytes(pid)

            async def create_trigger_node() -> None:
                client = await connect("127.0.0.1", server.port, "setup")
                try:
                    await client.call_checked(OpCode.create, create_request("/snaptrigger"),
                                              "create /snaptrigger")
                finally:
                    await client.close()

            run_event_loop(create_trigger_node())
            loaded = 0
            for count in counts:
                step: dict[str, Any] = {"znodes": count}
                record["steps"].append(step)
                cpu0 = cpu_seconds(pid)
                load = run_event_loop(load_znodes("127.0.0.1", server.port, loaded, count, value,
                                              cfg["loader"], cfg["multi_ops"]))
                cpu1 = cpu_seconds(pid)
                loaded = count
                load["server_cpu_s"] = cpu1 - cpu0 if None not in (cpu0, cpu1) else None
                step["load"] = load
                time.sleep(1.0)
                step["rss"] = rss_bytes(pid)
                info = srvr(server.port)
                step["srvr_nodes"] = info.get("nodes")
                stats = mntr(server.port)
                step["approximate_data_size"] = stats.get("zk_approximate_data_size")
                run.say(f"{kind:9} {count:>9,} znodes: loaded {load['created']:,} in "
                        f"{load['seconds']:.1f} s ({load['creates_per_s']:,.0f} creates/s); "
                        f"RSS {_mb(step['rss']):.0f} MB; srvr node count {info.get('nodes'):,}")
                for workload in ("get", "set"):
                    try:
                        result = loadgen.run(
                            server.connect_string, sessions=32, depth=16, workload=workload,
                            value_bytes=cfg["value_bytes"], duration_s=cfg["short_s"],
                            warmup_s=cfg["short_warmup_s"], server_pid=pid,
                            connect_timeout_s=30.0, setup_timeout_s=30.0, drain_timeout_s=15.0,
                            timeout_s=cfg["short_s"] + cfg["short_warmup_s"] + 120.0)
                        step[workload] = {"status": "ok" if result["valid"] else "invalid",
                                          "result": result}
                        lat = result["latency_ms"]
                        run.say(f"{kind:9} {count:>9,} znodes: {workload} 32x16 "
                                f"{result['ops_per_s']:>8,.0f} ops/s p50 {lat['p50']:.2f} ms "
                                f"p99 {lat['p99']:.2f} ms"
                                + (f" STALL {result['longest_stall_s']:.1f} s"
                                   if (result.get("longest_stall_s") or 0) >= 0.5 else "")
                                + ("" if result["valid"] else "  INVALID: "
                                   + "; ".join(result["invalid_reasons"])[:300]))
                    except loadgen.BenchError as exc:
                        step[workload] = {"status": "failed", "error": str(exc)}
                        run.say(f"{kind:9} {count:>9,} znodes: {workload} FAILED: {exc}")
                step["rss_after_runs"] = rss_bytes(pid)
            record["znodes"] = loaded
            record["data_dir_bytes_loaded"] = fourletter.dir_size_bytes(str(server.data_dir))
            if kind == "zookeeper":
                record["jvm_heap"] = jvm_heap_after_full_gc(pid)
                if record["jvm_heap"].get("used_after_full_gc") is not None:
                    run.say(f"{kind:9} {loaded:,} znodes: JVM heap used after a full GC "
                            f"{_mb(record['jvm_heap']['used_after_full_gc']):.0f} MB "
                            f"(committed {_mb(record['jvm_heap']['committed']):.0f} MB, "
                            f"RSS after it {_mb(record['jvm_heap']['rss_after']):.0f} MB)")

            # Restart replaying the log; the new snapCount makes the next snapshot predictable.
            run.say(f"{kind:9} {loaded:,} znodes: restart (log replay), snapCount "
                    f"{cfg['snap_count']} from now on")
            record["restart_replay"] = _restart(server, loaded, cfg["restart_timeout_s"],
                                                {"snapCount": str(cfg["snap_count"])})
            rs = record["restart_replay"]
            run.say(f"{kind:9} {loaded:,} znodes: stopped in {rs['stop_s']:.1f} s, serving all "
                    f"znodes {rs['start_s']:.1f} s after launch; RSS {_mb(rs['rss_after']):.0f} MB"
                    + (f"; {rs['recovery_log'][-1][:160]}" if rs.get("recovery_log") else ""))

            run.say(f"{kind:9} {loaded:,} znodes: snapshot with gets probing")
            snap = run_event_loop(_snapshot_async(server, loaded, cfg["snap_count"], value,
                                                  run.say))
            record["snapshot"] = snap
            base, during = snap["get_baseline_ms"], snap["get_during_snapshot_ms"]
            run.say(f"{kind:9} {loaded:,} znodes: snapshot {snap['snapshot_s']:.2f} s; gets during "
                    f"it p99 {fmt(during['p99'], '.1f')} ms max {fmt(during['max'], '.1f')} ms "
                    f"({during['count']} gets), before it p99 {fmt(base['p99'], '.2f')} ms max "
                    f"{fmt(base['max'], '.1f')} ms")
            record["data_dir_bytes_snapshot"] = fourletter.dir_size_bytes(str(server.data_dir))

            run.say(f"{kind:9} {loaded:,} znodes: restart (from the snapshot)")
            record["restart_snapshot"] = _restart(server, loaded, cfg["restart_timeout_s"])
            rs = record["restart_snapshot"]
            run.say(f"{kind:9} {loaded:,} znodes: stopped in {rs['stop_s']:.1f} s, serving all "
                    f"znodes {rs['start_s']:.1f} s after launch; RSS {_mb(rs['rss_after']):.0f} MB"
                    + (f"; {rs['recovery_log'][-1][:160]}" if rs.get("recovery_log") else ""))
        except EXPERIMENT_FAILURES as exc:
            failure = _failure(kind, exc, server)
            record.update(status="failed", error=failure["error"],
                          server_log_tail=failure.get("server_log_tail"))
            run.say(f"{kind:9} znodes: FAILED: {short_error(failure['error'], 400)}")
            for line in (failure.get("server_log_tail") or "").splitlines()[-6:]:
                run.say(f"    log: {line[:220]}")
        finally:
            if server is not None:
                try:
                    record["server_log_excerpt"] = server.log_tail(12)
                except Exception:  # noqa: BLE001
                    pass
                run.finish(server, timeout_s=120.0)
    return records


# --- orchestration ---------------------------------------------------------------------------

def run(out: Path, kinds: list[str] | None = None, say: Callable[[str], None] | None = None,
        state: dict[str, Any] | None = None, tmp_dir: str | None = None) -> dict[str, Any]:
    """Run the scaling experiments; results go into ``state`` as they come (so an interrupted
    run keeps them) and are returned. Plots are written to ``out``."""
    cfg = config_from_env(kinds)
    started = time.monotonic()
    if say is None:
        def say(message: str) -> None:
            print(f"[scaling {time.monotonic() - started:6.1f}s] {message}", flush=True)
    limits = raise_fd_limit()
    state = state if state is not None else {}
    state.update(config={k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                 fd_limit=list(limits), loadavg_before=os.getloadavg(),
                 date=time.strftime("%Y-%m-%d %H:%M:%S %z"))
    tmp_root = Path(tempfile.mkdtemp(prefix="zkpy-scaling-",
                                     dir=tmp_dir or os.environ.get("BENCH_TMPDIR")))
    runner = Runner(cfg, tmp_root, say)
    state["versions"] = runner.versions
    say(f"scaling: kinds {','.join(cfg['kinds'])}, parts {','.join(cfg['parts'])}; "
        f"load average {os.getloadavg()[0]:.2f}; RLIMIT_NOFILE {limits[0]}")
    plan = [
        ("sessions", f"{cfg['big_sessions']} sessions x depth 1, get and set", run_sessions),
        ("idle", "idle sessions pinging: " + ", ".join(f"{c:,}" for c in cfg["session_counts"]),
         run_idle),
        ("watches", "watches firing on one multi: "
         + ", ".join(f"{c:,}" for c in cfg["watch_counts"]), run_watches),
        ("znodes", "znodes: " + ", ".join(f"{c:,}" for c in cfg["znode_counts"])
         + "; then snapshot and restarts at the largest count", run_znodes),
    ]
    try:
        for part, title, function in plan:
            if part not in cfg["parts"]:
                continue
            say(f"== {title}")
            try:
                state[part] = function(runner)
            except Exception as exc:  # noqa: BLE001 - a bug in one part must not lose the rest
                state[f"{part}_error"] = traceback.format_exc()[-3000:]
                say(f"{part}: the experiment itself failed: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        state["elapsed_s"] = time.monotonic() - started
        state["loadavg_after"] = os.getloadavg()
    finish(state, out)
    return state


def finish(state: dict[str, Any], out: Path) -> None:
    """Summaries and plots (also for a partial, interrupted run)."""
    kinds = state.get("config", {}).get("kinds", list(KINDS))
    state["summary"] = summarize(state, kinds)
    state["plots"] = plot(state["summary"], kinds, out)


# --- summaries -------------------------------------------------------------------------------

def summarize(state: dict[str, Any], kinds: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if state.get("sessions") is not None:
        rows = []
        for workload in ("get", "set"):
            row: dict[str, Any] = {"workload": workload}
            for kind in kinds:
                mine = [x for x in state["sessions"] if x["kind"] == kind
                        and x.get("workload") == workload]
                valid = [x["result"] for x in mine if x.get("status") == "ok"]
                row[kind] = {
                    "runs": len(mine), "valid_runs": len(valid),
                    "ops_per_s": median([v["ops_per_s"] for v in valid]),
                    "p50_ms": median([v["latency_ms"]["p50"] for v in valid]),
                    "p99_ms": median([v["latency_ms"]["p99"] for v in valid]),
                    "server_cpu_util": median([v["server_cpu_util"] for v in valid]),
                    "client_cpu_util": median([v["client_cpu_util"] for v in valid]),
                    "connect_s": median([v["connect_s"] for v in valid]),
                    "error": next((x.get("error") or "; ".join(
                        x.get("result", {}).get("invalid_reasons", []))
                        for x in mine if x.get("status") != "ok"), None),
                }
            _add_ratios(row, kinds, ("ops_per_s", "p50_ms", "p99_ms"))
            rows.append(row)
        summary["sessions"] = rows
    if state.get("idle") is not None:
        rows = []
        for count in sorted({x["sessions"] for x in state["idle"]}):
            row = {"sessions": count}
            for kind in kinds:
                mine = next((x for x in state["idle"] if x["kind"] == kind
                             and x["sessions"] == count), None)
                row[kind] = _idle_cell(mine)
            _add_ratios(row, kinds, ("server_cpu_util", "rss_mb", "rss_per_session_kb",
                                     "ping_p99_ms"))
            rows.append(row)
        summary["idle"] = rows
    if state.get("watches") is not None:
        rows = []
        for count in sorted({x["watches"] for x in state["watches"] if "watches" in x}):
            row = {"watches": count}
            for kind in kinds:
                mine = next((x for x in state["watches"] if x["kind"] == kind
                             and x.get("watches") == count), None)
                row[kind] = _watch_cell(mine)
            _add_ratios(row, kinds, ("last_notification_ms", "first_notification_ms",
                                     "multi_reply_ms", "notifications_per_s"))
            rows.append(row)
        failures = [x for x in state["watches"] if x.get("status") == "failed"]
        summary["watches"] = rows
        summary["watch_failures"] = {x["kind"]: x["error"] for x in failures}
    if state.get("znodes") is not None:
        rows = []
        counts = sorted({s["znodes"] for x in state["znodes"] for s in x.get("steps", [])})
        for count in counts:
            row = {"znodes": count}
            for kind in kinds:
                record = next((x for x in state["znodes"] if x["kind"] == kind), None)
                step = next((s for s in (record or {}).get("steps", [])
                             if s["znodes"] == count), None)
                row[kind] = _znode_cell(step)
            _add_ratios(row, kinds, ("rss_mb", "get_ops_per_s", "get_p99_ms", "set_ops_per_s",
                                     "set_p99_ms", "creates_per_s"))
            rows.append(row)
        summary["znodes"] = rows
        big = {}
        for kind in kinds:
            record = next((x for x in state["znodes"] if x["kind"] == kind), None)
            big[kind] = _big_cell(record)
        summary["big"] = big
    return summary


def _add_ratios(row: dict[str, Any], kinds: list[str], keys: tuple[str, ...]) -> None:
    if "zookeeper" in kinds and "zkpy" in kinds:
        row["ratio"] = {key: ratio(row["zkpy"].get(key), row["zookeeper"].get(key))
                        for key in keys}


def _idle_cell(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"status": "not run"}
    if record.get("status") == "failed":
        return {"status": "failed", "error": record.get("error")}
    return {
        "status": record["status"], "invalid_reasons": record.get("invalid_reasons"),
        "server_cpu_util": record["server_cpu_util"],
        "rss_mb": _mb(record["rss_idle"]), "rss_max_mb": _mb(record["rss_idle_max"]),
        "rss_before_mb": _mb(record["rss_before"]),
        "rss_per_session_kb": (record["rss_per_session"] / 1024
                               if record["rss_per_session"] is not None else None),
        "ping_p99_ms": record["ping_rtt_ms"]["p99"], "pings": record["pings_in_window"],
        "connect_s": record["connect_s"], "alive": record["alive_at_end"],
        "generator_cpu_util": record["generator_cpu_util"], "window_s": record["window_s"],
        "connect_retries": record.get("connect_retries", 0),
        "connect_error": (record.get("connect_errors") or [None])[0],
    }


def _watch_cell(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"status": "not run"}
    keys = ("last_notification_ms", "first_notification_ms", "multi_reply_ms",
            "median_session_last_ms", "notifications_per_s", "notifications", "server_cpu_s",
            "generator_cpu_s", "set_watches_s", "mntr_watch_count")
    cell = {key: record.get(key) for key in keys}
    cell["status"] = record["status"]
    cell["invalid_reasons"] = record.get("invalid_reasons")
    cell["rss_per_watch_b"] = record.get("rss_per_watch")
    return cell


def _znode_cell(step: dict[str, Any] | None) -> dict[str, Any]:
    if step is None:
        return {"status": "not run"}
    cell: dict[str, Any] = {"rss_mb": _mb(step.get("rss")),
                            "creates_per_s": step.get("load", {}).get("creates_per_s"),
                            "srvr_nodes": step.get("srvr_nodes")}
    for workload in ("get", "set"):
        entry = step.get(workload)
        if entry and "result" in entry:
            res = entry["result"]
            cell[f"{workload}_ops_per_s"] = res["ops_per_s"]
            cell[f"{workload}_p99_ms"] = res["latency_ms"]["p99"]
            cell[f"{workload}_status"] = entry["status"]
            cell[f"{workload}_stall_s"] = res.get("longest_stall_s")
        else:
            cell[f"{workload}_status"] = entry["status"] if entry else "not run"
            cell[f"{workload}_error"] = entry.get("error") if entry else None
    return cell


def _big_cell(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"status": "not run"}
    steps = record.get("steps", [])
    last = steps[-1] if steps else {}
    cell: dict[str, Any] = {
        "status": record.get("status"), "error": record.get("error"),
        "znodes": record.get("znodes"),
        "rss_empty_mb": _mb(record.get("rss_empty")),
        "rss_loaded_mb": _mb(last.get("rss")),
        "load_creates_per_s": median([s.get("load", {}).get("creates_per_s") for s in steps
                                       if s.get("load", {}).get("created", 0) >= 10_000]),
        "data_dir_mb": _mb(record.get("data_dir_bytes_snapshot")),
        "jvm_heap_used_mb": _mb((record.get("jvm_heap") or {}).get("used_after_full_gc")),
    }
    for key in ("restart_replay", "restart_snapshot"):
        rs = record.get(key)
        if rs:
            cell[f"{key}_s"] = rs["start_s"]
            cell[f"{key}_stop_s"] = rs["stop_s"]
            cell[f"{key}_rss_mb"] = _mb(rs["rss_after"])
    snap = record.get("snapshot")
    if snap:
        cell.update(snapshot_s=snap["snapshot_s"],
                    get_baseline_p99_ms=snap["get_baseline_ms"]["p99"],
                    get_baseline_max_ms=snap["get_baseline_ms"]["max"],
                    get_snapshot_p50_ms=snap["get_during_snapshot_ms"]["p50"],
                    get_snapshot_p99_ms=snap["get_during_snapshot_ms"]["p99"],
                    get_snapshot_max_ms=snap["get_during_snapshot_ms"]["max"],
                    get_snapshot_count=snap["get_during_snapshot_ms"]["count"],
                    trigger_overlap_s=snap["trigger_overlap_s"])
    return cell


# --- tables ----------------------------------------------------------------------------------

def _cell_note(kind: str, cell: dict[str, Any]) -> str | None:
    status = cell.get("status")
    if status in (None, "ok"):
        return None
    reasons = cell.get("invalid_reasons") or ([cell["error"]] if cell.get("error") else [])
    return f"{SHORT_NAMES.get(kind, kind)} {status}" + (
        f": {short_error('; '.join(r or '' for r in reasons), 200)}" if reasons else "")


def _metric_table(rows: list[dict[str, Any]], kinds: list[str], first: tuple[str, str],
                  metrics: list[tuple[str, str, str, float]], markdown: bool,
                  notes: Callable[[dict[str, Any]], list[str]] | None = None) -> list[str]:
    """rows: {first_key: label, kind: cell, ratio: {...}}; metrics: (key, header, spec, scale)."""
    key0, header0 = first
    headers = [header0]
    for kind in kinds:
        headers += [f"{SHORT_NAMES.get(kind, kind)} {h}" for _, h, _, _ in metrics]
    both = "zookeeper" in kinds and "zkpy" in kinds
    if both:
        headers += [f"zkpy/ZK {h}" for _, h, _, _ in metrics]
    headers.append("notes")
    body = []
    for row in rows:
        label = row[key0]
        cells = [f"{label:,}" if isinstance(label, int) else str(label)]
        row_notes = []
        for kind in kinds:
            cell = row.get(kind, {})
            for key, _, spec, scale in metrics:
                value = cell.get(key)
                cells.append(fmt(value * scale if value is not None else None, spec,
                                  "FAILED" if cell.get("status") == "failed" else "-"))
            note = _cell_note(kind, cell)
            if note:
                row_notes.append(note)
        if both:
            for key, _, _, _ in metrics:
                cells.append(fmt(row.get("ratio", {}).get(key), ".2f"))
        if notes:
            row_notes += notes(row)
        cells.append("; ".join(row_notes))
        body.append(cells)
    return render_table(headers, body, markdown)


def table_lines(summary: dict[str, Any], kinds: list[str], markdown: bool) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    if summary.get("sessions"):
        def notes(row):
            out = []
            for kind in kinds:
                c = row[kind]
                if c.get("server_cpu_util") is not None:
                    out.append(f"{SHORT_NAMES[kind]} server CPU {c['server_cpu_util'] * 100:.0f}%, "
                               f"gen CPU {c['client_cpu_util'] * 100:.0f}%, connect "
                               f"{c['connect_s']:.1f} s")
                if c.get("valid_runs", 0) < c.get("runs", 0):
                    out.append(f"{SHORT_NAMES[kind]}: {c['valid_runs']}/{c['runs']} valid: "
                               f"{short_error(c.get('error'), 200)}")
            return out
        tables["sessions"] = _metric_table(
            summary["sessions"], kinds, ("workload", "workload"),
            [("ops_per_s", "ops/s", ",.0f", 1), ("p50_ms", "p50 ms", ".2f", 1),
             ("p99_ms", "p99 ms", ".2f", 1)], markdown, notes)
    if summary.get("idle"):
        def notes(row):
            out = []
            for kind in kinds:
                c = row[kind]
                if c.get("connect_s") is not None:
                    out.append(f"{SHORT_NAMES[kind]} connect {c['connect_s']:.1f} s, "
                               f"{c['alive']:,} alive, gen CPU "
                               f"{c['generator_cpu_util'] * 100:.0f}%")
                if c.get("connect_retries"):
                    out.append(f"{SHORT_NAMES[kind]}: {c['connect_retries']} handshakes failed and "
                               f"were retried, e.g. {short_error(c['connect_error'], 150)}")
            return out
        tables["idle"] = _metric_table(
            summary["idle"], kinds, ("sessions", "sessions"),
            [("server_cpu_util", "CPU %", ".2f", 100), ("rss_mb", "RSS MB", ".0f", 1),
             ("rss_per_session_kb", "KB/session", ".1f", 1),
             ("ping_p99_ms", "ping p99 ms", ".2f", 1)], markdown, notes)
    if summary.get("watches"):
        tables["watches"] = _metric_table(
            summary["watches"], kinds, ("watches", "watches"),
            [("last_notification_ms", "all notified ms", ".1f", 1),
             ("first_notification_ms", "first ms", ".1f", 1),
             ("multi_reply_ms", "multi reply ms", ".1f", 1),
             ("notifications_per_s", "notif/s", ",.0f", 1),
             ("rss_per_watch_b", "B/watch", ".0f", 1)], markdown)
    if summary.get("znodes"):
        def notes(row):
            out = []
            for kind in kinds:
                c = row[kind]
                for workload in ("get", "set"):
                    if c.get(f"{workload}_status") not in (None, "ok"):
                        out.append(f"{SHORT_NAMES[kind]} {workload} {c[f'{workload}_status']}")
                    if (c.get(f"{workload}_stall_s") or 0) >= 0.5:
                        out.append(f"{SHORT_NAMES[kind]} {workload}: a "
                                   f"{c[f'{workload}_stall_s']:.1f} s stall")
            return out
        tables["znodes"] = _metric_table(
            summary["znodes"], kinds, ("znodes", "znodes"),
            [("rss_mb", "RSS MB", ".0f", 1), ("creates_per_s", "load creates/s", ",.0f", 1),
             ("get_ops_per_s", "get ops/s", ",.0f", 1), ("get_p99_ms", "get p99 ms", ".2f", 1),
             ("set_ops_per_s", "set ops/s", ",.0f", 1), ("set_p99_ms", "set p99 ms", ".2f", 1)],
            markdown, notes)
    if summary.get("big"):
        big = summary["big"]
        metrics = [
            ("rss_loaded_mb", "RSS after loading, MB", ".0f"),
            ("jvm_heap_used_mb", "JVM heap used after a full GC (jcmd), MB", ".0f"),
            ("load_creates_per_s", "loading, creates/s (median over steps >= 10k)", ",.0f"),
            ("snapshot_s", "snapshot, s", ".2f"),
            ("get_baseline_p99_ms", "gets before the snapshot: p99 ms", ".2f"),
            ("get_baseline_max_ms", "gets before the snapshot: max ms", ".1f"),
            ("get_snapshot_p50_ms", "gets during the snapshot: p50 ms", ".2f"),
            ("get_snapshot_p99_ms", "gets during the snapshot: p99 ms", ".2f"),
            ("get_snapshot_max_ms", "gets during the snapshot: max ms", ".1f"),
            ("get_snapshot_count", "gets during the snapshot: count", ",.0f"),
            ("restart_replay_s", "restart replaying the log: launch to serving all, s", ".1f"),
            ("restart_replay_rss_mb", "  RSS after it, MB", ".0f"),
            ("restart_snapshot_s", "restart from the snapshot: launch to serving all, s", ".1f"),
            ("restart_snapshot_rss_mb", "  RSS after it, MB", ".0f"),
            ("restart_replay_stop_s", "stop (SIGTERM to exit) before the 1st restart, s", ".1f"),
            ("restart_snapshot_stop_s", "stop before the 2nd restart, s", ".1f"),
            ("data_dir_mb", "data directory after the snapshot, MB", ".0f"),
        ]
        headers = [f"{fmt(max((big[k].get('znodes') or 0) for k in kinds), ',')} znodes"]
        headers += [SHORT_NAMES.get(k, k) for k in kinds]
        both = "zookeeper" in kinds and "zkpy" in kinds
        if both:
            headers.append("zkpy/ZK")
        headers.append("notes")
        body = []
        for key, label, spec in metrics:
            cells = [label]
            for kind in kinds:
                if key.startswith("jvm_") and kind != "zookeeper":
                    cells.append("n/a")
                    continue
                cells.append(fmt(big[kind].get(key), spec,
                                  "FAILED" if big[kind].get("status") == "failed" else "-"))
            if both:
                cells.append(fmt(ratio(big["zkpy"].get(key), big["zookeeper"].get(key)),
                                  ".2f"))
            cells.append("")
            body.append(cells)
        for kind in kinds:
            if big[kind].get("error"):
                body[0][-1] = (body[0][-1] + f" {SHORT_NAMES[kind]} FAILED: "
                               f"{short_error(big[kind]['error'], 300)}").strip()
        tables["big"] = render_table(headers, body, markdown)
    return tables


TABLE_TITLES = {
    "sessions": "Many sessions: {n} sessions x depth 1 (benchmarks.loadgen)",
    "idle": "Idle sessions pinging: server CPU and RSS",
    "watches": "Watches firing on one change (one multi of setData)",
    "znodes": "Znode count: RSS and 32x16 throughput",
    "big": "A million znodes: snapshot and restart",
}
PLOT_FOR = {"idle": "scaling_sessions.png", "watches": "scaling_watches.png",
            "znodes": "scaling_znodes.png"}


def markdown_lines(state: dict[str, Any]) -> list[str]:
    kinds = state.get("config", {}).get("kinds", list(KINDS))
    cfg = state.get("config", {})
    summary = state.get("summary") or {}
    tables = table_lines(summary, kinds, markdown=True)
    load_before = state.get("loadavg_before") or [None]
    load_after = state.get("loadavg_after") or [None]
    lines = ["## Scaling (benchmarks.scaling)", "",
             f"- {state.get('date')}; servers: "
             + ", ".join(f"{k} {v or '(did not start)'}"
                         for k, v in (state.get("versions") or {}).items()),
             f"- load average before {fmt(load_before[0], '.2f')}, after "
             f"{fmt(load_after[0], '.2f')}; {fmt(state.get('elapsed_s'), '.0f')} s; "
             f"RLIMIT_NOFILE {state.get('fd_limit')}; reference JVM -Xmx{cfg.get('zk_heap')}",
             "- every experiment on a fresh standalone server (own data dir, the same settings "
             "for both), kinds alternating; CPU as a share of one core (2-core machine); ratios "
             "are zkpy / ZooKeeper (above 1: zkpy higher). See the module docstring of "
             "benchmarks/scaling.py for exactly what is measured.", ""]
    for key, title in TABLE_TITLES.items():
        if key not in tables:
            continue
        lines += [f"### {title.format(n=cfg.get('big_sessions', 1000))}", "",
                  *tables[key], ""]
        if key == "sessions":
            lines += [f"{cfg.get('warmup_s')} s warm-up + {cfg.get('duration_s')} s measured, "
                      f"{cfg.get('repeats')} run(s) per server (median); 100 nodes of 100 B.", ""]
        if key == "idle":
            lines += ["Sessions opened with a 30 s timeout, each pinging every third of it "
                      "(10 s) at a random phase; CPU over the idle window "
                      f"({cfg.get('idle_s')} s for the largest count, {cfg.get('idle_short_s')} "
                      "s for the others), RSS the median of 1 s samples in it; KB/session is the "
                      "RSS growth over the server before the sessions.", ""]
        if key == "watches":
            lines += [f"{cfg.get('watch_sessions')} sessions each set a data watch on each "
                      "child of one parent (watches = sessions x children); ONE multi then "
                      "sets every child; times from writing that multi to the socket. "
                      "notif/s = watches / time to the last notification.", ""]
            for kind, error in (summary.get("watch_failures") or {}).items():
                lines += [f"- {kind}: FAILED: {short_error(error, 400)}", ""]
        if key == "znodes":
            lines += [f"Loaded in steps on one server (snapCount {LOAD_SNAPCOUNT:,}: no "
                      "snapshot during loading and these runs) by 16 sessions x 16 multis of "
                      f"{cfg.get('multi_ops')} creates in flight; RSS 1 s after each step; "
                      f"get/set at 32 sessions x depth 16, {cfg.get('short_warmup_s')} s + "
                      f"{cfg.get('short_s')} s, on loadgen's own 100 nodes.", ""]
        if key == "big":
            lines += [f"Restart 1 replays the whole log (snapCount {cfg.get('snap_count')} from "
                      f"then on); then snapCount+200 setData trigger exactly one snapshot while "
                      "8 sessions probe with gets of random loaded znodes (2 ms pause between "
                      "gets); restart 2 loads that snapshot. Restart times run from launching "
                      "the process to srvr showing Mode and the full node count.", ""]
        plot_name = PLOT_FOR.get(key)
        if plot_name and plot_name in (state.get("plots") or []):
            lines += [f"![{key}]({plot_name})", ""]
    failed = [(part, x) for part in ("sessions", "idle", "watches", "znodes")
              for x in (state.get(part) or []) if x.get("status") == "failed"]
    broken = [part for part in PARTS if state.get(f"{part}_error")]
    if failed or broken:
        lines += ["### Scaling failures", ""]
        for part in broken:
            lines += [f"- the {part} experiment itself failed:", "", "  ```",
                      *[f"  {line}" for line in state[f"{part}_error"].splitlines()[-10:]],
                      "  ```", ""]
        for part, x in failed:
            lines.append(f"- {part} {x['kind']}: {short_error(x.get('error'), 500)}")
            tail = x.get("server_log_tail")
            if tail:
                lines += ["", "  ```", *[f"  {line}" for line in tail.splitlines()[-12:]],
                          "  ```", ""]
        lines.append("")
    return lines


def text_lines(state: dict[str, Any]) -> list[str]:
    kinds = state.get("config", {}).get("kinds", list(KINDS))
    cfg = state.get("config", {})
    tables = table_lines(state.get("summary") or {}, kinds, markdown=False)
    lines = []
    for key, title in TABLE_TITLES.items():
        if key in tables:
            lines += ["", title.format(n=cfg.get("big_sessions", 1000)), *tables[key]]
    return lines


# --- plots -----------------------------------------------------------------------------------

def plot(summary: dict[str, Any], kinds: list[str], out: Path) -> list[str]:
    try:
        plt = pyplot()
    except ImportError:
        return []
    written = []

    def curve(ax, rows, xkey, ykey, scale=1.0):
        for kind in kinds:
            xs, ys = [], []
            for row in rows:
                value = row.get(kind, {}).get(ykey)
                if value is not None:
                    xs.append(row[xkey])
                    ys.append(value * scale)
            if xs:
                ax.plot(xs, ys, marker="o", color=PLOT_COLORS.get(kind),
                        label=PLOT_LABELS.get(kind, kind))
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)

    panels = {
        "znodes": ("scaling_znodes.png", "znode count", [
            ("rss_mb", "server RSS, MB", 1.0, "RSS after loading"),
            ("get_ops_per_s", "ops/s", 1.0, "get, 32x16"),
            ("set_ops_per_s", "ops/s", 1.0, "set, 32x16"),
            ("get_p99_ms", "ms", 1.0, "get p99 latency, 32x16")]),
        "idle": ("scaling_sessions.png", "idle sessions (pinging every 10 s)", [
            ("server_cpu_util", "server CPU, % of a core", 100.0, "server CPU while idle"),
            ("rss_mb", "server RSS, MB", 1.0, "server RSS while idle"),
            ("ping_p99_ms", "ms", 1.0, "ping round trip p99")]),
        "watches": ("scaling_watches.png", "watches (100 sessions x children)", [
            ("last_notification_ms", "ms", 1.0, "one multi -> last notification"),
            ("notifications_per_s", "notifications/s", 1.0, "notification rate")]),
    }
    for key, (name, xlabel, metrics) in panels.items():
        rows = summary.get(key)
        if not rows:
            continue
        xkey = {"znodes": "znodes", "idle": "sessions", "watches": "watches"}[key]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8),
                                 squeeze=False)
        for ax, (ykey, ylabel, scale, title) in zip(axes[0], metrics):
            curve(ax, rows, xkey, ykey, scale)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=10)
            if ykey == "last_notification_ms":
                ax.set_yscale("log")
        fig.suptitle(f"zkpy vs ZooKeeper: scaling with the {xlabel.split(' (')[0]}")
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    if argv:
        print(__doc__)
        return 0 if argv[0] in ("-h", "--help") else 2
    out = Path(os.environ.get("BENCH_OUT", "bench-results"))
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}
    try:
        run(out, state=state)
    except KeyboardInterrupt:
        print("interrupted: writing what was measured", flush=True)
        finish(state, out)
    state["meta"] = {"python": platform.python_version(), "platform": platform.platform(),
                     "cpu_count": os.cpu_count()}
    (out / "scaling.json").write_text(json.dumps(state, indent=2, default=str))
    (out / "scaling.md").write_text("\n".join(["# zkpy vs ZooKeeper: scaling", "",
                                               *markdown_lines(state)]))
    for line in text_lines(state):
        print(line)
    print(f"wrote {out / 'scaling.json'}, {out / 'scaling.md'}"
          + "".join(f", {out / p}" for p in state.get("plots") or []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
