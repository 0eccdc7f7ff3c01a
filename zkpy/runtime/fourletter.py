"""Four-letter words, formatted as ZooKeeper 3.8 formats them (tools parse srvr and mntr)."""

from __future__ import annotations

import os
import platform
import socket
import sys

VERSION = "3.8.0-zkpy, built on 2026-11-26 00:00 UTC"


def _hex(value: int) -> str:
    return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def _latency(stats) -> str:
    avg = stats.latency_total_ms / stats.latency_count if stats.latency_count else 0.0
    return f"{stats.latency_min_ms}/{avg:.4f}/{stats.latency_max_ms}"


def _mode(server) -> str:
    return "standalone"


def srvr(server) -> str:
    core = server.core
    return (f"Zookeeper version: {VERSION}\n"
            f"Latency min/avg/max: {_latency(core.stats)}\n"
            f"Received: {core.stats.packets_received}\n"
            f"Sent: {core.stats.packets_sent}\n"
            f"Connections: {len(server.connections)}\n"
            f"Outstanding: {core.outstanding_requests()}\n"
            f"Zxid: {_hex(core.tree.last_zxid)}\n"
            f"Mode: {_mode(server)}\n"
            f"Node count: {core.tree.node_count()}\n")


def _client_line(server, handler, detailed: bool) -> str:
    conn = server.core.connections.get(handler.connection_id)
    received = conn.packets_received if conn else 0
    sent = conn.packets_sent if conn else 0
    line = f" /{handler.peer_host}:{handler.peer_port}[1](queued=0,recved={received},sent={sent}"
    if detailed and conn is not None and conn.session_id:
        session = server.core.sessions.get(conn.session_id)
        timeout = session.timeout_ms if session else 0
        line += f",sid={_hex(conn.session_id)},lop=NA,est={conn.established_ms},to={timeout}"
    return line + ")\n"


def stat(server) -> str:
    text = srvr(server)
    clients = "".join(_client_line(server, h, False) for h in server.connections.values())
    version, rest = text.split("\n", 1)
    return f"{version}\nClients:\n{clients}\n{rest}"


def cons(server) -> str:
    return "".join(_client_line(server, h, True) for h in server.connections.values()) + "\n"


def mntr(server) -> str:
    core = server.core
    tree = core.tree
    stats = core.stats
    avg = stats.latency_total_ms / stats.latency_count if stats.latency_count else 0.0
    ephemerals = sum(len(p) for p in tree.ephemerals.values())
    rows = [
        ("zk_version", VERSION),
        ("zk_server_state", _mode(server)),
        ("zk_ephemerals_count", ephemerals),
        ("zk_num_alive_connections", len(server.connections)),
        ("zk_avg_latency", f"{avg:.4f}"),
        ("zk_outstanding_requests", core.outstanding_requests()),
        ("zk_znode_count", tree.node_count()),
        ("zk_global_sessions", len(core.sessions.sessions)),
        ("zk_packets_sent", stats.packets_sent),
        ("zk_packets_received", stats.packets_received),
        ("zk_watch_count", core.watches.watch_count()),
        ("zk_min_latency", stats.latency_min_ms),
        ("zk_max_latency", stats.latency_max_ms),
        ("zk_approximate_data_size", tree.approximate_data_bytes()),
        ("zk_uptime", server.uptime_ms()),
        ("zk_local_sessions", 0),
        ("zk_open_file_descriptor_count", _open_fds()),
        ("zk_max_file_descriptor_count", _max_fds()),
        ("zk_fsync_threshold_exceed_count", 0),
        ("zk_last_proposal_size", -1),
        ("zk_max_proposal_size", -1),
        ("zk_min_proposal_size", -1),
        ("zk_txn_count", server.txn_count),
        ("zk_snapshot_count", server.snapshot_count),
        ("zk_connection_rejected", server.connections_rejected),
        ("zk_large_requests_rejected", server.large_requests_rejected),
    ]
    return "".join(f"{key}\t{value}\n" for key, value in rows)


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
            f"dataDirSize={_dir_size(data_dir)}\n"
            f"dataLogDir={log_dir}\n"
            f"dataLogSize={_dir_size(log_dir)}\n"
            f"tickTime={config.tick_ms}\n"
            f"maxClientCnxns={config.max_client_cnxns}\n"
            f"minSessionTimeout={config.min_session_timeout}\n"
            f"maxSessionTimeout={config.max_session_timeout}\n"
            f"clientPortListenBacklog=-1\n"
            f"serverId=0\n")


def _dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def envi(server) -> str:
    rows = [
        ("zookeeper.version", VERSION),
        ("host.name", socket.gethostname()),
        ("python.version", sys.version.split()[0]),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", os.environ.get("USER", "")),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
        ("os.memory.free", "NA"),
        ("os.memory.max", "NA"),
        ("os.memory.total", "NA"),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in rows)


def wchs(server) -> str:
    watches = server.core.watches
    sessions = set(watches.data.by_session) | set(watches.child.by_session)
    paths = set(watches.data.by_path) | set(watches.child.by_path)
    return (f"{len(sessions)} connections watching {len(paths)} paths\n"
            f"Total watches:{watches.watch_count()}\n")


def wchc(server) -> str:
    watches = server.core.watches
    by_session: dict[int, set[str]] = {}
    for table in (watches.data, watches.child):
        for session_id, owned in table.by_session.items():
            by_session.setdefault(session_id, set()).update(owned)
    return "".join(f"{_hex(sid)}\n" + "".join(f"\t{p}\n" for p in sorted(owned))
                   for sid, owned in sorted(by_session.items())) + "\n"


def wchp(server) -> str:
    watches = server.core.watches
    by_path: dict[str, set[int]] = {}
    for table in (watches.data, watches.child):
        for path, watchers in table.by_path.items():
            by_path.setdefault(path, set()).update(watchers)
    return "".join(f"{path}\n" + "".join(f"\t{_hex(s)}\n" for s in sorted(sids))
                   for path, sids in sorted(by_path.items())) + "\n"


def dump(server) -> str:
    core = server.core
    sessions = core.sessions.sessions
    lines = ["SessionTracker dump:", f"Session Sets ({len(sessions)})/({len(sessions)}):"]
    for session in sorted(sessions.values(), key=lambda s: s.expires_at_ms):
        lines.append(f"{_hex(session.session_id)}")
    ephemerals = core.tree.ephemerals
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(ephemerals)}):")
    for session_id, owned in sorted(ephemerals.items()):
        lines.append(f"{_hex(session_id)}:")
        lines.extend(f"\t{p}" for p in sorted(owned))
    lines.append("Connections with Ephemerals:")
    return "\n".join(lines) + "\n"


def dirs(server) -> str:
    config = server.config
    return (f"datadir_size: {_dir_size(os.path.abspath(config.data_dir))}\n"
            f"logdir_size: {_dir_size(os.path.abspath(config.data_log_dir or config.data_dir))}\n")


def crst(server) -> str:
    for conn in server.core.connections.values():
        conn.packets_received = 0
        conn.packets_sent = 0
    return "Connection stats reset.\n"


def srst(server) -> str:
    server.core.stats.reset()
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
    "isro": lambda server: "rw",
}


def answer(server, word: str) -> str:
    if word not in server.config.four_letter_words or word not in COMMANDS:
        return f"{word} is not executed because it is not in the whitelist.\n"
    return COMMANDS[word](server)
