"""The AdminServer (ZooKeeper 3.8's Jetty JSON API) over real HTTP, against a real zkpy process.

Field names are compared with the reference ZooKeeper's own AdminServer, which runs here once
the servlet API jar (Debian's libservlet-api-java, a dependency of the zookeeper package) is on
its class path.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.servers import ServerProcess, free_port

# The commands ZooKeeper 3.8.0's AdminServer lists at /commands.
REFERENCE_COMMANDS = {
    "configuration", "connection_stat_reset", "connections", "dirs", "dump", "environment",
    "get_trace_mask", "hash", "initial_configuration", "is_read_only", "last_snapshot", "leader",
    "monitor", "observer_connection_stat_reset", "observers", "ruok", "server_stats",
    "set_trace_mask", "stat_reset", "stats", "system_properties", "voting_view",
    "watch_summary", "watches", "watches_by_path", "zabstate",
}
ALIASES = {
    "srvr": "server_stats", "stat": "stats", "mntr": "monitor", "conf": "configuration",
    "cons": "connections", "wchs": "watch_summary", "wchc": "watches", "wchp": "watches_by_path",
    "envi": "environment", "isro": "is_read_only", "crst": "connection_stat_reset",
    "srst": "stat_reset", "gtmk": "get_trace_mask", "icfg": "initial_configuration",
    "lsnp": "last_snapshot", "sysp": "system_properties", "lead": "leader",
    "obsr": "observers", "status": "cluster_status",
}
SERVLET_JAR = "/usr/share/java/servlet-api.jar"


def admin_settings(port: int) -> dict:
    return {"admin.enableServer": "true", "admin.serverPort": str(port),
            "admin.serverAddress": "127.0.0.1"}


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def command(port: int, name: str) -> dict:
    status, headers, body = http_get(port, f"/commands/{name}")
    assert status == 200, (name, status, body[:300])
    assert headers["Content-Type"].startswith("application/json"), headers
    return json.loads(body)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return all the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def zkpy_admin(server_factory):
    port = free_port()
    server = server_factory("zkpy", settings=admin_settings(port))
    server.admin_port = port
    return server


def test_commands_page_links_every_command(zkpy_admin):
    status, headers, body = http_get(zkpy_admin.admin_port, "/commands")
    assert status == 200
    text = body.decode()
    for name in REFERENCE_COMMANDS | {"cluster_status"}:
        assert f'<a href="/commands/{name}">{name}</a>' in text, name
    # The trailing slash is the same page, as in Jetty.
    assert http_get(zkpy_admin.admin_port, "/commands/")[2] == body


def test_every_command_answers_json_with_command_and_error(zkpy_admin):
    expected_errors = {"leader": "server is not initialized",
                       "set_trace_mask": "setTraceMask requires long traceMask argument"}
    for name in sorted(REFERENCE_COMMANDS | {"cluster_status"}):
        document = command(zkpy_admin.admin_port, name)
        assert document["command"] == name, document
        assert "error" in document, document
        assert document["error"] == expected_errors.get(name), (name, document)


def test_aliases_run_their_primary_command(zkpy_admin):
    for alias, primary in ALIASES.items():
        if alias in ("crst", "srst"):
            continue  # resets: covered below, no need to run twice
        assert command(zkpy_admin.admin_port, alias)["command"] == primary, alias


def test_unknown_command_is_an_error_document(zkpy_admin):
    document = command(zkpy_admin.admin_port, "nosuch")
    assert document == {"command": "nosuch", "error": "Unknown command: nosuch"}


def test_commands_report_the_servers_state(zkpy_admin):
    port = zkpy_admin.admin_port
    client = KazooClient(zkpy_admin.connect_string, timeout=10)
    client.start(timeout=10)
    try:
        before = command(port, "monitor")["znode_count"]
        client.create("/ops/config", b"v1", makepath=True)
        client.create("/ops/worker-", b"", ephemeral=True, sequence=True)
        client.get("/ops/config", watch=lambda event: None)
        session_id = client.client_id[0]

        monitor = command(port, "monitor")
        assert monitor["znode_count"] == before + 3
        assert monitor["ephemerals_count"] == 1
        assert monitor["num_alive_connections"] == 1
        assert monitor["server_state"] == "standalone"
        assert isinstance(monitor["avg_latency"], float)

        stats = command(port, "server_stats")
        assert stats["node_count"] == monitor["znode_count"]
        assert stats["server_stats"]["server_state"] == "standalone"
        assert stats["server_stats"]["last_processed_zxid"] > client.exists("/ops/config").czxid
        assert stats["read_only"] is False

        connections = command(port, "connections")["connections"]
        assert [c["session_id"] for c in connections] == [session_id]
        assert connections[0]["remote_socket_address"].startswith("127.0.0.1:")
        assert connections[0]["session_timeout"] > 0

        dump = command(port, "dump")
        ephemerals = dump["session_id_to_ephemeral_paths"][str(session_id)]
        assert len(ephemerals) == 1 and ephemerals[0].startswith("/ops/worker-")
        assert session_id in sum(dump["expiry_time_to_session_ids"].values(), [])

        assert command(port, "watches")["session_id_to_watched_paths"] == {
            str(session_id): ["/ops/config"]}
        assert command(port, "watches_by_path")["path_to_session_ids"] == {
            "/ops/config": [session_id]}
        summary = command(port, "watch_summary")
        assert (summary["num_connections"], summary["num_paths"], summary["num_total_watches"]) == (1, 1, 1)

        configuration = command(port, "configuration")
        assert configuration["client_port"] == zkpy_admin.port
        assert configuration["tick_time"] == 2000
        assert f"admin.serverPort={port}" in command(port, "initial_configuration")["initial_configuration"]
        assert command(port, "dirs")["datadir_size"] > 0
        assert command(port, "is_read_only")["read_only"] is False

        snapshot = command(port, "last_snapshot")
        assert set(snapshot) == {"zxid", "timestamp", "command", "error"}

        assert command(port, "set_trace_mask?traceMask=0")["tracemask"] == 0
        assert command(port, "get_trace_mask")["tracemask"] == 0

        # Resets (a client ping may land in between: compare with what was there before).
        received = command(port, "server_stats")["server_stats"]["packets_received"]
        assert received >= 5
        command(port, "stat_reset")
        assert command(port, "server_stats")["server_stats"]["packets_received"] < received
        received = command(port, "connections")["connections"][0]["packets_received"]
        assert received >= 5
        command(port, "connection_stat_reset")
        assert command(port, "connections")["connections"][0]["packets_received"] < received
    finally:
        client.stop()
        client.close()


def test_http_keep_alive_and_head(zkpy_admin):
    connection = http.client.HTTPConnection("127.0.0.1", zkpy_admin.admin_port, timeout=10)
    try:
        for name in ("ruok", "monitor", "server_stats"):
            connection.request("GET", f"/commands/{name}")
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["command"] == name
            assert response.getheader("Connection") == "keep-alive"
        connection.request("HEAD", "/commands/ruok")
        response = connection.getresponse()
        assert response.status == 200
        assert int(response.getheader("Content-Length")) > 0
        assert response.read() == b""
    finally:
        connection.close()


def test_bad_requests_are_refused_and_logged_with_the_client(zkpy_admin):
    port = zkpy_admin.admin_port
    assert raw_exchange(port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(port, b"GET /commands/ruok HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    assert raw_exchange(port, b"GET /commands HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
                        ).startswith(b"HTTP/1.1 431 ")
    # HTTP/1.1 requires a Host header (RFC 9112, 3.2), which aiohttp enforces: the requests
    # below that the server must otherwise refuse for what they ask carry one.
    assert raw_exchange(port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Content-Length: 999999999\r\n\r\n").startswith(b"HTTP/1.1 413 ")
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n").startswith(b"HTTP/1.1 501 ")
    posted = raw_exchange(port, b"POST /commands/ruok HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert posted.startswith(b"HTTP/1.1 405 ")
    assert b"Allow: GET, HEAD" in posted
    assert http_get(port, "/no/such/page")[0] == 404
    # The server still serves after all that.
    assert command(port, "ruok") == {"command": "ruok", "error": None}
    log = zkpy_admin.log_path.read_text()
    assert "http: bad request" in log
    assert "client=127.0.0.1:" in log
    assert "http: method not allowed" in log


def test_a_silent_client_is_dropped_without_harming_others(zkpy_admin):
    port = zkpy_admin.admin_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
        idle.sendall(b"GET /commands/ruok HTTP/1.1\r\n")  # and never finishes its request
        assert command(port, "ruok")["error"] is None


def test_admin_server_can_be_disabled(server_factory):
    port = free_port()
    settings = admin_settings(port)
    settings["admin.enableServer"] = "false"
    server_factory("zkpy", settings=settings)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_taken_admin_port_stops_the_server_as_zookeeper_does(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        server = ServerProcess("zkpy", tmp_path / "taken", admin_settings(port))
        try:
            with pytest.raises(RuntimeError, match="exited with 4"):
                server.start(timeout_s=20)
        finally:
            server.stop()
    assert "Unable to start AdminServer" in server.log_path.read_text()


# -- the reference ----------------------------------------------------------------------------

class ReferenceWithAdminServer(ServerProcess):
    """The reference ZooKeeper with Jetty able to start (it needs javax.servlet)."""

    def command(self, config_path: Path) -> list[str]:
        argv = super().command(config_path)
        index = argv.index("-cp") + 1
        argv[index] += ":" + SERVLET_JAR
        return argv


def _keys(document: dict) -> set:
    return set(document)


def test_field_names_match_the_reference_admin_server(server_factory, tmp_path):
    assert Path(SERVLET_JAR).exists(), (
        f"{SERVLET_JAR} is missing: apt-get install -y libservlet-api-java (zookeeper's Jetty needs it)")
    reference_port = free_port()
    properties = {"zookeeper.admin.enableServer": "true",
                  "zookeeper.admin.serverPort": str(reference_port),
                  "zookeeper.admin.serverAddress": "127.0.0.1"}
    reference = ReferenceWithAdminServer("zookeeper", tmp_path / "reference",
                                         admin_settings(reference_port), properties)
    zkpy_port = free_port()
    ours = server_factory("zkpy", settings=admin_settings(zkpy_port))
    clients = []
    try:
        reference.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                http_get(reference_port, "/commands/ruok", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the reference AdminServer did not start; log:\n"
                                         + reference.log_tail())
                time.sleep(0.2)
        # Lists: every command the reference lists, zkpy lists too.
        listed = http_get(zkpy_port, "/commands")[2].decode()
        reference_listed = http_get(reference_port, "/commands")[2].decode()
        for name in REFERENCE_COMMANDS:
            assert f"/commands/{name}\"" in reference_listed, name
            assert f"/commands/{name}\"" in listed, name

        for server in (reference, ours):
            client = KazooClient(server.connect_string, timeout=10)
            client.start(timeout=10)
            clients.append(client)
            client.create("/cmp/node", b"x", makepath=True)
            client.create("/cmp/eph", b"", ephemeral=True)
            client.get("/cmp/node", watch=lambda event: None)

        same_keys = ["ruok", "configuration", "dirs", "dump", "get_trace_mask", "hash",
                     "initial_configuration", "is_read_only", "last_snapshot", "leader",
                     "observers", "voting_view", "watch_summary", "watches", "watches_by_path",
                     "zabstate", "stat_reset", "connection_stat_reset", "nosuch"]
        for name in same_keys:
            theirs = command(reference_port, name)
            mine = command(zkpy_port, name)
            assert _keys(mine) == _keys(theirs), (name, mine, theirs)
            assert mine["command"] == theirs["command"], name
            assert mine["error"] == theirs["error"], name

        for name in ("server_stats", "stats"):
            theirs, mine = command(reference_port, name), command(zkpy_port, name)
            assert _keys(mine) == _keys(theirs), name
            assert _keys(mine["server_stats"]) == _keys(theirs["server_stats"]), name
            assert mine["node_count"] == theirs["node_count"]

        theirs, mine = command(reference_port, "connections"), command(zkpy_port, "connections")
        assert _keys(mine) == _keys(theirs)
        assert _keys(mine["connections"][0]) == _keys(theirs["connections"][0])
        theirs, mine = command(reference_port, "stats"), command(zkpy_port, "stats")
        assert _keys(mine["connections"][0]) == _keys(theirs["connections"][0])

        # Values that must agree for the same history.
        for name, field in (("watch_summary", "num_total_watches"), ("is_read_only", "read_only"),
                            ("get_trace_mask", "tracemask")):
            assert command(zkpy_port, name)[field] == command(reference_port, name)[field], name
        assert (len(command(zkpy_port, "dump")["session_id_to_ephemeral_paths"])
                == len(command(reference_port, "dump")["session_id_to_ephemeral_paths"]) == 1)

        # monitor: every key zkpy reports, the reference reports too, with the same type.
        theirs, mine = command(reference_port, "monitor"), command(zkpy_port, "monitor")
        for key, value in mine.items():
            assert key in theirs, key
            assert type(value) is type(theirs[key]) or {type(value), type(theirs[key])} <= {int, float}, key
        for key in ("znode_count", "ephemerals_count", "global_sessions", "num_alive_connections"):
            assert mine[key] == theirs[key], key

        # environment: the platform keys are ZooKeeper's (java.* have python.* stand-ins).
        theirs, mine = command(reference_port, "environment"), command(zkpy_port, "environment")
        shared = {k for k in theirs if not k.startswith("java.")}
        assert shared <= set(mine), shared - set(mine)
    finally:
        for client in clients:
            client.stop()
            client.close()
        reference.stop()
