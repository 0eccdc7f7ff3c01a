"""ZooKeeper 3.8's AdminServer commands: ``/commands`` and ``/commands/<name>[?arg=value]``.

As ZooKeeper's Jetty AdminServer answers: ``GET /commands`` lists the commands as links,
``GET /commands/<name>`` runs one and answers pretty-printed JSON with ZooKeeper's field names
plus ``command`` and ``error`` (an unknown command is ``error: "Unknown command: <name>"``,
still 200, as in ZooKeeper). Every command answers to its primary name and its 4lw alias
(``/commands/srvr`` is ``server_stats``). zkpy adds ``cluster_status`` (alias ``status``, and
``GET /status``): the ensemble's health as ``zkpy status`` prints it.

Figures come from the server's objects (``monitor`` from ``fourletter.monitor_values``, the
rows mntr prints); directory sizes are summed in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from typing import Awaitable, Callable, NamedTuple

import structlog
from aiohttp import web

from zkpy import status as cluster
from zkpy.runtime import fourletter
from zkpy.runtime.http.endpoint import Routes, client_address, json_response, text_response
from zkpy.runtime.http.zkvalues import java_long, latency_ms

log = structlog.get_logger("zkpy.admin")

DEFAULT_TRACE_MASK = fourletter.TRACE_MASK  # ZooTrace's default
STATUS_CACHE_S = 1.0


# -- the server's figures in ZooKeeper's shapes ---------------------------------------------------

def _data_dirs(server) -> tuple[str, str]:
    config = server.config
    return (os.path.abspath(config.data_dir),
            os.path.abspath(config.data_log_dir or config.data_dir))


async def _dir_sizes(server) -> tuple[int, int]:
    data_dir, log_dir = _data_dirs(server)
    loop = asyncio.get_running_loop()
    data_size = await loop.run_in_executor(None, fourletter.dir_size_bytes, data_dir)
    log_size = data_size if log_dir == data_dir else await loop.run_in_executor(
        None, fourletter.dir_size_bytes, log_dir)
    return data_size, log_size


def _data_watches(server):
    """ZooKeeper's wchs/wchc/wchp (and their JSON) list the data-watch table only, as the
    4lw do (see fourletter)."""
    return server.zookeeper.watches.data


def _connection_info(server, handler, full: bool) -> dict:
    replica, zookeeper = server.replica, server.zookeeper
    conn = zookeeper.connections.get(handler.connection_id)
    session_id = conn.session_id if conn is not None else 0
    info = {
        "remote_socket_address": f"{handler.peer_host}:{handler.peer_port}",
        "interest_ops": 0 if handler.closed else 1,
        "outstanding_requests": len(zookeeper.pending.get(session_id, ())) if session_id else 0,
        "packets_received": conn.packets_received if conn else 0,
        "packets_sent": conn.packets_sent if conn else 0,
    }
    if full:
        session = replica.sessions.get(session_id) if session_id else None
        latency = getattr(conn, "latency", None)
        count = latency.latency_count if latency is not None else 0
        info.update({
            "session_id": java_long(session_id),
            "last_operation": fourletter.LAST_OP_NAMES.get(getattr(conn, "last_op", None), "NA"),
            "established": conn.established_ms if conn else 0,
            "session_timeout": session.timeout_ms if session else 0,
            "last_cxid": getattr(conn, "last_cxid", -1),
            "last_zxid": conn.last_zxid if conn else -1,
            "last_response_time": getattr(conn, "last_response_ms", 0),
            "last_latency": getattr(conn, "last_latency_ms", 0),
            "min_latency": latency.latency_min_ms if latency is not None else 0,
            "avg_latency": latency.latency_total_ms // count if count else 0,
            "max_latency": latency.latency_max_ms if latency is not None else 0,
        })
    return info


# -- commands -----------------------------------------------------------------------------------

class Context(NamedTuple):
    server: object
    admin: "AdminCommands"
    kwargs: dict


async def cmd_ruok(ctx: Context) -> dict:
    return {}


async def cmd_server_stats(ctx: Context) -> dict:
    server = ctx.server
    replica, zookeeper = server.replica, server.zookeeper
    low, avg, high = latency_ms(zookeeper.stats)
    data_size, log_size = await _dir_sizes(server)
    response_stats = {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}
    mode = server.mode()
    return {
        "version": fourletter.VERSION,
        "read_only": mode == "read-only",
        "server_stats": {
            "packets_sent": zookeeper.stats.packets_sent,
            "packets_received": zookeeper.stats.packets_received,
            "fsync_threshold_exceed_count": 0,
            "client_response_stats": dict(response_stats),
            "data_dir_size": data_size,
            "log_dir_size": log_size,
            "provider_null": False,
            "server_state": mode,
            "last_processed_zxid": replica.tree.last_zxid,
            "outstanding_requests": zookeeper.outstanding_requests(),
            "avg_latency": avg,
            "max_latency": high,
            "min_latency": low,
            "num_alive_client_connections": len(server.connections),
            "uptime": server.uptime_ms(),
            "auth_failed_count": 0,
            "non_mtlsremote_conn_count": 0,
            "non_mtlslocal_conn_count": 0,
        },
        "client_response": dict(response_stats),
        "node_count": fourletter.znode_count(replica.tree),
    }


async def cmd_stats(ctx: Context) -> dict:
    response = await cmd_server_stats(ctx)
    response["connections"] = [_connection_info(ctx.server, h, False)
                               for h in list(ctx.server.connections.values())]
    response["secure_connections"] = []
    return response


async def cmd_monitor(ctx: Context) -> dict:
    # mntr's rows, without the zk_ prefix, typed: what ZooKeeper's JSON monitor holds.
    return dict(fourletter.monitor_values(ctx.server))


async def cmd_configuration(ctx: Context) -> dict:
    config = ctx.server.config
    data_dir, log_dir = _data_dirs(ctx.server)
    return {
        "client_port": config.client_port,
        "data_dir": data_dir,
        "data_log_dir": log_dir,
        "tick_time": config.tick_ms,
        "max_client_cnxns": config.max_client_cnxns,
        "min_session_timeout": config.min_session_timeout,
        "max_session_timeout": config.max_session_timeout,
        "server_id": getattr(ctx.server.replica.settings, "server_id", 0),
        "client_port_listen_backlog": -1,
    }


async def cmd_connections(ctx: Context) -> dict:
    return {"connections": [_connection_info(ctx.server, h, True)
                            for h in list(ctx.server.connections.values())],
            "secure_connections": []}


async def cmd_connection_stat_reset(ctx: Context) -> dict:
    fourletter.COMMANDS["crst"](ctx.server)
    return {}


async def cmd_stat_reset(ctx: Context) -> dict:
    fourletter.COMMANDS["srst"](ctx.server)
    return {}


async def cmd_observer_connection_stat_reset(ctx: Context) -> dict:
    return {}


async def cmd_watch_summary(ctx: Context) -> dict:
    table = _data_watches(ctx.server)
    return {"num_connections": len(table.by_session), "num_paths": len(table.by_path),
            "num_total_watches": sum(len(s) for s in table.by_path.values())}


async def cmd_watches(ctx: Context) -> dict:
    table = _data_watches(ctx.server)
    return {"session_id_to_watched_paths": {
        str(java_long(sid)): sorted(paths) for sid, paths in sorted(table.by_session.items())}}


async def cmd_watches_by_path(ctx: Context) -> dict:
    table = _data_watches(ctx.server)
    return {"path_to_session_ids": {
        path: sorted(java_long(s) for s in sids) for path, sids in sorted(table.by_path.items())}}


async def cmd_dump(ctx: Context) -> dict:
    replica = ctx.server.replica
    expiry: dict[str, list[int]] = {}
    for session in sorted(replica.sessions.sessions.values(), key=lambda s: s.expires_at_ms):
        expiry.setdefault(str(session.expires_at_ms), []).append(java_long(session.session_id))
    ephemerals = {str(java_long(sid)): sorted(paths)
                  for sid, paths in sorted(replica.tree.ephemerals.items()) if paths}
    return {"expiry_time_to_session_ids": expiry, "session_id_to_ephemeral_paths": ephemerals}


async def cmd_environment(ctx: Context) -> dict:
    environment = {}
    for line in fourletter.COMMANDS["envi"](ctx.server).splitlines()[1:]:
        key, sep, value = line.partition("=")
        if sep:
            environment[key] = value
    return environment


async def cmd_dirs(ctx: Context) -> dict:
    data_size, log_size = await _dir_sizes(ctx.server)
    return {"datadir_size": data_size, "logdir_size": log_size}


async def cmd_is_read_only(ctx: Context) -> dict:
    return {"read_only": ctx.server.read_only()}


async def cmd_get_trace_mask(ctx: Context) -> dict:
    return {"tracemask": ctx.admin.trace_mask}


async def cmd_set_trace_mask(ctx: Context) -> dict:
    value = ctx.kwargs.get("traceMask")
    try:
        mask = int(value)
    except (TypeError, ValueError):
        return {"error": "setTraceMask requires long traceMask argument"}
    ctx.admin.trace_mask = mask
    return {"tracemask": mask}


async def cmd_initial_configuration(ctx: Context) -> dict:
    return {"initial_configuration": ctx.server.config.initial_configuration}


async def cmd_system_properties(ctx: Context) -> dict:
    # zkpy runs no JVM: the properties are the platform's facts under Java's names, then the
    # -D properties zkpy was started with.
    properties = {
        "file.encoding": sys.getfilesystemencoding().upper().replace("UTF8", "UTF-8"),
        "file.separator": os.sep,
        "line.separator": os.linesep,
        "os.arch": fourletter.JAVA_ARCH.get(platform.machine(), platform.machine()),
        "os.name": platform.system(),
        "os.version": platform.release(),
        "path.separator": os.pathsep,
        "python.executable": sys.executable,
        "python.implementation": platform.python_implementation(),
        "python.version": platform.python_version(),
        "user.dir": os.getcwd(),
        "user.home": os.path.expanduser("~"),
        "user.name": fourletter.user_name(),
        "user.timezone": time.tzname[0],
    }
    properties.update(dict(ctx.server.config.system_properties))
    return dict(sorted(properties.items()))


async def cmd_last_snapshot(ctx: Context) -> dict:
    try:
        snapshots = ctx.server.txn_log.snapshots()
    except Exception as error:  # a closing database during shutdown
        return {"error": f"cannot read snapshots: {error}"}
    if not snapshots:
        return {"zxid": f"{(1 << 64) - 1:x}", "timestamp": -1}
    newest = snapshots[0]
    return {"zxid": f"{newest['zxid']:x}", "timestamp": int(newest.get("time_ms", 0)) // 1000}


async def cmd_hash(ctx: Context) -> dict:
    return {"digests": []}  # zkpy keeps no tree digests (ZooKeeper's digest.enabled=false)


def _my_id(server) -> int | None:
    """An ensemble member's id (zkpy.runtime.quorum's ``my_id``); None when standalone."""
    return getattr(server, "my_id", None)


def _leader_id(server) -> int | None:
    peer = getattr(getattr(server, "node", None), "peer", None)
    return getattr(peer, "leader_id", None)


async def cmd_leader(ctx: Context) -> dict:
    server = ctx.server
    if _my_id(server) is None:
        return {"error": "server is not initialized"}  # ZooKeeper's answer when standalone
    leader = _leader_id(server)
    spec = next((s for s in server.config.servers if s.server_id == leader), None)
    return {"is_leader": server.mode() == "leader",
            "leader_id": leader if leader is not None else -1,
            "leader_ip": spec.host if spec is not None else ""}


async def cmd_voting_view(ctx: Context) -> dict:
    view = {}
    for spec in ctx.server.config.servers:
        client = (f"{spec.client_host or '0.0.0.0'}:{spec.client_port}"
                  if spec.client_port else "")
        view[str(spec.server_id)] = {
            "server_addresses": [f"{spec.host}:{spec.quorum_port}"],
            "election_addresses": [f"{spec.host}:{spec.election_port}"],
            "client_address": client,
            "learner_type": spec.role,
        }
    return {"current_config": view}


async def cmd_observers(ctx: Context) -> dict:
    return {"synced_observers": 0, "observers": []}


async def cmd_zabstate(ctx: Context) -> dict:
    server = ctx.server
    my_id = _my_id(server)
    if my_id is None:
        return {"voting": False, "zabstate": ""}
    voters = {s.server_id for s in server.config.servers if s.role == "participant"}
    mode = server.mode()
    return {"myid": my_id, "voting": my_id in voters,
            "zabstate": "broadcast" if mode in ("leader", "follower", "observer") else "election"}


async def cmd_cluster_status(ctx: Context) -> dict:
    return await ctx.admin.cluster_status()


class Command(NamedTuple):
    names: tuple
    run: Callable[[Context], Awaitable[dict]]

    @property
    def primary(self) -> str:
        return self.names[0]


COMMANDS = (
    Command(("configuration", "conf", "config"), cmd_configuration),
    Command(("connection_stat_reset", "crst"), cmd_connection_stat_reset),
    Command(("connections", "cons"), cmd_connections),
    Command(("dirs",), cmd_dirs),
    Command(("dump",), cmd_dump),
    Command(("environment", "envi", "env"), cmd_environment),
    Command(("get_trace_mask", "gtmk"), cmd_get_trace_mask),
    Command(("hash",), cmd_hash),
    Command(("initial_configuration", "icfg"), cmd_initial_configuration),
    Command(("is_read_only", "isro"), cmd_is_read_only),
    Command(("last_snapshot", "lsnp"), cmd_last_snapshot),
    Command(("leader", "lead"), cmd_leader),
    Command(("monitor", "mntr"), cmd_monitor),
    Command(("observer_connection_stat_reset", "orst"), cmd_observer_connection_stat_reset),
    Command(("observers", "obsr"), cmd_observers),
    Command(("ruok",), cmd_ruok),
    Command(("server_stats", "srvr"), cmd_server_stats),
    Command(("set_trace_mask", "stmk"), cmd_set_trace_mask),
    Command(("stat_reset", "srst"), cmd_stat_reset),
    Command(("stats", "stat"), cmd_stats),
    Command(("system_properties", "sysp"), cmd_system_properties),
    Command(("voting_view",), cmd_voting_view),
    Command(("watch_summary", "wchs"), cmd_watch_summary),
    Command(("watches", "wchc"), cmd_watches),
    Command(("watches_by_path", "wchp"), cmd_watches_by_path),
    Command(("zabstate",), cmd_zabstate),
    # zkpy's own
    Command(("cluster_status", "status"), cmd_cluster_status),
)
COMMANDS_BY_NAME = {name: command for command in COMMANDS for name in command.names}


# -- the handler ----------------------------------------------------------------------------------

class AdminCommands:
    """The commands' routes and the state they keep between requests (the trace mask, the
    leader changes seen, the cached cluster status)."""

    def __init__(self, server) -> None:
        self.server = server
        self.trace_mask = DEFAULT_TRACE_MASK
        self.leader_history = cluster.LeaderHistory()
        self._status_cache: tuple[float, dict] | None = None

    def add_routes(self, routes: Routes) -> None:
        routes.add("/commands", self.list_commands)
        routes.add("/commands/", self.list_commands)
        routes.add_prefix("/commands/", self.run_named_command)
        routes.add("/status", self.run_cluster_status)

    async def list_commands(self, request: web.BaseRequest) -> web.StreamResponse:
        links = "".join(f'<a href="/commands/{c.primary}">{c.primary}</a>\n<br/>\n'
                        for c in sorted(COMMANDS, key=lambda c: c.primary))
        return text_response(200, links, "text/html; charset=utf-8")

    async def run_named_command(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self.run(request.path[len("/commands/"):].strip("/"), request)

    async def run_cluster_status(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self.run("cluster_status", request)

    async def run(self, name: str, request: web.BaseRequest) -> web.StreamResponse:
        command = COMMANDS_BY_NAME.get(name)
        if command is None:
            log.info("admin: unknown command", client=client_address(request), command=name[:100])
            return json_response({"command": name, "error": f"Unknown command: {name}"},
                                 pretty=True)
        # ZooKeeper's servlet takes each argument's first value.
        arguments = {key: request.query.get(key) for key in request.query.keys()}
        try:
            body = await command.run(Context(self.server, self, arguments))
        except Exception as error:
            log.exception("admin command failed", client=client_address(request),
                          command=command.primary)
            return json_response({"command": command.primary,
                                  "error": f"{type(error).__name__}: {error}"}, 500, pretty=True)
        body["command"] = command.primary
        body.setdefault("error", None)
        return json_response(body, pretty=True)

    async def cluster_status(self) -> dict:
        """The ensemble's health: this server from its own counters, the others by 4lw (at
        most once a second, however many dashboards poll)."""
        cached = self._status_cache
        if cached is not None and time.monotonic() - cached[0] < STATUS_CACHE_S:
            return dict(cached[1])
        status = await self._cluster_status()
        if self.server.config.servers:
            self._status_cache = (time.monotonic(), status)
        return dict(status)

    async def _cluster_status(self) -> dict:
        server = self.server
        config = server.config
        me = f"{config.client_port_address}:{config.client_port}"
        # The status module reads members from their srvr and mntr replies; this server's own
        # are rendered, not asked for over the network.
        members = [cluster.member_from_replies(me, fourletter.srvr(server), fourletter.mntr(server))]
        peers = []
        for address, is_me in _member_addresses(server):
            if is_me:
                members[0]["address"] = address
            else:
                peers.append(address)
        if peers:
            members += await asyncio.gather(*(cluster.probe_async(a, 1.0) for a in peers))
        members.sort(key=lambda member: member["address"])
        now_ms = int(time.time() * 1000)
        first = cluster.summarize(members)
        changes = self.leader_history.observe(first["leader"], now_ms)
        return cluster.summarize(members, changes)


def _member_addresses(server) -> list[tuple[str, bool]]:
    """Every server.N line's client address, and whether it is this server."""
    config = server.config
    my_id = _my_id(server)
    me = f"{config.client_port_address}:{config.client_port}"
    addresses = []
    for spec in config.servers:
        port = spec.client_port or config.client_port
        host = spec.client_host if spec.client_host not in (None, "0.0.0.0") else spec.host
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        is_me = spec.server_id == my_id or (my_id is None and port == config.client_port and host in (
            config.client_port_address, "127.0.0.1", "localhost"))
        addresses.append((address if my_id is not None or not is_me else me, is_me))
    return addresses
