"""``zkpy status HOST:PORT[,HOST:PORT...]``: the health of an ensemble, from its four-letter words.

Each member is asked ``srvr`` (ZooKeeper's default 4lw whitelist has it) and, where the whitelist
allows, ``mntr``; the answers are summarised as one JSON document::

    {"leader": "10.0.0.1:2181", "followers": [...], "observers": [...],
     "clusterState": "healthy" | "degraded" | "down", "quorum": true,
     "leaderChangesLastHour": 0, "p99RequestLatencyMs": 3, "healthyMembers": 3,
     "members": [{"address", "mode", "zxid", "latency": {"min", "avg", "max", "p99"}, ...}]}

Works against zkpy and Apache ZooKeeper alike. A standalone server is its own leader and always
has a quorum. ``quorum`` is true when a leader is serving with more than half of the voting
members (the leader's ``quorum_size`` and ``synced_followers`` when ``mntr`` is allowed, else
the members that answered). ``healthy`` means every member given is serving and there is a
quorum, ``degraded`` a quorum with some members down, ``down`` no quorum.

``p99RequestLatencyMs`` is the largest p99 of the members' read and update latencies when their
``mntr`` reports percentiles (ZooKeeper's ``p99_readlatency``/``p99_updatelatency``); otherwise
it falls back to the members' maximum latency, an upper bound, and ``p99IsUpperBound`` says so.
``leaderChangesLastHour`` is 0 when the leader has led for an hour or more (``leader_uptime``),
at least 1 when it has led for less; a single look cannot count changes that came and went, so
a long-lived observer (the AdminServer's ``cluster_status``) adds the changes it saw itself.

The exit status is 0 when the cluster is healthy, 1 when degraded or down, 2 on a usage error.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections import deque

SERVING_MODES = ("leader", "follower", "observer", "standalone", "read-only")
HOUR_MS = 3_600_000
DEFAULT_PORT = 2181


# -- parsing the four-letter words ------------------------------------------------------------

def parse_srvr(text: str) -> dict:
    """The fields of a ``srvr`` (or ``stat``) reply; {} when the server refused the word."""
    fields: dict = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Zookeeper version":
            fields["version"] = value
        elif key == "Latency min/avg/max":
            parts = value.split("/")
            if len(parts) == 3:
                fields["latency"] = {"min": _number(parts[0]), "avg": _number(parts[1]),
                                     "max": _number(parts[2])}
        elif key == "Mode":
            fields["mode"] = value
        elif key == "Zxid":
            fields["zxid"] = value
        elif key in ("Received", "Sent", "Connections", "Outstanding", "Node count"):
            fields[key.lower().replace(" ", "_")] = _number(value)
    return fields


def parse_mntr(text: str) -> dict:
    """``mntr``'s tab-separated rows as {name without zk_: number or text}."""
    values: dict = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep and key.startswith("zk_"):
            values[key[3:]] = _number(value.strip())
    return values


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


# -- one member ---------------------------------------------------------------------------------

def member_from_replies(address: str, srvr: str | None, mntr: str | None,
                        error: str | None = None) -> dict:
    """A member's entry from its ``srvr`` and ``mntr`` replies (None: not answered)."""
    if srvr is None:
        return {"address": address, "mode": "unreachable", "zxid": None, "latency": None,
                "error": error or "no answer"}
    fields = parse_srvr(srvr)
    if "mode" not in fields:
        reason = srvr.strip() or "empty srvr reply"
        if "not currently serving" in srvr:
            mode = "not-serving"
        elif "whitelist" in srvr:
            mode = "unknown"
        else:
            mode = "error"
        return {"address": address, "mode": mode, "zxid": None, "latency": None, "error": reason}
    monitor = parse_mntr(mntr) if mntr else {}
    latency = dict(fields.get("latency") or {"min": None, "avg": None, "max": None})
    p99s = [monitor[k] for k in ("p99_readlatency", "p99_updatelatency")
            if isinstance(monitor.get(k), (int, float))]
    latency["p99"] = max(p99s) if p99s else None
    member = {
        "address": address,
        "mode": fields["mode"],
        "zxid": fields.get("zxid"),
        "latency": latency,
        "version": fields.get("version"),
        "connections": fields.get("connections"),
        "outstanding": fields.get("outstanding"),
        "nodeCount": fields.get("node_count"),
        "packetsReceived": fields.get("received"),
        "packetsSent": fields.get("sent"),
        "error": None,
    }
    for source, target in (("quorum_size", "quorumSize"), ("synced_followers", "syncedFollowers"),
                           ("leader_uptime", "leaderUptimeMs"), ("uptime", "uptimeMs"),
                           ("server_state", "serverState")):
        if source in monitor:
            member[target] = monitor[source]
    return member


# -- the summary ----------------------------------------------------------------------------------

def summarize(members: list[dict], observed_leader_changes: int = 0) -> dict:
    """The cluster's state from its members' entries (see the module docstring)."""
    leaders = [m for m in members if m["mode"] == "leader"]
    standalone = [m for m in members if m["mode"] == "standalone"]
    leader = leaders[0] if leaders else (standalone[0] if standalone else None)
    followers = [m["address"] for m in members if m["mode"] == "follower"]
    observers = [m["address"] for m in members if m["mode"] == "observer"]
    healthy = [m for m in members if m["mode"] in SERVING_MODES]

    if leader is None:
        quorum = False
    elif leader["mode"] == "standalone":
        quorum = True
    else:
        voters = leader.get("quorumSize")
        if not isinstance(voters, int) or voters <= 0:
            voters = sum(1 for m in members if m["mode"] != "observer")
        synced = leader.get("syncedFollowers")
        serving_voters = 1 + (synced if isinstance(synced, int) else len(followers))
        quorum = serving_voters * 2 > voters

    if not quorum:
        state = "down"
    elif len(healthy) == len(members):
        state = "healthy"
    else:
        state = "degraded"

    changes = observed_leader_changes
    if leader is not None and leader["mode"] == "leader":
        led_ms = leader.get("leaderUptimeMs")
        if isinstance(led_ms, (int, float)) and led_ms < HOUR_MS:
            changes = max(changes, 1)

    p99s = [m["latency"]["p99"] for m in healthy
            if m.get("latency") and m["latency"].get("p99") is not None]
    upper_bound = not p99s
    if upper_bound:
        p99s = [m["latency"]["max"] for m in healthy
                if m.get("latency") and isinstance(m["latency"].get("max"), (int, float))]
    return {
        "leader": leader["address"] if leader else None,
        "followers": followers,
        "observers": observers,
        "clusterState": state,
        "quorum": quorum,
        "leaderChangesLastHour": changes,
        "p99RequestLatencyMs": max(p99s) if p99s else 0,
        "p99IsUpperBound": upper_bound,
        "healthyMembers": len(healthy),
        "members": members,
    }


class LeaderHistory:
    """Leader changes seen by a long-lived observer, over the last hour."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._changes: deque[int] = deque(maxlen=max_entries)
        self._last: str | None = None

    def observe(self, leader: str | None, now_ms: int) -> int:
        if leader is not None and self._last is not None and leader != self._last:
            self._changes.append(now_ms)
        if leader is not None:
            self._last = leader
        while self._changes and self._changes[0] < now_ms - HOUR_MS:
            self._changes.popleft()
        return len(self._changes)


# -- asking the members ---------------------------------------------------------------------------

def split_address(address: str) -> tuple[str, int]:
    address = address.strip()
    if address.startswith("["):  # [::1]:2181
        host, _, rest = address[1:].partition("]")
        port = rest.lstrip(":")
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host:
        raise ValueError(f"{address!r} has no host")
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"{address!r}: {port!r} is not a port") from None
    if not 0 < number < 65536:
        raise ValueError(f"{address!r}: {number} is not a TCP port")
    return host, number


def four_letter_word(host: str, port: int, word: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(word.encode())
        chunks = []
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > 4 << 20:
                break
    return b"".join(chunks).decode(errors="replace")


async def four_letter_word_async(host: str, port: int, word: str, timeout_s: float) -> str:
    async def ask() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(word.encode())
            await writer.drain()
            chunks: list[bytes] = []
            size = 0
            while size <= 4 << 20:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks).decode(errors="replace")
        finally:
            writer.close()

    return await asyncio.wait_for(ask(), timeout_s)


def probe(address: str, timeout_s: float = 2.0) -> dict:
    try:
        host, port = split_address(address)
    except ValueError as error:
        return member_from_replies(address, None, None, str(error))
    try:
        srvr = four_letter_word(host, port, "srvr", timeout_s)
    except OSError as error:
        return member_from_replies(address, None, None, f"{type(error).__name__}: {error}")
    mntr = None
    if "Mode:" in srvr:
        try:
            mntr = four_letter_word(host, port, "mntr", timeout_s)
        except OSError:
            mntr = None
    return member_from_replies(address, srvr, mntr)


async def probe_async(address: str, timeout_s: float = 2.0) -> dict:
    try:
        host, port = split_address(address)
    except ValueError as error:
        return member_from_replies(address, None, None, str(error))
    try:
        srvr = await four_letter_word_async(host, port, "srvr", timeout_s)
    except (OSError, asyncio.TimeoutError) as error:
        return member_from_replies(address, None, None,
                                   f"{type(error).__name__}: {error}".rstrip(": "))
    mntr = None
    if "Mode:" in srvr:
        try:
            mntr = await four_letter_word_async(host, port, "mntr", timeout_s)
        except (OSError, asyncio.TimeoutError):
            mntr = None
    return member_from_replies(address, srvr, mntr)


def cluster_status(addresses: list[str], timeout_s: float = 2.0) -> dict:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(addresses)))) as pool:
        members = list(pool.map(lambda a: probe(a, timeout_s), addresses))
    return summarize(members)


def parse_addresses(arguments: list[str]) -> list[str]:
    addresses: list[str] = []
    for argument in arguments:
        for part in argument.split(","):
            part = part.strip()
            if part:
                # A chroot suffix of a connect string (host:port/app) is not part of the address.
                addresses.append(part.split("/", 1)[0])
    return addresses


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "status", help="an ensemble's health as JSON",
        description="Print the health of a ZooKeeper/zkpy ensemble as JSON, from its 4lw "
                    "(srvr, and mntr where allowed). Exit 0 healthy, 1 degraded or down.")
    parser.add_argument("servers", nargs="+", help="HOST:PORT[,HOST:PORT...] (a connect string)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds to wait for each member (default 2)")
    parser.set_defaults(run=lambda args: run(args, parser))


def run(args, parser) -> int:
    addresses = parse_addresses(args.servers)
    if not addresses:
        parser.error("no server address given")
    for address in addresses:
        try:
            split_address(address)
        except ValueError as error:
            parser.error(str(error))
    status = cluster_status(addresses, args.timeout)
    json.dump(status, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if status["clusterState"] == "healthy" else 1
