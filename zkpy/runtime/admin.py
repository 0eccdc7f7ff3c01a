"""The HTTP side of a server: ZooKeeper 3.8's AdminServer, the dashboard, and /metrics.

``start_http_endpoints(server)`` starts what the config asks for, on the server's event loop:

* the AdminServer (``admin.enableServer``, default true; ``admin.serverAddress``:``admin.serverPort``,
  default 0.0.0.0:8080), which answers as ZooKeeper's Jetty AdminServer does:
  ``GET /commands`` lists the commands as links, ``GET /commands/<name>[?arg=value]`` runs one
  and answers JSON with ZooKeeper's field names plus ``command`` and ``error`` (an unknown
  command is ``error: "Unknown command: <name>"``, still 200, as in ZooKeeper). Every command
  answers to its primary name and its 4lw alias (``/commands/srvr`` is ``server_stats``).
  zkpy adds ``cluster_status`` (alias ``status``, and ``GET /status``): the ensemble's health as
  ``zkpy status`` prints it;
* the dashboard at ``/`` (static files from ``dashboard/``) and its read-only JSON API:
  ``/api/overview``, ``/api/znode?path=/a``, ``/api/sessions``;
* Prometheus metrics at ``GET /metrics`` on ``metricsProvider.httpHost``:``metricsProvider.httpPort``
  (default 0.0.0.0:7000) when ``metricsProvider.className`` is ZooKeeper's
  PrometheusMetricsProvider (see ``zkpy.runtime.metrics``).

As in ZooKeeper, a server whose AdminServer or metrics port cannot be bound does not start.

The HTTP/1.1 server is small and strict: GET and HEAD only, keep-alive, a request head of at
most 16 KiB read within ``HEADER_TIMEOUT_S``, bodies of at most 64 KiB, at most
``MAX_CONNECTIONS`` connections at once. Bad requests are answered 4xx, closed and logged with
the client's address. Every handler runs on the event loop between the server's turns, so it
reads the core without locks and must stay short (directory sizes are summed in a thread).
The znode API applies znode ACLs as an unauthenticated client from the HTTP client's address
(``ip:<address>``, ``world:anyone``) would see them.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import os
import platform
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Awaitable, Callable, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

from jute import Perms
from jute import records as r
from zkpy import status as cluster
from zkpy.runtime import fourletter
from zkpy.tree import acl as acls
from zkpy.tree.ephemeral import CONTAINER_OWNER, is_session_owner, ttl_of

log = structlog.get_logger("zkpy.admin")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 100
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
MAX_REQUESTS_PER_CONNECTION = 10_000
MAX_CHILDREN_LISTED = 1000
MAX_DATA_SHOWN = 64 * 1024
MAX_SESSIONS_LISTED = 1000
DEFAULT_TRACE_MASK = getattr(fourletter, "TRACE_MASK", 306)  # ZooTrace's default
STATUS_CACHE_S = 1.0
DASHBOARD_DIR = Path(__file__).with_name("dashboard")
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


# -- HTTP ---------------------------------------------------------------------------------------

class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpRequest(NamedTuple):
    method: str
    path: str
    query: dict
    version: str
    headers: dict
    client: str       # "host:port", for logs
    client_host: str  # for ACL checks


class HttpResponse(NamedTuple):
    status: int
    body: bytes
    content_type: str | None = "application/json"
    headers: tuple = ()


def json_response(document, status: int = 200, pretty: bool = False) -> HttpResponse:
    if pretty:  # Jackson's default pretty printer, as ZooKeeper's AdminServer answers
        text = json.dumps(document, indent=2, separators=(",", " : "), ensure_ascii=False)
    else:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return HttpResponse(status, text.encode(), "application/json")


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
    return HttpResponse(status, text.encode(), content_type)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def parse_head(head: bytes, client: str, client_host: str) -> HttpRequest:
    """A request line and headers (without the final CRLF CRLF); HttpError if malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, "undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not method or not set(method) <= _TOKEN_CHARS:
        raise HttpError(400, "malformed method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505 if version.startswith("HTTP/") else 400, "unsupported HTTP version")
    if target.startswith("/"):
        split = urlsplit(target)
    elif target.startswith(("http://", "https://")):
        split = urlsplit(target)
    else:
        raise HttpError(400, "malformed request target")
    if any(c in target for c in "\x00\r\n\t "):
        raise HttpError(400, "malformed request target")
    headers: dict[str, str] = {}
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "too many header fields")
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise HttpError(400, "obsolete header folding")
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TOKEN_CHARS:
            raise HttpError(400, "malformed header field")
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            if name in ("content-length", "host"):
                raise HttpError(400, f"repeated {name}")
            headers[name] = headers[name] + ", " + value
        else:
            headers[name] = value
    query = {key: values[0] for key, values in
             parse_qs(split.query, keep_blank_values=True, max_num_fields=100).items()}
    return HttpRequest(method, unquote(split.path or "/"), query, version, headers, client,
                       client_host)


def encode_response(response: HttpResponse, keep_alive: bool, head_only: bool) -> bytes:
    status = HTTPStatus(response.status)
    lines = [f"HTTP/1.1 {status.value} {status.phrase}",
             f"Date: {email.utils.formatdate(usegmt=True)}",
             "Server: zkpy",
             f"Content-Length: {len(response.body)}",
             "Connection: keep-alive" if keep_alive else "Connection: close"]
    if response.content_type:
        lines.append(f"Content-Type: {response.content_type}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class HttpServer:
    """A small HTTP/1.1 server on the running event loop (see the module docstring)."""

    def __init__(self, name: str, host: str, port: int, handler: Handler,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.name = name
        self.host = host
        self.requested_port = port
        self.handler = handler
        self.max_connections = max_connections
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.requested_port, limit=MAX_HEADER_BYTES,
            reuse_address=True, backlog=128)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2.0)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        client_host = str(peer[0])
        client = f"{client_host}:{peer[1]}" if len(peer) > 1 else client_host
        if len(self._connections) >= self.max_connections:
            log.warning("http: too many connections; refusing", endpoint=self.name, client=client,
                        limit=self.max_connections)
            await self._send(writer, text_response(503, "too many connections\n"), False, False)
            writer.close()
            return
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._serve_requests(reader, writer, client, client_host)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve_requests(self, reader, writer, client: str, client_host: str) -> None:
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT_S)
            except asyncio.IncompleteReadError as error:
                if error.partial.strip():
                    log.warning("http: connection closed mid-request", endpoint=self.name,
                                client=client)
                return
            except asyncio.LimitOverrunError:
                log.warning("http: request head too large", endpoint=self.name, client=client,
                            limit=MAX_HEADER_BYTES)
                await self._send(writer, text_response(431, "request header too large\n"), False, False)
                return
            except asyncio.TimeoutError:
                # An idle keep-alive connection, or a client too slow to send its request.
                log.debug("http: closing idle connection", endpoint=self.name, client=client)
                return
            try:
                request = parse_head(head[:-4], client, client_host)
                await self._read_body(reader, request)
            except HttpError as error:
                log.warning("http: bad request", endpoint=self.name, client=client,
                            status=error.status, reason=error.message,
                            request_line=head.split(b"\r\n", 1)[0][:200].decode("latin-1"))
                await self._send(writer, text_response(error.status, error.message + "\n"), False, False)
                return
            keep_alive = self._keep_alive(request)
            if request.method not in ("GET", "HEAD"):
                log.warning("http: method not allowed", endpoint=self.name, client=client,
                            method=request.method, path=request.path)
                response = text_response(405, f"HTTP method {request.method} is not supported by this URL\n")
                response = response._replace(headers=(("Allow", "GET, HEAD"),))
            else:
                try:
                    response = await self.handler(request)
                except Exception:  # a bug in a handler must not take the server down
                    log.exception("http: handler failed", endpoint=self.name, client=client,
                                  path=request.path)
                    response = json_response({"error": "internal server error"}, 500)
                log.debug("http request", endpoint=self.name, client=client, method=request.method,
                          path=request.path, status=response.status)
            await self._send(writer, response, keep_alive, request.method == "HEAD")
            if not keep_alive:
                return

    async def _read_body(self, reader, request: HttpRequest) -> None:
        if "transfer-encoding" in request.headers:
            raise HttpError(501, "chunked request bodies are not supported")
        length_text = request.headers.get("content-length")
        if length_text is None:
            return
        if not length_text.isdigit():
            raise HttpError(400, "malformed Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, "request body too large")
        if length:
            try:
                await asyncio.wait_for(reader.readexactly(length), BODY_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError):
                raise HttpError(400, "incomplete request body") from None

    @staticmethod
    def _keep_alive(request: HttpRequest) -> bool:
        connection = request.headers.get("connection", "").lower()
        if request.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    @staticmethod
    async def _send(writer, response: HttpResponse, keep_alive: bool, head_only: bool) -> None:
        writer.write(encode_response(response, keep_alive, head_only))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)


# -- values in ZooKeeper's shapes ---------------------------------------------------------------

def java_long(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def hex_id(value: int) -> str:
    return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def _srvr_fields(server) -> dict:
    return cluster.parse_srvr(fourletter.COMMANDS["srvr"](server))


def _mode(server) -> str:
    return _srvr_fields(server).get("mode", "standalone")


def _latency(stats) -> tuple[int, float, int]:
    avg = stats.latency_total_ms / stats.latency_count if stats.latency_count else 0.0
    return stats.latency_min_ms, round(avg, 4), stats.latency_max_ms


def _data_dirs(server) -> tuple[str, str]:
    config = server.config
    return (os.path.abspath(config.data_dir),
            os.path.abspath(config.data_log_dir or config.data_dir))


async def _dir_sizes(server) -> tuple[int, int]:
    data_dir, log_dir = _data_dirs(server)
    loop = asyncio.get_running_loop()
    data_size = await loop.run_in_executor(None, fourletter._dir_size, data_dir)
    log_size = data_size if log_dir == data_dir else await loop.run_in_executor(
        None, fourletter._dir_size, log_dir)
    return data_size, log_size


def _data_watches(server):
    """ZooKeeper's wchs/wchc/wchp (and their JSON) list the data-watch table only, as the
    4lw do (see fourletter)."""
    return server.core.watches.data


def _all_watched_paths(server) -> dict[int, set[str]]:
    """Every path a session watches, data and child watches together (for the dashboard)."""
    watches = server.core.watches
    by_session: dict[int, set[str]] = {}
    for table in (watches.data, watches.child):
        for session_id, paths in table.by_session.items():
            by_session.setdefault(session_id, set()).update(paths)
    return by_session


def _connection_info(server, handler, full: bool) -> dict:
    core = server.core
    conn = core.connections.get(handler.connection_id)
    session_id = conn.session_id if conn is not None else 0
    info = {
        "remote_socket_address": f"{handler.peer_host}:{handler.peer_port}",
        "interest_ops": 0 if handler.closed else 1,
        "outstanding_requests": len(core.pending.get(session_id, ())) if session_id else 0,
        "packets_received": conn.packets_received if conn else 0,
        "packets_sent": conn.packets_sent if conn else 0,
    }
    if full:
        session = core.sessions.get(session_id) if session_id else None
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


def _ephemerals_count(tree) -> int:
    return sum(len(paths) for paths in tree.ephemerals.values())


# -- commands -----------------------------------------------------------------------------------

class Context(NamedTuple):
    server: object
    admin: "AdminServer"
    kwargs: dict


async def cmd_ruok(ctx: Context) -> dict:
    return {}


async def cmd_server_stats(ctx: Context) -> dict:
    server = ctx.server
    core = server.core
    low, avg, high = _latency(core.stats)
    data_size, log_size = await _dir_sizes(server)
    response_stats = {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}
    fields = _srvr_fields(server)
    return {
        "version": fourletter.VERSION,
        "read_only": fields.get("mode") == "read-only",
        "server_stats": {
            "packets_sent": core.stats.packets_sent,
            "packets_received": core.stats.packets_received,
            "fsync_threshold_exceed_count": 0,
            "client_response_stats": dict(response_stats),
            "data_dir_size": data_size,
            "log_dir_size": log_size,
            "provider_null": False,
            "server_state": fields.get("mode", "standalone"),
            "last_processed_zxid": core.tree.last_zxid,
            "outstanding_requests": core.outstanding_requests(),
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
        "node_count": fourletter._znode_count(core.tree),
    }


async def cmd_stats(ctx: Context) -> dict:
    response = await cmd_server_stats(ctx)
    response["connections"] = [_connection_info(ctx.server, h, False)
                               for h in list(ctx.server.connections.values())]
    response["secure_connections"] = []
    return response


async def cmd_monitor(ctx: Context) -> dict:
    # The 4lw's rows, without the zk_ prefix, typed: what ZooKeeper's JSON monitor holds.
    return cluster.parse_mntr(fourletter.COMMANDS["mntr"](ctx.server))


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
        "server_id": getattr(ctx.server.core.settings, "server_id", 0),
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
    core = ctx.server.core
    expiry: dict[str, list[int]] = {}
    for session in sorted(core.sessions.sessions.values(), key=lambda s: s.expires_at_ms):
        expiry.setdefault(str(session.expires_at_ms), []).append(java_long(session.session_id))
    ephemerals = {str(java_long(sid)): sorted(paths)
                  for sid, paths in sorted(core.tree.ephemerals.items()) if paths}
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
    return {"read_only": fourletter.COMMANDS["isro"](ctx.server).strip() == "ro"}


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
        "os.arch": fourletter._JAVA_ARCH.get(platform.machine(), platform.machine()),
        "os.name": platform.system(),
        "os.version": platform.release(),
        "path.separator": os.pathsep,
        "python.executable": sys.executable,
        "python.implementation": platform.python_implementation(),
        "python.version": platform.python_version(),
        "user.dir": os.getcwd(),
        "user.home": os.path.expanduser("~"),
        "user.name": fourletter._user_name(),
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
    return {"is_leader": _mode(server) == "leader",
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
    mode = _mode(server)
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


# -- the dashboard's API ------------------------------------------------------------------------

def _perms_text(perms: int) -> str:
    return "".join(letter for bit, letter in ((Perms.CREATE, "c"), (Perms.DELETE, "d"),
                                              (Perms.READ, "r"), (Perms.WRITE, "w"),
                                              (Perms.ADMIN, "a")) if perms & bit)


def _node_kind(owner: int) -> str:
    if owner == CONTAINER_OWNER:
        return "container"
    if ttl_of(owner):
        return "ttl"
    if is_session_owner(owner):
        return "ephemeral"
    return "persistent"


def znode_view(server, path: str, client_host: str) -> tuple[int, dict]:
    """A read-only view of one znode, as a client from ``client_host`` may see it."""
    if not path.startswith("/") or (path != "/" and path.endswith("/")) or "//" in path:
        return 400, {"path": path, "error": "invalid path"}
    node = server.core.tree.nodes.get(path)
    if node is None:
        return 404, {"path": path, "error": "no node"}
    auth = (r.Id("ip", client_host),)
    can_read = acls.has_permission(node.acl, Perms.READ, auth)
    can_admin = acls.has_permission(node.acl, Perms.ADMIN, auth)
    stat = node.stat()
    view = {
        "path": path,
        "kind": _node_kind(node.ephemeral_owner),
        "stat": {
            "czxid": hex_id(stat.czxid), "mzxid": hex_id(stat.mzxid),
            "ctime": stat.ctime, "mtime": stat.mtime, "version": stat.version,
            "cversion": stat.cversion, "aversion": stat.aversion,
            "ephemeralOwner": hex_id(stat.ephemeral_owner), "dataLength": stat.data_length,
            "numChildren": stat.num_children, "pzxid": hex_id(stat.pzxid),
        },
        "readable": can_read,
    }
    if can_read or can_admin:
        view["acl"] = [{"perms": _perms_text(entry.perms), "scheme": entry.id.scheme,
                        "id": (entry.id.id if can_admin or entry.id.scheme != "digest"
                               else entry.id.id.split(":", 1)[0] + ":x")}
                       for entry in node.acl]
    else:
        view["acl"] = None
    if can_read:
        data = node.data or b""
        shown = data[:MAX_DATA_SHOWN]
        try:
            value, encoding = shown.decode("utf-8"), "utf-8"
            if any(ord(c) < 32 and c not in "\t\r\n" for c in value):
                raise UnicodeDecodeError("utf-8", shown, 0, 1, "control characters")
        except UnicodeDecodeError:
            value, encoding = base64.b64encode(shown).decode(), "base64"
        view["data"] = {"encoding": encoding, "value": value, "length": len(data),
                        "truncated": len(data) > len(shown)}
        children = sorted(node.children) if node.children else []
        view["children"] = children[:MAX_CHILDREN_LISTED]
        view["childrenTruncated"] = len(children) > MAX_CHILDREN_LISTED
    else:
        view["data"] = None
        view["children"] = None
        view["error"] = f"no READ permission for ip:{client_host}"
    return 200, view


def sessions_view(server, now_ms: int) -> dict:
    core = server.core
    by_session_client = {}
    for handler in list(server.connections.values()):
        conn = core.connections.get(handler.connection_id)
        if conn is not None and conn.session_id:
            by_session_client[conn.session_id] = f"{handler.peer_host}:{handler.peer_port}"
    watched = _all_watched_paths(server)
    sessions = sorted(core.sessions.sessions.values(), key=lambda s: s.session_id & 0xFFFFFFFFFFFFFFFF)
    listed = []
    for session in sessions[:MAX_SESSIONS_LISTED]:
        sid = session.session_id
        listed.append({
            "sessionId": hex_id(sid),
            "timeoutMs": session.timeout_ms,
            "expiresInMs": max(0, session.expires_at_ms - now_ms) if session.expires_at_ms else None,
            "client": by_session_client.get(sid),
            "ephemerals": len(core.tree.ephemerals.get(sid, ())),
            "watches": len(watched.get(sid, ())),
            "closing": session.closing,
        })
    return {"count": len(sessions), "sessions": listed, "truncated": len(sessions) > len(listed)}


def overview(server, admin: "AdminServer") -> dict:
    core = server.core
    stats = core.stats
    fields = _srvr_fields(server)
    low, avg, high = _latency(stats)
    return {
        "time_ms": int(time.time() * 1000),
        "server": {
            "address": f"{server.config.client_port_address}:{server.config.client_port}",
            "version": fourletter.VERSION,
            "mode": fields.get("mode", "standalone"),
            "zxid": hex_id(core.tree.last_zxid),
            "uptime_ms": server.uptime_ms(),
            "znode_count": fourletter._znode_count(core.tree),
            "connections": len(server.connections),
            "sessions": len(core.sessions.sessions),
            "outstanding_requests": core.outstanding_requests(),
            "watch_count": core.watches.watch_count(),
            "ephemerals_count": _ephemerals_count(core.tree),
            "packets_received": stats.packets_received,
            "packets_sent": stats.packets_sent,
            "latency": {"min": low, "avg": avg, "max": high},
            "latency_total_ms": stats.latency_total_ms,
            "latency_count": stats.latency_count,
        },
    }


# -- the AdminServer ------------------------------------------------------------------------------

class AdminServer:
    """ZooKeeper's AdminServer commands, the dashboard and its API (see the module docstring)."""

    def __init__(self, server) -> None:
        self.server = server
        self.trace_mask = DEFAULT_TRACE_MASK
        self.leader_history = cluster.LeaderHistory()
        self._status_cache: tuple[float, dict] | None = None
        self._static = self._load_static()
        config = server.config
        self.http = HttpServer("admin", config.admin_server_address, config.admin_server_port,
                               self.handle)

    @staticmethod
    def _load_static() -> dict[str, tuple[bytes, str]]:
        types = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
        files: dict[str, tuple[bytes, str]] = {}
        if DASHBOARD_DIR.is_dir():
            for path in sorted(DASHBOARD_DIR.iterdir()):
                if path.is_file() and path.suffix in types:
                    files[f"/dashboard/{path.name}"] = (path.read_bytes(), types[path.suffix])
        if "/dashboard/index.html" in files:
            files["/"] = files["/index.html"] = files["/dashboard/index.html"]
        return files

    async def start(self) -> None:
        await self.http.start()
        log.info("AdminServer started", address=self.http.host, port=self.http.port,
                 command_url="/commands")

    async def close(self) -> None:
        await self.http.close()

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
        srvr = fourletter.COMMANDS["srvr"](server)
        mntr = fourletter.COMMANDS["mntr"](server)
        config = server.config
        my_id = _my_id(server)
        me = f"{config.client_port_address}:{config.client_port}"
        members = [cluster.member_from_replies(me, srvr, mntr)]
        peers = []
        for spec in config.servers:
            port = spec.client_port or config.client_port
            host = spec.client_host if spec.client_host not in (None, "0.0.0.0") else spec.host
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if spec.server_id == my_id or (my_id is None and port == config.client_port and host in (
                    config.client_port_address, "127.0.0.1", "localhost")):
                members[0]["address"] = address if my_id is not None else me
                continue  # this server
            peers.append(address)
        if peers:
            members += await asyncio.gather(*(cluster.probe_async(a, 1.0) for a in peers))
        members.sort(key=lambda member: member["address"])
        now_ms = int(time.time() * 1000)
        first = cluster.summarize(members)
        changes = self.leader_history.observe(first["leader"], now_ms)
        return cluster.summarize(members, changes)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path in ("/commands", "/commands/"):
            links = "".join(f'<a href="/commands/{c.primary}">{c.primary}</a>\n<br/>\n'
                            for c in sorted(COMMANDS, key=lambda c: c.primary))
            return HttpResponse(200, links.encode(), "text/html; charset=utf-8")
        if path.startswith("/commands/"):
            return await self.run_command(path[len("/commands/"):].strip("/"), request)
        if path == "/status":
            return await self.run_command("cluster_status", request)
        if path.startswith("/api/"):
            return self.handle_api(request)
        static = self._static.get(path)
        if static is not None:
            body, content_type = static
            return HttpResponse(200, body, content_type, (
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                ("X-Frame-Options", "DENY"),
                ("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                 "frame-ancestors 'none'; base-uri 'none'")))
        return text_response(404, f"not found: {path}\n")

    async def run_command(self, name: str, request: HttpRequest) -> HttpResponse:
        command = COMMANDS_BY_NAME.get(name)
        if command is None:
            log.info("admin: unknown command", client=request.client, command=name[:100])
            return json_response({"command": name, "error": f"Unknown command: {name}"},
                                 pretty=True)
        try:
            body = await command.run(Context(self.server, self, request.query))
        except Exception as error:
            log.exception("admin command failed", client=request.client, command=command.primary)
            return json_response({"command": command.primary, "error": f"{type(error).__name__}: {error}"},
                                 500, pretty=True)
        body["command"] = command.primary
        body.setdefault("error", None)
        return json_response(body, pretty=True)

    def handle_api(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path == "/api/overview":
            return self._api(overview(self.server, self))
        if path == "/api/znode":
            status, view = znode_view(self.server, request.query.get("path", "/"),
                                      request.client_host)
            return self._api(view, status)
        if path == "/api/sessions":
            return self._api(sessions_view(self.server, int(time.time() * 1000)))
        return self._api({"error": f"not found: {path}"}, 404)

    @staticmethod
    def _api(document, status: int = 200) -> HttpResponse:
        response = json_response(document, status)
        return response._replace(headers=(("Cache-Control", "no-store"),
                                          ("X-Content-Type-Options", "nosniff")))


# -- the hook -------------------------------------------------------------------------------------

class HttpEndpoints:
    """What ``start_http_endpoints`` started; ``close()`` stops it all."""

    def __init__(self) -> None:
        self.admin: AdminServer | None = None
        self.metrics = None

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
        if self.metrics is not None:
            await self.metrics.close()


ERROR_STARTING_ADMIN_SERVER = 4  # ZooKeeper's ExitCode for the same failure


async def start_http_endpoints(server) -> HttpEndpoints:
    """Start the AdminServer and the metrics endpoint as the config asks (module docstring).

    When a port cannot be bound, what did start is closed, the failure is logged and the
    server is stopped with exit code 4 (``server.exit_code``), as ZooKeeper exits when it
    cannot start the AdminServer it was asked for."""
    endpoints = HttpEndpoints()
    config = server.config
    what, host, port = "AdminServer", config.admin_server_address, config.admin_server_port
    try:
        if config.admin_enable_server:
            admin = AdminServer(server)
            await admin.start()
            endpoints.admin = admin
        if config.prometheus_enabled:
            from zkpy.runtime.metrics import MetricsEndpoint
            what, host, port = ("Prometheus metrics endpoint", config.metrics_http_host,
                                config.metrics_http_port)
            metrics = MetricsEndpoint(server)
            await metrics.start()
            endpoints.metrics = metrics
    except OSError as error:
        await endpoints.close()
        log.critical(f"Unable to start {what}, exiting abnormally", address=host, port=port,
                     error=error.strerror or str(error))
        server.exit_code = ERROR_STARTING_ADMIN_SERVER
        server.stop()
        return HttpEndpoints()
    return endpoints
