"""Four-letter words, formatted as ZooKeeper 3.8 formats them (tools parse srvr and mntr).

Where ZooKeeper's figures come from its JVM (envi's java.* lines) zkpy prints the Python
equivalents under python.* keys; every other line has ZooKeeper's label and value format.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import sys
import time

from jute import OpCode

from zkpy.frontends.zookeeper.connection import CLOSED
from zkpy.runtime.server_metrics import ServerMetrics

VERSION = "3.8.0-zkpy, built on 2026-11-26 00:00 UTC"

# ZooKeeper's default trace mask (ZooTrace), which gtmk reports.
TRACE_MASK = 306

# NIOServerCnxnFactory gives a connection without a session this long before it expires it.
SESSIONLESS_CONNECTION_TIMEOUT_MS = 10_000

# The "lop" names of cons, as ZooKeeper's FinalRequestProcessor records them.
LAST_OP_NAMES = {
    OpCode.ping: "PING", OpCode.createSession: "SESS", OpCode.closeSession: "CLOS",
    OpCode.multi: "MULT", OpCode.multiRead: "MLTR", OpCode.create: "CREA",
    OpCode.create2: "CREA", OpCode.createTTL: "CREA", OpCode.createContainer: "CREA",
    OpCode.delete: "DELE", OpCode.deleteContainer: "DELE", OpCode.setData: "SETD",
    OpCode.reconfig: "RECO", OpCode.setACL: "SETA", OpCode.check: "CHEC", OpCode.sync: "SYNC",
    OpCode.exists: "EXIS", OpCode.getData: "GETD", OpCode.setWatches: "SETW",
    OpCode.setWatches2: "STW2", OpCode.getACL: "GETA", OpCode.getChildren: "GETC",
    OpCode.getChildren2: "GETC", OpCode.getAllChildrenNumber: "GETACN",
    OpCode.checkWatches: "CHKW", OpCode.removeWatches: "REMW", OpCode.getEphemerals: "GETE",
    OpCode.addWatch: "ADDW", OpCode.whoAmI: "HOMI",
}


def _hex(value: int) -> str:
    return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def _java_double(value: float) -> str:
    """A latency average as ZooKeeper prints it: rounded to 4 places, Java's Double.toString
    ("0.0", "1.4286"), which Python's repr matches for such values."""
    return repr(round(float(value), 4))


def _avg_latency(stats) -> float:
    return stats.latency_total_ms / stats.latency_count if stats.latency_count else 0.0


def _latency(stats) -> str:
    return f"{stats.latency_min_ms}/{_java_double(_avg_latency(stats))}/{stats.latency_max_ms}"


def _mode(server) -> str:
    return server.mode()


def znode_count(tree) -> int:
    # ZooKeeper's DataTree holds the root under both "" and "/", and its node count (srvr's
    # Node count, mntr's zk_znode_count) counts it twice: a fresh server reports 5.
    return tree.node_count() + 1


def _java_date(ms: int) -> str:
    """java.util.Date.toString() in the local time zone, e.g. Thu Nov 26 11:05:06 UTC 2026."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(ms / 1000))


def srvr(server) -> str:
    replica, zookeeper = server.replica, server.zookeeper
    return (f"Zookeeper version: {VERSION}\n"
            f"Latency min/avg/max: {_latency(zookeeper.stats)}\n"
            f"Received: {zookeeper.stats.packets_received}\n"
            f"Sent: {zookeeper.stats.packets_sent}\n"
            f"Connections: {len(server.connections)}\n"
            f"Outstanding: {zookeeper.outstanding_requests()}\n"
            f"Zxid: {_hex(replica.tree.last_zxid)}\n"
            f"Mode: {_mode(server)}\n"
            f"Node count: {znode_count(replica.tree)}\n"
            + ("Proposal sizes last/min/max: -1/-1/-1\n" if _mode(server) == "leader" else ""))


def _client_line(server, handler, detailed: bool) -> str:
    replica, zookeeper = server.replica, server.zookeeper
    conn = zookeeper.connections.get(handler.connection_id)
    received = conn.packets_received if conn else 0
    sent = conn.packets_sent if conn else 0
    session_id = conn.session_id if conn else 0
    queued = len(zookeeper.pending.get(session_id, ())) if session_id else 0
    interest = "1"
    if handler.protocol.state == CLOSED:
        # The connection asking (a four-letter word): ZooKeeper has stopped reading it
        # (interest ops 0) and counted its word as a received packet.
        interest = "0"
        received += 1
    line = (f" /{handler.peer_host}:{handler.peer_port}[{interest}]"
            f"(queued={queued},recved={received},sent={sent}")
    if detailed and session_id:
        line += _session_details(replica, conn)
    return line + ")\n"


def _session_details(replica, conn) -> str:
    session = replica.sessions.get(conn.session_id)
    latency = conn.latency
    avg = latency.latency_total_ms // latency.latency_count if latency.latency_count else 0
    details = (f",sid={_hex(conn.session_id)}"
               f",lop={LAST_OP_NAMES.get(conn.last_op, 'NA')}"
               f",est={conn.established_ms}"
               f",to={session.timeout_ms if session else 0}")
    if conn.last_cxid >= 0:
        details += f",lcxid={_hex(conn.last_cxid)}"
    return details + (f",lzxid={_hex(conn.last_zxid)},lresp={conn.last_response_ms}"
                      f",llat={conn.last_latency_ms},minlat={latency.latency_min_ms}"
                      f",avglat={avg},maxlat={latency.latency_max_ms}")


def stat(server) -> str:
    text = srvr(server)
    clients = "".join(_client_line(server, h, False) for h in server.connections.values())
    version, rest = text.split("\n", 1)
    return f"{version}\nClients:\n{clients}\n{rest}"


def cons(server) -> str:
    return "".join(_client_line(server, h, True) for h in server.connections.values()) + "\n"


def state_values(server) -> list[tuple[str, object]]:
    """The server's state as mntr reports it: ZooKeeper's names without the ``zk_`` prefix,
    typed values (floats are ZooKeeper's doubles), in ZooKeeper's order. These are the gauges
    of the Prometheus endpoint."""
    replica, zookeeper = server.replica, server.zookeeper
    tree = replica.tree
    stats = zookeeper.stats
    ephemerals = sum(len(p) for p in tree.ephemerals.values())
    return [
        ("version", VERSION),
        ("server_state", _mode(server)),
        ("ephemerals_count", ephemerals),
        ("num_alive_connections", len(server.connections)),
        ("avg_latency", round(_avg_latency(stats), 4)),
        ("outstanding_requests", zookeeper.outstanding_requests()),
        ("znode_count", znode_count(tree)),
        ("global_sessions", len(replica.sessions.sessions)),
        ("packets_sent", stats.packets_sent),
        ("packets_received", stats.packets_received),
        ("watch_count", zookeeper.watches.watch_count()),
        ("min_latency", stats.latency_min_ms),
        ("max_file_descriptor_count", _max_fds()),
        ("approximate_data_size", tree.approximate_data_bytes()),
        ("open_file_descriptor_count", _open_fds()),
        ("local_sessions", 0),
        ("uptime", server.uptime_ms()),
        ("max_latency", stats.latency_max_ms),
        ("throttled_ops", zookeeper.stats.watch_limit_rejections),
        ("large_requests_rejected", server.large_requests_rejected),
        ("connection_rejected", server.connections_rejected),
        ("request_throttle_wait_count", server.throttle_count),
    ]


def summary_values(metrics: ServerMetrics) -> list[tuple[str, object]]:
    """The measured work's summaries flattened as ZooKeeper's mntr flattens its
    AvgMinMaxCounters: avg (a double to four places), then min, max, cnt and sum as Java longs
    (whole milliseconds for times, rounded)."""
    rows: list[tuple[str, object]] = []
    for name, summary in metrics.summaries():
        values = summary.read()
        rows += [(f"avg_{name}", round(values.average(), 4)),
                 (f"min_{name}", round(values.minimum)),
                 (f"max_{name}", round(values.maximum)),
                 (f"cnt_{name}", values.count),
                 (f"sum_{name}", round(values.total))]
    return rows


def ensemble_values(server) -> list[tuple[str, object]]:
    """An ensemble member's own rows (none when standalone), without the prefix."""
    return [(key.removeprefix("zk_"), value) for key, value in server.ensemble_rows()]


def monitor_values(server) -> list[tuple[str, object]]:
    """Every mntr row, typed: what the AdminServer's monitor command answers and mntr prints."""
    return (state_values(server) + summary_values(server.metrics)
            + ensemble_values(server))


def _mntr_text(value) -> str:
    return _java_double(value) if isinstance(value, float) else str(value)


def mntr(server) -> str:
    """The keys zkpy can fill, with ZooKeeper's names and in its order (no others)."""
    return "".join(f"zk_{name}\t{_mntr_text(value)}\n" for name, value in monitor_values(server))


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _max_fds() -> int:
    try:
        import resource
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError):
        return -1


def conf(server) -> str:
    config = server.config
    data_dir = os.path.abspath(config.data_dir)
    log_dir = os.path.abspath(config.data_log_dir or config.data_dir)
    return (f"clientPort={config.client_port}\n"
            f"secureClientPort=-1\n"
            f"dataDir={data_dir}\n"
            f"dataDirSize={dir_size_bytes(data_dir)}\n"
            f"dataLogDir={log_dir}\n"
            f"dataLogSize={dir_size_bytes(log_dir)}\n"
            f"tickTime={config.tick_ms}\n"
            f"maxClientCnxns={config.max_client_cnxns}\n"
            f"minSessionTimeout={config.min_session_timeout}\n"
            f"maxSessionTimeout={config.max_session_timeout}\n"
            f"clientPortListenBacklog=-1\n"
            f"serverId=0\n")


def dir_size_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# Java's os.arch names for the machines Python calls otherwise.
JAVA_ARCH = {"x86_64": "amd64", "i686": "x86", "i386": "x86"}


def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME
        return "?"


def _memory_mb() -> tuple[int, int, int]:
    """(free, max, total) in MB, standing in for the JVM's heap figures: total is what the
    process holds (VmRSS), max the machine's memory, free what the machine has available."""
    def kb(path: str, key: str) -> int:
        try:
            with open(path) as lines:
                for line in lines:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    total = kb("/proc/self/status", "VmRSS")
    maximum = kb("/proc/meminfo", "MemTotal")
    free = kb("/proc/meminfo", "MemAvailable")
    return free // 1024, maximum // 1024, total // 1024


def envi(server) -> str:
    free_mb, max_mb, total_mb = _memory_mb()
    machine = platform.machine()
    rows = [
        ("zookeeper.version", VERSION),
        ("host.name", socket.gethostname()),
        ("python.version", sys.version.split()[0]),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("os.name", platform.system()),
        ("os.arch", JAVA_ARCH.get(machine, machine)),
        ("os.version", platform.release()),
        ("user.name", user_name()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
        ("os.memory.free", f"{free_mb}MB"),
        ("os.memory.max", f"{max_mb}MB"),
        ("os.memory.total", f"{total_mb}MB"),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in rows)


# wchs, wchc and wchp show ZooKeeper's data-watch table only (DataTree.getWatches and
# getWatchesSummary read dataWatches): child watches count in mntr's zk_watch_count but are not
# listed here. Persistent watches sit in both tables, so they are listed.

def wchs(server) -> str:
    table = server.zookeeper.watches.data
    return (f"{len(table.by_session)} connections watching {len(table.by_path)} paths\n"
            f"Total watches:{table.count()}\n")


def _path_text(path: str | None) -> str:
    # A watch can be set on a null path (addWatch with a null string); Java prints "null".
    return "null" if path is None else path


def _sorted_paths(paths) -> list[str]:
    return sorted(_path_text(path) for path in paths)


def wchc(server) -> str:
    table = server.zookeeper.watches.data
    return "".join(f"{_hex(sid)}\n" + "".join(f"\t{p}\n" for p in _sorted_paths(owned))
                   for sid, owned in sorted(table.by_session.items())) + "\n"


def wchp(server) -> str:
    table = server.zookeeper.watches.data
    by_path = sorted(((_path_text(path), sids) for path, sids in table.by_path.items()),
                     key=lambda item: item[0])
    return "".join(f"{path}\n" + "".join(f"\t{_hex(s)}\n" for s in sorted(sids))
                   for path, sids in by_path) + "\n"


def _expiry_sets(title: str, buckets: dict[int, list[str]], count: int) -> list[str]:
    """ZooKeeper's ExpiryQueue.dump: the sets by expiry time, then their members."""
    lines = [f"{title} Sets ({len(buckets)})/({count}):"]
    for expiry_ms in sorted(buckets):
        members = buckets[expiry_ms]
        lines.append(f"{len(members)} expire at {_java_date(expiry_ms)}:")
        lines.extend(f"\t{member}" for member in members)
    return lines


def _connection_expiry_ms(server, conn) -> int:
    """A connection expires with its session; one without a session after ZooKeeper's
    sessionless-connection timeout, rounded up to a tick as its expiry queue rounds it."""
    session = server.replica.sessions.get(conn.session_id) if conn.session_id else None
    if session is not None:
        return session.expires_at_ms
    tick = server.config.tick_ms
    return ((conn.established_ms + SESSIONLESS_CONNECTION_TIMEOUT_MS) // tick + 1) * tick


def dump(server) -> str:
    replica, zookeeper = server.replica, server.zookeeper
    sessions = replica.sessions.sessions
    session_buckets: dict[int, list[str]] = {}
    for session in sorted(sessions.values(), key=lambda s: s.session_id):
        session_buckets.setdefault(session.expires_at_ms, []).append(_hex(session.session_id))
    lines = ["SessionTracker dump:"]
    lines += _expiry_sets("Session", session_buckets, len(sessions))
    ephemerals = replica.tree.ephemerals
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(ephemerals)}):")
    for session_id, owned in sorted(ephemerals.items()):
        lines.append(f"{_hex(session_id)}:")
        lines.extend(f"\t{p}" for p in sorted(owned))
    connection_buckets: dict[int, list[str]] = {}
    for handler in server.connections.values():
        conn = zookeeper.connections.get(handler.connection_id)
        if conn is None:
            continue
        connection_buckets.setdefault(_connection_expiry_ms(server, conn), []).append(
            f"ip: /{handler.peer_host}:{handler.peer_port} sessionId: {_hex(conn.session_id)}")
    lines.append("Connections dump:")
    lines += _expiry_sets("Connections", connection_buckets,
                          sum(len(m) for m in connection_buckets.values()))
    return "\n".join(lines) + "\n"


def dirs(server) -> str:
    config = server.config
    return (f"datadir_size: {dir_size_bytes(os.path.abspath(config.data_dir))}\n"
            f"logdir_size: {dir_size_bytes(os.path.abspath(config.data_log_dir or config.data_dir))}\n")


def crst(server) -> str:
    # ServerCnxn.resetStats: packet counts, latencies and the last-operation fields.
    for conn in server.zookeeper.connections.values():
        conn.packets_received = 0
        conn.packets_sent = 0
        conn.last_op = None
        conn.last_cxid = -1
        conn.last_zxid = -1
        conn.last_response_ms = 0
        conn.last_latency_ms = 0
        conn.latency.reset()
    return "Connection stats reset.\n"


def srst(server) -> str:
    # ServerStats.reset, which resets ZooKeeper's metrics too (mntr's summaries start over).
    server.zookeeper.stats.reset()
    server.metrics.reset()
    return "Server stats reset.\n"


COMMANDS = {
    "ruok": lambda server: "imok",
    "srvr": srvr,
    "stat": stat,
    "mntr": mntr,
    "conf": conf,
    "cons": cons,
    "crst": crst,
    "srst": srst,
    "envi": envi,
    "wchs": wchs,
    "wchc": wchc,
    "wchp": wchp,
    "dump": dump,
    "dirs": dirs,
    "isro": lambda server: "ro" if server.read_only() else "rw",
    "gtmk": lambda server: str(TRACE_MASK),
}


NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"
_NEED_SERVING = frozenset(("srvr", "stat", "mntr", "cons", "wchs", "wchc", "wchp", "dump"))


def answer(server, word: str) -> str:
    if word not in server.config.four_letter_words or word not in COMMANDS:
        return f"{word} is not executed because it is not in the whitelist.\n"
    if word in _NEED_SERVING and not server.serving():
        return NOT_SERVING
    # ZooKeeper counts a four-letter word as a received packet and its answer as a sent one.
    stats = server.zookeeper.stats
    stats.packets_received += 1
    text = COMMANDS[word](server)
    stats.packets_sent += 1
    return text
