"""TLS on secureClientPort, for zkpy and the reference ZooKeeper alike (the reference proves
each check sound: it runs NettyServerCnxnFactory with the Netty jars on its classpath).

Certificates are made at test time (tests.support.securitytools): a CA, a server certificate for
127.0.0.1, two client certificates, and the stores in each format ZooKeeper reads - JKS and
PKCS12 written by the JDK's keytool, and PEM. Each server reads its key and trust stores from
zoo.cfg ssl.* keys; the type comes from the file extension, as ZooKeeper infers it.

Checked on both servers: kazoo (use_ssl, client certificate) creates and reads; the client
certificate's subject is the connection's x509 id, so an ``x509:<dn>`` ACL admits that client and
not another; the Java client (Netty, zookeeper.client.secure) connects, its whoAmI shows the
x509 id and an ``auth`` ACL expands to it; a plaintext client on the secure port gets no session
while the plain port keeps working; ssl.clientAuth need/want/none.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

from jute import records as r
from jute.framing import frame
from tests.support.securitytools import (CLIENT_DN, NETTY_SERVER_FACTORY, OTHER_DN,
                                         STORE_PASSWORD, SecureServer, java_client, make_pki,
                                         tls_client_properties)
from tests.support.servers import KINDS, free_port

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def secure_server(tmp_path, pki):
    """``secure_server(kind, keystore, truststore, tls_only=False, **ssl_settings)`` starts a
    server with secureClientPort; every one is stopped when the test ends."""
    started: list[SecureServer] = []

    def start(kind, keystore, truststore, tls_only=False, **extra):
        secure_port = free_port()
        settings = {
            "secureClientPort": str(secure_port),
            "secureClientPortAddress": "127.0.0.1",
            "ssl.keyStore.location": str(keystore),
            "ssl.keyStore.password": STORE_PASSWORD,
            "ssl.trustStore.location": str(truststore),
            "ssl.trustStore.password": STORE_PASSWORD,
            **extra,
        }
        # The reference serves TLS only with its Netty connection factory; zkpy takes the same
        # property and needs nothing of the kind.
        server = (TlsOnlyServer if tls_only else SecureServer)(
            kind, tmp_path / f"{kind}-{len(started)}", settings,
            {"zookeeper.serverCnxnFactory": NETTY_SERVER_FACTORY})
        server.secure_port = secure_port
        server.pki = pki
        started.append(server)
        return server.start(timeout_s=60)

    yield start
    for server in started:
        server.stop()


class TlsOnlyServer(SecureServer):
    """No clientPort in zoo.cfg: the server listens on secureClientPort alone. It is ready when
    it answers srvr over TLS."""

    pki = None

    def config_text(self) -> str:
        return "".join(line + "\n" for line in super().config_text().splitlines()
                       if not line.startswith(("clientPort=", "clientPortAddress=")))

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited; log:\n{self.log_tail()}")
            try:
                if "Mode:" in tls_four_letter_word(self.secure_port, "srvr", self.pki):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer srvr over TLS; log:\n{self.log_tail()}")


def tls_four_letter_word(port: int, word: str, pki) -> str:
    context = ssl.create_default_context(cafile=str(pki.ca_pem))
    context.check_hostname = False
    context.load_cert_chain(str(pki.client.cert_pem), str(pki.client.key_pem))
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as sock:
            sock.sendall(word.encode())
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def tls_kazoo(server, pki, identity=None) -> KazooClient:
    """A started kazoo client on the secure port, presenting ``identity``'s certificate."""
    options = {"use_ssl": True, "ca": str(pki.ca_pem)}
    if identity is not None:
        options.update(certfile=str(identity.cert_pem), keyfile=str(identity.key_pem))
    client = KazooClient(f"127.0.0.1:{server.secure_port}", timeout=20, **options)
    client.start(timeout=30)
    return client


def plaintext_on_secure_port(port: int) -> bytes:
    """Send a plaintext ConnectRequest to the TLS port; what comes back before the close."""
    request = r.ConnectRequest(0, 0, 30000, 0, bytes(16), False)
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(frame(r.ConnectRequest.encode(request)))
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    return received


def handshake_without_certificate(port: int, pki) -> str:
    """A TLS client with no certificate: "connected" if the server gives it a session."""
    context = ssl.create_default_context(cafile=str(pki.ca_pem))
    context.check_hostname = False
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    request = r.ConnectRequest(0, 0, 30000, 0, bytes(16), False)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
            with context.wrap_socket(raw) as sock:
                sock.sendall(frame(r.ConnectRequest.encode(request)))
                reply = sock.recv(4096)
    except (ssl.SSLError, ConnectionError):
        return "refused"
    return "connected" if len(reply) >= 4 else "refused"


STORES = {
    "JKS": lambda pki: (pki.server.jks, pki.trust_jks),
    "PKCS12": lambda pki: (pki.server.p12, pki.trust_p12),
    "PEM": lambda pki: (pki.server.bundle_pem, pki.ca_pem),
}


@pytest.mark.parametrize("store", list(STORES))
@pytest.mark.parametrize("kind", KINDS)
def test_tls_clients_and_x509_acls(kind, store, pki, secure_server):
    server = secure_server(kind, *STORES[store](pki))
    client = tls_kazoo(server, pki, pki.client)
    other = tls_kazoo(server, pki, pki.other)
    plain = KazooClient(server.connect_string, timeout=20)
    plain.start(timeout=30)
    try:
        client.create("/tls", b"over tls")
        assert client.get("/tls")[0] == b"over tls"
        # The x509 id is the subject as Java writes it; the ACL admits that certificate only.
        client.create("/mine", b"secret", acl=[make_acl("x509", CLIENT_DN, all=True)])
        assert client.get("/mine")[0] == b"secret"
        with pytest.raises(NoAuthError):
            other.get("/mine")
        with pytest.raises(NoAuthError):
            plain.get("/mine")
        other.create("/theirs", b"", acl=[make_acl("x509", OTHER_DN, read=True, write=True)])
        with pytest.raises(NoAuthError):
            client.get("/theirs")
        # The plain port serves as before, the same tree.
        assert plain.get("/tls")[0] == b"over tls"
    finally:
        for each in (client, other, plain):
            each.stop()
            each.close()
    # A plaintext client on the TLS port gets no session: the server answers at most a TLS
    # alert record (type 21) and closes.
    answer = plaintext_on_secure_port(server.secure_port)
    assert answer == b"" or answer[0] == 0x15, answer[:40]
    if store == "JKS":
        lines = java_client(f"127.0.0.1:{server.secure_port}",
                            ["await", "SyncConnected", "whoami", "get", "/mine",
                             "create", "/java", "from java", "auth:", "getacl", "/java",
                             "get", "/java"],
                            tls_client_properties(pki, pki.client))
        assert "ok await SyncConnected" in lines, lines
        whoami = next(line for line in lines if line.startswith("ok whoami"))
        assert set(whoami.split(" ", 2)[2].split("|")) == {"ip:127.0.0.1", f"x509:{CLIENT_DN}"}
        assert "ok get /mine secret" in lines, lines
        assert f"ok getacl /java x509:{CLIENT_DN}" in lines, lines
        assert "ok get /java from java" in lines, lines


@pytest.mark.parametrize("kind", KINDS)
def test_client_auth_want_and_none(kind, pki, secure_server):
    want = secure_server(kind, pki.server.jks, pki.trust_jks, **{"ssl.clientAuth": "want"})
    none = secure_server(kind, pki.server.p12, pki.trust_p12, **{"ssl.clientAuth": "NONE"})
    need = secure_server(kind, pki.server.bundle_pem, pki.ca_pem)  # the default: need
    assert handshake_without_certificate(need.secure_port, pki) == "refused"
    assert handshake_without_certificate(want.secure_port, pki) == "connected"
    assert handshake_without_certificate(none.secure_port, pki) == "connected"
    clients = []
    try:
        # want: a certificate, if given, is the x509 id; no certificate is an anonymous client.
        with_cert = tls_kazoo(want, pki, pki.client)
        clients.append(with_cert)
        with_cert.create("/want", b"w", acl=[make_acl("x509", CLIENT_DN, all=True)])
        anonymous = tls_kazoo(want, pki)
        clients.append(anonymous)
        with pytest.raises(NoAuthError):
            anonymous.get("/want")
        # none: the server asks for no certificate, so there is no x509 id to match.
        unasked = tls_kazoo(none, pki, pki.client)
        clients.append(unasked)
        unasked.create("/none", b"n", acl=[make_acl("x509", CLIENT_DN, read=True),
                                           make_acl("world", "anyone", write=True)])
        with pytest.raises(NoAuthError):
            unasked.get("/none")
        unasked.set("/none", b"still writable")
    finally:
        for client in clients:
            client.stop()
            client.close()


def negotiated(port: int, pki, tls12_cipher: str | None = None) -> tuple[str, str] | str:
    """(TLS version, cipher) a client with a certificate gets, or "refused"."""
    context = ssl.create_default_context(cafile=str(pki.ca_pem))
    context.check_hostname = False
    context.load_cert_chain(str(pki.client.cert_pem), str(pki.client.key_pem))
    if tls12_cipher:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(tls12_cipher)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
            with context.wrap_socket(raw) as sock:
                sock.sendall(b"ruok")
                if sock.recv(16) != b"imok":
                    return "refused"
                return sock.version(), sock.cipher()[0]
    except (ssl.SSLError, ConnectionError):
        return "refused"


@pytest.mark.parametrize("kind", KINDS)
def test_protocols_and_cipher_suites(kind, pki, secure_server):
    # ZooKeeper 3.8's defaults: TLSv1.2 only, its ECDHE suites.
    default = secure_server(kind, pki.server.jks, pki.trust_jks)
    assert negotiated(default.secure_port, pki)[0] == "TLSv1.2"
    assert negotiated(default.secure_port, pki, "AES256-SHA") == "refused"  # not a default suite
    one_suite = secure_server(kind, pki.server.p12, pki.trust_p12, **{
        "ssl.ciphersuites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"})
    assert negotiated(one_suite.secure_port, pki) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    assert negotiated(one_suite.secure_port, pki, "ECDHE-RSA-AES256-GCM-SHA384") == "refused"
    # TLS 1.3 when enabled and a TLS 1.3 suite is listed.
    modern = secure_server(kind, pki.server.bundle_pem, pki.ca_pem, **{
        "ssl.enabledProtocols": "TLSv1.3,TLSv1.2",
        "ssl.ciphersuites": "TLS_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"})
    assert negotiated(modern.secure_port, pki)[0] == "TLSv1.3"
    assert negotiated(modern.secure_port, pki, "ECDHE-RSA-AES256-GCM-SHA384") == \
        ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")


@pytest.mark.parametrize("kind", KINDS)
def test_secure_client_port_alone(kind, pki, secure_server):
    """Without clientPort the server has no plaintext listener, only the TLS one."""
    server = secure_server(kind, pki.server.jks, pki.trust_jks, tls_only=True)
    client = tls_kazoo(server, pki, pki.client)
    try:
        client.create("/only-tls", b"yes")
        assert client.get("/only-tls")[0] == b"yes"
    finally:
        client.stop()
        client.close()
    assert "imok" == tls_four_letter_word(server.secure_port, "ruok", pki)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_unusable_key_store_stops_zkpy(pki, tmp_path):
    """zkpy only, on purpose: the reference logs the key store error and starts anyway, with a
    secure port that fails every handshake; zkpy refuses to start and names the store."""
    server = SecureServer("zkpy", tmp_path / "bad-store", {
        "secureClientPort": str(free_port()), "secureClientPortAddress": "127.0.0.1",
        "ssl.keyStore.location": str(pki.server.jks), "ssl.keyStore.password": "wrong",
        "ssl.trustStore.location": str(pki.trust_jks),
        "ssl.trustStore.password": STORE_PASSWORD})
    try:
        server.launch()
        assert server.process.wait(timeout=60) == 1
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "password was incorrect" in log and str(pki.server.jks) in log, log[-2000:]
