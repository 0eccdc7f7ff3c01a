"""Leader failover timing of a 3-node ensemble: how long writes stop when the leader dies.

One trial: a fresh ensemble (``tests.support.servers.ensemble``: loopback, each member its own
data directory, default sync settings) is started; two *writers* each hold a session and write
continuously (setData on a node of their own, one request at a time) through the connect string
of all three members: writer ``on-leader`` starts on the leader, writer ``on-follower`` on a
follower. After ``warmup_s`` the leader is SIGKILLed (its whole process group) and, from that
instant:

* ``old_session_on_leader_s`` / ``old_session_on_follower_s``: time to the first successful
  write of that writer, counting only writes *sent* after the kill. A writer whose connection
  fails (closed, refused, or a request unanswered for ``request_timeout_s``) moves to the next
  member of the connect string and re-attaches its session (session id + password + the last
  zxid it saw), the way a ZooKeeper client does, pausing ``retry_pause_s`` between attempts.
* ``new_session_s``: time to the first successful write on a session created after the kill (a
  prober that, from the kill on, keeps trying to open a new session on the members in turn and
  to write through it).
* ``new_leader_s``: time until a surviving member reports ``Mode: leader`` to ``srvr`` (polled
  every 50 ms).

A trial is *valid* if both writers wrote before the kill, all three timings were reached within
``deadline_s`` and no acknowledged write was lost: each writer's first write after the failover
must return a version above the last version acknowledged before the kill. Every connection
failure, timeout and error reply after the kill is kept in ``events`` (with times relative to
the kill).

    python -m benchmarks.failover --kind zkpy --repeats 3 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from jute import records as r
from jute.constants import Err, OpCode
from tests.support.servers import KINDS, connect_string, ensemble, start_all

from benchmarks.client import (
    Connection, ConnectionFailed, RequestFailed, SessionExpired, connect_request,
    create_request, error_name, open_session, parse_hosts, run_event_loop,
)
from benchmarks.servers import find_leader, log_excerpt, parse_srvr, stop_all

perf_counter = time.perf_counter


class Trial:
    """Shared state of one trial: the kill instant and the event log."""

    def __init__(self) -> None:
        self.t0 = perf_counter()
        self.kill_at: float | None = None
        self.events: list[tuple[float, str, str]] = []

    def event(self, who: str, what: str) -> None:
        if self.kill_at is not None and len(self.events) < 200:
            self.events.append((round(perf_counter() - self.kill_at, 4), who, what))

    def since_kill(self, t: float) -> float:
        return t - self.kill_at


async def _open(hosts: list[tuple[str, int]], index: int, session_id: int, passwd: bytes,
                last_zxid: int, timeout_ms: int, connect_timeout_s: float) -> Connection:
    """A new session (``session_id`` 0) or an existing one re-attached, on member ``index``;
    the connection is named after the member, so its errors say where they happened."""
    host, port = hosts[index % len(hosts)]
    request = connect_request(timeout_ms, session_id, passwd, last_zxid)
    return await open_session(host, port, lambda: Connection(f"{host}:{port}", request),
                              connect_timeout_s)


def _set_body(path: str, value: bytes) -> bytes:
    return r.SetDataRequest.encode(r.SetDataRequest(path, value, -1))


class Writer:
    """A session writing continuously, failing over between the members like a client."""

    def __init__(self, trial: Trial, name: str, hosts: list[tuple[str, int]], start: int,
                 path: str, settings: dict[str, float]) -> None:
        self.trial = trial
        self.name = name
        self.hosts = hosts
        self.index = start
        self.path = path
        self.settings = settings
        self.session_id = 0
        self.passwd = bytes(16)
        self.conn: Connection | None = None
        self.writes_before_kill = 0
        self.last_version_before_kill: int | None = None
        self.first_after_kill: float | None = None
        self.first_version_after_kill: int | None = None
        self.writes_after_kill = 0
        self.expired = False
        self.reconnects = 0
        self.latencies_before: list[float] = []
        self.host_at_kill: str | None = None

    def host_label(self) -> str:
        return "%s:%d" % self.hosts[self.index % len(self.hosts)]

    async def connect(self) -> None:
        """Open (or re-attach) the session, trying the members in turn until one accepts."""
        s = self.settings
        while True:
            try:
                conn = await _open(
                    self.hosts, self.index, self.session_id, self.passwd,
                    self.conn.last_zxid_seen if self.conn is not None else 0,
                    int(s["session_timeout_ms"]), s["connect_timeout_s"])
            except SessionExpired:
                self.trial.event(self.name, f"{self.host_label()}: session expired")
                self.expired = True
                raise
            except ConnectionFailed as exc:
                self.trial.event(self.name, str(exc))
                self.index += 1
                await asyncio.sleep(s["retry_pause_s"])
                continue
            if self.session_id == 0:
                self.session_id, self.passwd = conn.session_id, conn.session_passwd
            elif self.trial.kill_at is not None:
                self.reconnects += 1
                self.trial.event(self.name, f"{self.host_label()}: session re-attached")
            self.conn = conn
            return

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        value = b"v" * 16
        body = _set_body(self.path, value)
        while not stop.is_set():
            if self.conn is None or self.conn.lost:
                try:
                    await self.connect()
                except ConnectionFailed:
                    return
            sent = perf_counter()
            try:
                err, reply = await asyncio.wait_for(self.conn.call(OpCode.setData, body),
                                                    s["request_timeout_s"])
            except asyncio.TimeoutError:
                self.trial.event(self.name, f"{self.host_label()}: setData unanswered for "
                                            f"{s['request_timeout_s']:g} s; moving on")
                self._drop()
                continue
            except ConnectionFailed as exc:
                self.trial.event(self.name, str(exc))
                self._drop()
                continue
            now = perf_counter()
            if err:
                self.trial.event(self.name, f"{self.host_label()}: setData {error_name(err)}")
                if err == Err.SESSIONEXPIRED:
                    self.expired = True
                    return
                self._drop()
                continue
            version = r.SetDataResponse.decode(reply).stat.version
            kill_at = self.trial.kill_at
            if kill_at is None or sent < kill_at:
                if kill_at is None or now < kill_at:
                    self.writes_before_kill += 1
                    self.latencies_before.append(now - sent)
                # acknowledged, so it must survive: even if the reply came after the kill
                if self.last_version_before_kill is None or \
                        version > self.last_version_before_kill:
                    self.last_version_before_kill = version
            else:
                self.writes_after_kill += 1
                if self.first_after_kill is None:
                    self.first_after_kill = now
                    self.first_version_after_kill = version
                    self.trial.event(self.name, f"{self.host_label()}: first write after the "
                                                f"kill (version {version})")

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.abort()
        self.index += 1

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close(2.0)


async def _new_session_prober(trial: Trial, hosts: list[tuple[str, int]], start: int, path: str,
                              settings: dict[str, float], stop: asyncio.Event) -> float | None:
    """From the kill on: open a new session on the members in turn and write through it."""
    index = start
    body = _set_body(path, b"n" * 16)
    while not stop.is_set():
        label = "%s:%d" % hosts[index % len(hosts)]
        try:
            conn = await _open(hosts, index, 0, bytes(16), 0,
                               int(settings["session_timeout_ms"]), settings["connect_timeout_s"])
        except SessionExpired:
            trial.event("new-session", f"{label}: session rejected")
            index += 1
            continue
        except ConnectionFailed as exc:
            trial.event("new-session", str(exc))
            index += 1
            await asyncio.sleep(settings["retry_pause_s"])
            continue
        try:
            try:
                err, _ = await asyncio.wait_for(conn.call(OpCode.setData, body),
                                                settings["request_timeout_s"])
            except asyncio.TimeoutError:
                trial.event("new-session", f"{label}: setData unanswered for "
                                           f"{settings['request_timeout_s']:g} s")
                index += 1
                continue
            except ConnectionFailed as exc:
                trial.event("new-session", str(exc))
                index += 1
                await asyncio.sleep(settings["retry_pause_s"])
                continue
            if err:
                trial.event("new-session", f"{label}: setData {error_name(err)}")
                index += 1
                await asyncio.sleep(settings["retry_pause_s"])
                continue
            done = perf_counter()
            trial.event("new-session", f"{label}: first write on a new session")
            await conn.close(2.0)
            return done
        finally:
            conn.abort()
    return None


async def _srvr(host: str, port: int, timeout_s: float = 0.5) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    try:
        writer.write(b"srvr")
        return (await asyncio.wait_for(reader.read(65536), timeout_s)).decode(errors="replace")
    finally:
        writer.close()


async def _leader_watch(trial: Trial, hosts: list[tuple[str, int]], stop: asyncio.Event
                        ) -> tuple[float | None, str | None]:
    while not stop.is_set():
        for host, port in hosts:
            try:
                text = await _srvr(host, port)
            except (OSError, asyncio.TimeoutError):
                continue
            if parse_srvr(text)["mode"] == "leader":
                now = perf_counter()
                trial.event("srvr", f"{host}:{port} reports Mode: leader")
                return now, f"{host}:{port}"
        await asyncio.sleep(0.05)
    return None, None


async def measure(hosts: str, leader: str, kill: Callable[[], None],
                  warmup_s: float = 1.0, deadline_s: float = 30.0,
                  session_timeout_ms: int = 6000, request_timeout_s: float = 2.0,
                  connect_timeout_s: float = 1.0, retry_pause_s: float = 0.02) -> dict[str, Any]:
    """Write through ``hosts`` (all members), call ``kill`` (the leader, ``host:port``) in a
    thread, and time the recovery. Returns the trial's result."""
    addresses = parse_hosts(hosts)
    labels = ["%s:%d" % a for a in addresses]
    leader_index = labels.index(leader)
    follower_index = (leader_index + 1) % len(addresses)
    survivors = [a for i, a in enumerate(addresses) if i != leader_index]
    settings = {"session_timeout_ms": session_timeout_ms, "request_timeout_s": request_timeout_s,
                "connect_timeout_s": connect_timeout_s, "retry_pause_s": retry_pause_s}
    trial = Trial()
    base = f"/zkbench-failover-{uuid.uuid4().hex[:10]}"
    result: dict[str, Any] = {"benchmark": "failover", "hosts": hosts, "leader": leader,
                              "warmup_s": warmup_s, "deadline_s": deadline_s, **settings}

    # Setup through the leader: the nodes the writers write.
    conn = await _open(addresses, leader_index, 0, bytes(16), 0, session_timeout_ms, 10.0)
    try:
        for path in (base, f"{base}/on-leader", f"{base}/on-follower", f"{base}/new"):
            await asyncio.wait_for(conn.call_checked(OpCode.create, create_request(path),
                                                     f"setup: create {path}"), 10.0)
        await conn.close(5.0)
    finally:
        conn.abort()

    writers = [Writer(trial, "on-leader", addresses, leader_index, f"{base}/on-leader", settings),
               Writer(trial, "on-follower", addresses, follower_index, f"{base}/on-follower",
                      settings)]
    stop = asyncio.Event()
    for writer in writers:
        await writer.connect()
    tasks = [asyncio.create_task(w.run(stop)) for w in writers]
    await asyncio.sleep(warmup_s)
    loop = asyncio.get_running_loop()
    for writer in writers:
        writer.host_at_kill = writer.host_label()
    trial.kill_at = perf_counter()
    await loop.run_in_executor(None, kill)
    result["kill_call_s"] = perf_counter() - trial.kill_at
    # A new client gets the whole connect string too (the dead member refuses at once).
    prober = asyncio.create_task(_new_session_prober(trial, addresses, leader_index + 1,
                                                     f"{base}/new", settings, stop))
    watcher = asyncio.create_task(_leader_watch(trial, survivors, stop))
    deadline = trial.kill_at + deadline_s
    while perf_counter() < deadline:
        if (all(w.first_after_kill is not None or w.expired for w in writers)
                and prober.done() and watcher.done()):
            break
        await asyncio.sleep(0.01)
    stop.set()
    new_session_at = await prober if prober.done() else None
    if not prober.done():
        prober.cancel()
    leader_at, new_leader = (await watcher) if watcher.done() else (None, None)
    if not watcher.done():
        watcher.cancel()
    await asyncio.wait(tasks, timeout=request_timeout_s + connect_timeout_s + 1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*[w.close() for w in writers], return_exceptions=True)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(trial.since_kill(t), 4)

    by_name = {w.name: w for w in writers}
    result.update({
        "old_session_on_leader_s": rel(by_name["on-leader"].first_after_kill),
        "old_session_on_follower_s": rel(by_name["on-follower"].first_after_kill),
        "new_session_s": rel(new_session_at),
        "new_leader_s": rel(leader_at),
        "new_leader": new_leader,
        "writers": {w.name: {
            "host_at_kill": w.host_at_kill,
            "writes_before_kill": w.writes_before_kill,
            "p50_ms_before_kill": round(statistics.median(w.latencies_before) * 1000, 3)
            if w.latencies_before else None,
            "writes_after_kill": w.writes_after_kill,
            "last_version_before_kill": w.last_version_before_kill,
            "first_version_after_kill": w.first_version_after_kill,
            "reconnects": w.reconnects,
            "expired": w.expired,
        } for w in writers},
        "events": trial.events,
    })
    reasons = []
    for w in writers:
        if not w.writes_before_kill:
            reasons.append(f"writer {w.name} wrote nothing before the kill")
        if w.expired:
            reasons.append(f"writer {w.name}: session expired during the failover")
        elif w.first_after_kill is None:
            reasons.append(f"writer {w.name}: no successful write within {deadline_s:g} s "
                           "of the kill")
        if (w.first_version_after_kill is not None and w.last_version_before_kill is not None
                and w.first_version_after_kill <= w.last_version_before_kill):
            reasons.append(f"writer {w.name}: acknowledged write lost (version "
                           f"{w.last_version_before_kill} acknowledged before the kill, "
                           f"{w.first_version_after_kill} after)")
    if new_session_at is None:
        reasons.append(f"no write on a new session within {deadline_s:g} s of the kill")
    if leader_at is None:
        reasons.append(f"no member reported Mode: leader within {deadline_s:g} s of the kill")
    result["valid"] = not reasons
    result["invalid_reasons"] = reasons
    return result


def trial(kind: str, workdir: Path, **kwargs: Any) -> dict[str, Any]:
    """Start a fresh 3-node ensemble of ``kind``, measure one failover, stop the ensemble."""
    members = ensemble(kind, workdir)
    record: dict[str, Any] = {"kind": kind, "loadavg_before": os.getloadavg()}
    try:
        started = time.monotonic()
        try:
            start_all(members, timeout_s=60.0)
            leader = find_leader(members)
        except Exception as exc:  # noqa: BLE001 - an ensemble that cannot start is a result
            record.update(status="start_failed", error=f"{type(exc).__name__}: {exc}"[:4000],
                          logs=log_excerpt(members))
            return record
        record["start_s"] = time.monotonic() - started
        record["leader_myid"] = leader.myid
        try:
            result = run_event_loop(asyncio.wait_for(
                measure(connect_string(members), leader.connect_string, leader.kill, **kwargs),
                kwargs.get("deadline_s", 30.0) + 60.0))
        except (ConnectionFailed, RequestFailed, asyncio.TimeoutError, OSError) as exc:
            record.update(status="run_failed", error=f"{type(exc).__name__}: {exc}",
                          logs=log_excerpt(members))
            return record
        record.update(status="ok" if result["valid"] else "invalid", result=result)
        if not result["valid"]:
            record["logs"] = log_excerpt(members)
        return record
    finally:
        stop_all(members)
        record["loadavg_after"] = os.getloadavg()


def format_trial(record: dict[str, Any]) -> str:
    if record["status"] in ("start_failed", "run_failed"):
        return f"{record['status'].upper()}: {record.get('error', '')[:300]}"
    res = record["result"]

    def s(key: str) -> str:
        return "-" if res[key] is None else f"{res[key]:.3f}s"
    text = (f"new leader {s('new_leader_s')}, write on old session (was on leader) "
            f"{s('old_session_on_leader_s')}, (was on follower) {s('old_session_on_follower_s')}"
            f", on a new session {s('new_session_s')}")
    if not res["valid"]:
        text += "  INVALID: " + "; ".join(res["invalid_reasons"])[:300]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=KINDS, default="zkpy")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--deadline-s", type=float, default=30.0)
    parser.add_argument("--request-timeout-s", type=float, default=2.0)
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="zkpy-failover-"))
    records = []
    try:
        for repeat in range(args.repeats):
            record = trial(args.kind, tmp / f"r{repeat}", warmup_s=args.warmup_s,
                           deadline_s=args.deadline_s, request_timeout_s=args.request_timeout_s,
                           session_timeout_ms=args.session_timeout_ms)
            records.append(record)
            if not args.json:
                print(f"{args.kind} trial {repeat + 1}: {format_trial(record)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(records, indent=2))
    return 0 if all(record["status"] == "ok" for record in records) else 2


if __name__ == "__main__":
    sys.exit(main())
