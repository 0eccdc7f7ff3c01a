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

    python -m zkpy.bench.failover --kind zkpy --repeats 3 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from jute import records as r
from jute.constants import CreateMode, Err, OpCode, Perms
from zkpy.bench import loadgen

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

perf_counter = time.perf_counter
_LEN = struct.Struct(">i")
_REQ = struct.Struct(">iii")
_REPLY = struct.Struct(">iqi")
_OPEN_ACL = [r.ACL(Perms.ALL, r.Id("world", "anyone"))]
TIMINGS = ("old_session_on_leader_s", "old_session_on_follower_s", "new_session_s",
           "new_leader_s")


class ConnectionFailed(Exception):
    pass


def _err_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return str(code)


class Conn(asyncio.Protocol):
    """One connection carrying one session (a new one, or an existing one re-attached)."""

    def __init__(self, session_id: int, passwd: bytes, last_zxid: int, timeout_ms: int) -> None:
        self.request = r.ConnectRequest(protocol_version=0, last_zxid_seen=last_zxid,
                                        timeout_ms=timeout_ms, session_id=session_id,
                                        passwd=passwd, read_only=False)
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future] = {}
        self.next_xid = 1
        self.max_zxid = last_zxid
        self.closed = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        loadgen.send_handshake(transport, self.request)

    def connection_lost(self, exc) -> None:
        self.closed = True
        why = f"connection closed ({exc or 'by the server'})"
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionFailed(why))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionFailed(why))
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        off = 0
        while len(buf) - off >= 4:
            end = off + 4 + _LEN.unpack_from(buf, off)[0]
            if end > len(buf):
                break
            payload = buf[off + 4:end]
            off = end
            if not self.handshake.done():
                try:
                    self.handshake.set_result(r.ConnectResponse.decode_from(payload, 0)[0])
                except Exception as exc:  # noqa: BLE001
                    self.handshake.set_exception(ConnectionFailed(f"bad ConnectResponse: {exc}"))
                continue
            xid, zxid, err = _REPLY.unpack_from(payload, 0)
            if zxid > self.max_zxid:
                self.max_zxid = zxid
            future = self.pending.pop(xid, None)
            if future is not None and not future.done():
                future.set_result((err, payload[16:]))
        self.buf = buf[off:]

    def call(self, opcode: int, body: bytes = b"") -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(ConnectionFailed("connection closed"))
            return future
        xid = self.next_xid
        self.next_xid += 1
        self.pending[xid] = future
        self.transport.write(_REQ.pack(len(body) + 8, xid, opcode) + body)
        return future

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


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
                last_zxid: int, timeout_ms: int, connect_timeout_s: float) -> tuple[Conn, Any]:
    loop = asyncio.get_running_loop()
    host, port = hosts[index % len(hosts)]
    try:
        _, conn = await asyncio.wait_for(loop.create_connection(
            lambda: Conn(session_id, passwd, last_zxid, timeout_ms), host, port),
            connect_timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ConnectionFailed(f"cannot connect: {type(exc).__name__} {exc}") from exc
    try:
        response = await asyncio.wait_for(conn.handshake, connect_timeout_s)
    except asyncio.TimeoutError as exc:
        conn.close()
        raise ConnectionFailed(f"no ConnectResponse within {connect_timeout_s:g} s") from exc
    except ConnectionFailed:
        conn.close()
        raise
    return conn, response


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
        self.conn: Conn | None = None
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
                conn, response = await _open(
                    self.hosts, self.index, self.session_id, self.passwd,
                    self.conn.max_zxid if self.conn is not None else 0,
                    int(s["session_timeout_ms"]), s["connect_timeout_s"])
            except ConnectionFailed as exc:
                self.trial.event(self.name, f"{self.host_label()}: {exc}")
                self.index += 1
                await asyncio.sleep(s["retry_pause_s"])
                continue
            if response.timeout_ms <= 0:
                conn.close()
                self.trial.event(self.name, f"{self.host_label()}: session expired")
                self.expired = True
                raise ConnectionFailed("session expired")
            if self.session_id == 0:
                self.session_id, self.passwd = response.session_id, response.passwd
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
            if self.conn is None or self.conn.closed:
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
                self.trial.event(self.name, f"{self.host_label()}: {exc}")
                self._drop()
                continue
            now = perf_counter()
            if err:
                self.trial.event(self.name, f"{self.host_label()}: setData {_err_name(err)}")
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
            self.conn.close()
        self.index += 1

    async def close(self) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        try:
            await asyncio.wait_for(conn.call(OpCode.closeSession), 2.0)
        except (asyncio.TimeoutError, ConnectionFailed):
            pass
        conn.close()


async def _new_session_prober(trial: Trial, hosts: list[tuple[str, int]], start: int, path: str,
                              settings: dict[str, float], stop: asyncio.Event) -> float | None:
    """From the kill on: open a new session on the members in turn and write through it."""
    index = start
    body = _set_body(path, b"n" * 16)
    while not stop.is_set():
        label = "%s:%d" % hosts[index % len(hosts)]
        try:
            conn, response = await _open(hosts, index, 0, bytes(16), 0,
                                         int(settings["session_timeout_ms"]),
                                         settings["connect_timeout_s"])
        except ConnectionFailed as exc:
            trial.event("new-session", f"{label}: {exc}")
            index += 1
            await asyncio.sleep(settings["retry_pause_s"])
            continue
        try:
            if response.timeout_ms <= 0:
                trial.event("new-session", f"{label}: session rejected")
                index += 1
                continue
            try:
                err, _ = await asyncio.wait_for(conn.call(OpCode.setData, body),
                                                settings["request_timeout_s"])
            except asyncio.TimeoutError:
                trial.event("new-session", f"{label}: setData unanswered for "
                                           f"{settings['request_timeout_s']:g} s")
                index += 1
                continue
            except ConnectionFailed as exc:
                trial.event("new-session", f"{label}: {exc}")
                index += 1
                await asyncio.sleep(settings["retry_pause_s"])
                continue
            if err:
                trial.event("new-session", f"{label}: setData {_err_name(err)}")
                index += 1
                await asyncio.sleep(settings["retry_pause_s"])
                continue
            done = perf_counter()
            trial.event("new-session", f"{label}: first write on a new session")
            try:
                await asyncio.wait_for(conn.call(OpCode.closeSession), 2.0)
            except (asyncio.TimeoutError, ConnectionFailed):
                pass
            return done
        finally:
            conn.close()
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
            if "Mode: leader" in text:
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
    addresses = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        addresses.append((host or "127.0.0.1", int(port)))
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
    conn, _ = await _open(addresses, leader_index, 0, bytes(16), 0, session_timeout_ms, 10.0)
    try:
        for path in (base, f"{base}/on-leader", f"{base}/on-follower", f"{base}/new"):
            err, _ = await asyncio.wait_for(conn.call(OpCode.create, r.CreateRequest.encode(
                r.CreateRequest(path, b"", _OPEN_ACL, CreateMode.PERSISTENT))), 10.0)
            if err:
                raise ConnectionFailed(f"setup: create {path}: {_err_name(err)}")
        await asyncio.wait_for(conn.call(OpCode.closeSession), 5.0)
    finally:
        conn.close()

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


def _run_loop(coro):
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def log_excerpt(members, lines: int = 12) -> dict[str, str]:
    """The last lines of each member's log, without traceback bodies."""
    excerpt = {}
    for member in members:
        try:
            text = member.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        kept = [line for line in text if line.strip() and not line.startswith((" ", "\t"))
                and not line.startswith(("Traceback", "asyncio.", "handle:", "Exception in"))]
        excerpt[f"member{member.myid} (port {member.port})"] = "\n".join(kept[-lines:])
    return excerpt


def find_leader(members, timeout_s: float = 30.0):
    from tests.support.servers import four_letter_word
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for member in members:
            try:
                if "Mode: leader" in four_letter_word(member.port, "srvr", timeout_s=1.0):
                    return member
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"no member reported Mode: leader within {timeout_s:g} s")


def trial(kind: str, workdir: Path, **kwargs: Any) -> dict[str, Any]:
    """Start a fresh 3-node ensemble of ``kind``, measure one failover, stop the ensemble."""
    from tests.support.servers import connect_string, ensemble, start_all

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
            result = _run_loop(asyncio.wait_for(
                measure(connect_string(members), leader.connect_string, leader.kill, **kwargs),
                kwargs.get("deadline_s", 30.0) + 60.0))
        except (ConnectionFailed, asyncio.TimeoutError, OSError) as exc:
            record.update(status="run_failed", error=f"{type(exc).__name__}: {exc}",
                          logs=log_excerpt(members))
            return record
        record.update(status="ok" if result["valid"] else "invalid", result=result)
        if not result["valid"]:
            record["logs"] = log_excerpt(members)
        return record
    finally:
        for member in members:
            try:
                member.stop()
            except Exception:  # noqa: BLE001
                pass
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
    parser = argparse.ArgumentParser(prog="python -m zkpy.bench.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("zookeeper", "zkpy"), default="zkpy")
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
    return 0 if all(r["status"] == "ok" for r in records) else 2


if __name__ == "__main__":
    sys.exit(main())
