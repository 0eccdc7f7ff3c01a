"""The dashboard at ``/`` (static files from ``zkpy/runtime/dashboard/``) and its read-only
JSON API: ``/api/overview``, ``/api/znode?path=/a``, ``/api/sessions``.

The znode API applies znode ACLs as an unauthenticated client from the HTTP client's address
(``ip:<address>``, ``world:anyone``) would see them; listings are bounded (children, data shown,
sessions).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from aiohttp import web

from jute import Perms
from jute import records as r
from zkpy.runtime import fourletter
from zkpy.runtime.http.endpoint import Routes, json_response
from zkpy.runtime.http.zkvalues import ephemerals_count, hex_id, latency_ms
from zkpy.tree.ephemeral import CONTAINER_OWNER, is_session_owner, ttl_of

MAX_CHILDREN_LISTED = 1000
MAX_DATA_SHOWN = 64 * 1024
MAX_SESSIONS_LISTED = 1000
DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard"
STATIC_CONTENT_TYPES = {".html": "text/html; charset=utf-8",
                        ".js": "text/javascript; charset=utf-8",
                        ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
STATIC_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}



# -- the API's views ------------------------------------------------------------------------------

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
    node = server.replica.tree.nodes.get(path)
    if node is None:
        return 404, {"path": path, "error": "no node"}
    auth = (r.Id("ip", client_host),)
    checker = server.replica.settings.acl_checker
    can_read = checker.has_permission(node.acl, Perms.READ, auth)
    can_admin = checker.has_permission(node.acl, Perms.ADMIN, auth)
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


def _all_watched_paths(server) -> dict[int, set[str]]:
    """Every path a session watches, data and child watches together (for the dashboard)."""
    watches = server.zookeeper.watches
    by_session: dict[int, set[str]] = {}
    for table in (watches.data, watches.child):
        for session_id, paths in table.by_session.items():
            by_session.setdefault(session_id, set()).update(paths)
    return by_session


def _etcd_owner(server, session_id: int) -> str | None:
    """What an etcd session is, for the sessions table: a lease, or a member's front end."""
    frontend = getattr(server, "etcd_frontend", None)
    if frontend is None:
        return None
    if frontend.is_lease(session_id):
        return "etcd lease"
    if session_id == frontend.session_id:
        return "etcd front end"
    return None


def sessions_view(server, now_ms: int) -> dict:
    replica, zookeeper = server.replica, server.zookeeper
    by_session_client = {}
    for handler in list(server.connections.values()):
        conn = zookeeper.connections.get(handler.connection_id)
        if conn is not None and conn.session_id:
            by_session_client[conn.session_id] = f"{handler.peer_host}:{handler.peer_port}"
    watched = _all_watched_paths(server)
    sessions = sorted(replica.sessions.sessions.values(), key=lambda s: s.session_id & 0xFFFFFFFFFFFFFFFF)
    listed = []
    for session in sessions[:MAX_SESSIONS_LISTED]:
        sid = session.session_id
        listed.append({
            "sessionId": hex_id(sid),
            "timeoutMs": session.timeout_ms,
            "expiresInMs": max(0, session.expires_at_ms - now_ms) if session.expires_at_ms else None,
            "client": by_session_client.get(sid) or _etcd_owner(server, sid),
            "ephemerals": len(replica.tree.ephemerals.get(sid, ())),
            "watches": len(watched.get(sid, ())),
            "closing": session.closing,
        })
    return {"count": len(sessions), "sessions": listed, "truncated": len(sessions) > len(listed)}


def overview(server) -> dict:
    replica, zookeeper = server.replica, server.zookeeper
    stats = zookeeper.stats
    low, avg, high = latency_ms(stats)
    return {
        "time_ms": int(time.time() * 1000),
        "server": {
            "address": f"{server.config.client_port_address}:{server.config.client_port}",
            "version": fourletter.VERSION,
            "mode": server.mode(),
            "zxid": hex_id(replica.tree.last_zxid),
            "uptime_ms": server.uptime_ms(),
            "znode_count": fourletter.znode_count(replica.tree),
            "connections": len(server.connections),
            "sessions": len(replica.sessions.sessions),
            "outstanding_requests": zookeeper.outstanding_requests(),
            "watch_count": zookeeper.watches.watch_count(),
            "ephemerals_count": ephemerals_count(replica.tree),
            "packets_received": stats.packets_received,
            "packets_sent": stats.packets_sent,
            "latency": {"min": low, "avg": avg, "max": high},
            "latency_total_ms": stats.latency_total_ms,
            "latency_count": stats.latency_count,
        },
    }


# -- the handler ----------------------------------------------------------------------------------

class Dashboard:
    """The static files, read once at start-up, and the API's routes."""

    def __init__(self, server) -> None:
        self.server = server
        self.static_files = _load_static_files()

    def add_routes(self, routes: Routes) -> None:
        for path in self.static_files:
            routes.add(path, self.static_file)
        routes.add("/api/overview", self.api_overview)
        routes.add("/api/znode", self.api_znode)
        routes.add("/api/sessions", self.api_sessions)
        routes.add_prefix("/api/", self.api_not_found)

    async def static_file(self, request: web.BaseRequest) -> web.StreamResponse:
        body, content_type = self.static_files[request.path]
        return web.Response(body=body, headers={"Content-Type": content_type, **STATIC_HEADERS})

    async def api_overview(self, request: web.BaseRequest) -> web.StreamResponse:
        return _api(overview(self.server))

    async def api_znode(self, request: web.BaseRequest) -> web.StreamResponse:
        status, view = znode_view(self.server, request.query.get("path", "/"), request.remote or "")
        return _api(view, status)

    async def api_sessions(self, request: web.BaseRequest) -> web.StreamResponse:
        return _api(sessions_view(self.server, int(time.time() * 1000)))

    async def api_not_found(self, request: web.BaseRequest) -> web.StreamResponse:
        return _api({"error": f"not found: {request.path}"}, 404)


def _api(document, status: int = 200) -> web.StreamResponse:
    response = json_response(document, status)
    response.headers.update(API_HEADERS)
    return response


def _load_static_files() -> dict[str, tuple[bytes, str]]:
    """The dashboard's files by URL path; ``/`` and ``/index.html`` are its page."""
    files: dict[str, tuple[bytes, str]] = {}
    if DASHBOARD_DIR.is_dir():
        for path in sorted(DASHBOARD_DIR.iterdir()):
            if path.is_file() and path.suffix in STATIC_CONTENT_TYPES:
                files[f"/dashboard/{path.name}"] = (path.read_bytes(),
                                                    STATIC_CONTENT_TYPES[path.suffix])
    if "/dashboard/index.html" in files:
        files["/"] = files["/index.html"] = files["/dashboard/index.html"]
    return files
