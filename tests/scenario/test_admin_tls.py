"""The AdminServer over HTTPS, as ZooKeeper 3.8's Jetty AdminServer serves it.

``admin.portUnification=true`` takes HTTP and HTTPS on the admin port (the first byte of a
connection decides), ``admin.forceHttps=true`` only HTTPS, both with the ``ssl.quorum.*`` key
and trust stores; HTTPS answers carry ``Strict-Transport-Security: max-age=86400;
includeSubDomains`` and no client certificate is asked for. The reference ZooKeeper is checked
the same way: Debian's zookeeper.jar has JettyAdminServer and its UnifiedConnectionFactory, and
the package's Jetty jars do TLS (only the servlet API jar is added to its class path, as in
test_admin).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.scenario.test_admin import ReferenceWithAdminServer, admin_settings
from tests.support.securitytools import STORE_PASSWORD, make_pki
from tests.support.servers import ServerProcess, four_letter_word, free_port

STS = "max-age=86400; includeSubDomains"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def quorum_stores(pki, kind: str = "jks") -> dict[str, str]:
    key_store, trust_store = {"jks": (pki.server.jks, pki.trust_jks),
                              "p12": (pki.server.p12, pki.trust_p12),
                              "pem": (pki.server.bundle_pem, pki.ca_pem)}[kind]
    return {"ssl.quorum.keyStore.location": str(key_store),
            "ssl.quorum.keyStore.password": STORE_PASSWORD,
            "ssl.quorum.trustStore.location": str(trust_store),
            "ssl.quorum.trustStore.password": STORE_PASSWORD}


def client_context(pki) -> ssl.SSLContext:
    """A client that trusts the test CA and shows no certificate of its own."""
    return ssl.create_default_context(cafile=str(pki.ca_pem))


def get(scheme: str, port: int, path: str, context: ssl.SSLContext | None = None,
        timeout: float = 10.0) -> tuple[int, dict, bytes]:
    url = f"{scheme}://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def start_admin(kind: str, workdir: Path, settings: dict[str, str],
                properties: dict[str, str] | None = None) -> ServerProcess:
    """A started server whose AdminServer answers (the reference's Jetty starts a little after
    the client port); the caller stops it."""
    port = free_port()
    all_settings = {**admin_settings(port), **settings}
    if kind == "zookeeper":
        server = ReferenceWithAdminServer(kind, workdir, all_settings, {
            "zookeeper.admin.enableServer": "true", "zookeeper.admin.serverPort": str(port),
            "zookeeper.admin.serverAddress": "127.0.0.1", **(properties or {})})
    else:
        server = ServerProcess(kind, workdir, all_settings, properties)
    server.admin_port = port
    server.start(timeout_s=60)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"{kind}'s AdminServer did not start:\n{server.log_tail()}")
            time.sleep(0.2)


@pytest.fixture
def started(tmp_path):
    servers: list[ServerProcess] = []

    def start(kind, settings, properties=None):
        server = start_admin(kind, tmp_path / f"{kind}-{len(servers)}", settings, properties)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def assert_ruok(response: tuple[int, dict, bytes]) -> dict:
    status, headers, body = response
    assert status == 200, (status, body[:300])
    assert headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    assert document == {"command": "ruok", "error": None}
    return headers


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_port_unification_serves_http_and_https_on_one_port(started, pki, kind):
    server = started(kind, {"admin.portUnification": "true", **quorum_stores(pki)})
    port = server.admin_port
    secure = assert_ruok(get("https", port, "/commands/ruok", client_context(pki)))
    assert secure["Strict-Transport-Security"] == STS
    plain = assert_ruok(get("http", port, "/commands/ruok"))
    assert "Strict-Transport-Security" not in plain
    # A connection that says nothing holds up neither kind of client.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        assert_ruok(get("https", port, "/commands/ruok", client_context(pki)))
        assert_ruok(get("http", port, "/commands/ruok"))


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_force_https_refuses_plain_http(started, pki, kind):
    server = started(kind, {"admin.forceHttps": "true", **quorum_stores(pki)})
    port = server.admin_port
    headers = assert_ruok(get("https", port, "/commands/ruok", client_context(pki)))
    assert headers["Strict-Transport-Security"] == STS
    with pytest.raises((http.client.HTTPException, OSError)):
        get("http", port, "/commands/ruok", timeout=5)
    # The server certificate is the key store's, for the names the test CA signed.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_context(pki).wrap_socket(raw, server_hostname="localhost") as tls_socket:
            assert tls_socket.version() in ("TLSv1.2", "TLSv1.3")
            subject = dict(item[0] for item in tls_socket.getpeercert()["subject"])
            assert subject["commonName"] == "localhost"


@pytest.mark.parametrize("store_kind", ["jks", "p12", "pem"])
def test_every_store_format_serves_https(started, pki, store_kind):
    server = started("zkpy", {"admin.forceHttps": "true", **quorum_stores(pki, store_kind)})
    assert_ruok(get("https", server.admin_port, "/commands/ruok", client_context(pki)))


def test_commands_and_dashboard_over_https_with_keep_alive(started, pki):
    server = started("zkpy", {"admin.portUnification": "true", **quorum_stores(pki)})
    connection = http.client.HTTPSConnection("127.0.0.1", server.admin_port, timeout=10,
                                             context=client_context(pki))
    try:
        for name in ("ruok", "monitor", "server_stats"):
            connection.request("GET", f"/commands/{name}")
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["command"] == name
            assert response.getheader("Connection") == "keep-alive"
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/html")
        assert response.getheader("Strict-Transport-Security") == STS
        response.read()
        connection.request("GET", "/api/overview")
        response = connection.getresponse()
        assert json.loads(response.read())["server"]["mode"] == "standalone"
    finally:
        connection.close()


def test_system_properties_turn_https_on(started, pki):
    properties = {f"zookeeper.{key}": value for key, value in quorum_stores(pki).items()}
    properties["zookeeper.admin.forceHttps"] = "true"
    server = started("zkpy", {}, properties)
    assert_ruok(get("https", server.admin_port, "/commands/ruok", client_context(pki)))


def test_https_without_a_trust_store(tmp_path, pki):
    """ZooKeeper's AdminServer loads both stores; without a trust store it does not start and
    the server runs without it. zkpy refuses the configuration, naming the missing key."""
    settings = {"admin.portUnification": "true",
                "ssl.quorum.keyStore.location": str(pki.server.jks),
                "ssl.quorum.keyStore.password": STORE_PASSWORD}
    port = free_port()
    reference = ReferenceWithAdminServer("zookeeper", tmp_path / "reference",
                                         {**admin_settings(port), **settings},
                                         {"zookeeper.admin.enableServer": "true",
                                          "zookeeper.admin.serverPort": str(port),
                                          "zookeeper.admin.serverAddress": "127.0.0.1"})
    try:
        reference.start(timeout_s=60)
        time.sleep(2)  # as long as its Jetty takes to come up when it does
        assert four_letter_word(reference.port, "ruok") == "imok"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        reference.stop()
    ours = ServerProcess("zkpy", tmp_path / "zkpy", {**admin_settings(free_port()), **settings})
    try:
        with pytest.raises(RuntimeError, match="exited with 2"):
            ours.start(timeout_s=30)
    finally:
        ours.stop()
    assert "ssl.quorum.trustStore.location" in ours.log_path.read_text()


def test_an_unreadable_key_store_stops_the_server(tmp_path, pki):
    settings = {**admin_settings(free_port()), "admin.forceHttps": "true", **quorum_stores(pki),
                "ssl.quorum.keyStore.password": "not-the-password"}
    server = ServerProcess("zkpy", tmp_path / "zkpy", settings)
    try:
        with pytest.raises(RuntimeError, match="exited with 4"):
            server.start(timeout_s=30)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Unable to start AdminServer" in log
    assert str(pki.server.jks) in log
