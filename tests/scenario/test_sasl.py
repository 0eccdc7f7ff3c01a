"""SASL DIGEST-MD5 for clients, for zkpy and the reference ZooKeeper alike.

Both servers get the same JAAS file (``-Djava.security.auth.login.config``) with a ``Server``
section of DigestLoginModule users, and the SASLAuthenticationProvider
(``-Dzookeeper.authProvider.1``) that makes ``sasl`` ACLs valid. Checked on both: kazoo
(``sasl_options``, through pure-sasl) and the Java client (a JAAS ``Client`` section) log in as
alice; ``sasl:alice`` ACLs admit her and nobody else, ``auth`` ACLs expand to her id, a
zookeeper.superUser passes every ACL; a wrong password or an unknown user fails the way the
reference fails it (kazoo: AuthFailedError; Java: an AuthFailed event and AUTHFAILED
afterwards); without the provider the login still works but sasl ACLs are invalid; a JAAS file
that cannot be read stops the server. zkpy only: a Kerberos login module is logged and left
out (zkpy has no GSSAPI), the DIGEST-MD5 users of the section still work.
"""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError
from kazoo.security import CREATOR_ALL_ACL, make_acl

from tests.support.securitytools import java_client
from tests.support.servers import KINDS, ServerProcess

pytestmark = pytest.mark.compat

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
SERVER_JAAS = """\
// DIGEST-MD5 users, as ZooKeeper's administrator's guide writes them
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_alice="secret"
    user_bob="bob's secret"
    user_admin="adminsecret";
};
"""
CLIENT_JAAS = """\
Client {{
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="{user}"
    password="{password}";
}};
"""


def require_pure_sasl() -> None:
    try:
        import puresasl  # noqa: F401  (kazoo's SASL needs it)
    except ImportError:
        raise RuntimeError("kazoo's SASL needs pure-sasl: pip install pure-sasl "
                           "(it is in zkpy's test extras)") from None


@pytest.fixture
def sasl_server(tmp_path):
    """``sasl_server(kind, jaas=SERVER_JAAS, provider=True, **properties)`` starts a server
    with that JAAS file; every one is stopped when the test ends."""
    started: list[ServerProcess] = []

    def make(kind, jaas=SERVER_JAAS, provider=True, **properties):
        workdir = tmp_path / f"{kind}-{len(started)}"
        workdir.mkdir(parents=True)
        jaas_path = workdir / "jaas.conf"
        if jaas is not None:
            jaas_path.write_text(jaas)
        jvm = {"java.security.auth.login.config": str(jaas_path), **properties}
        if provider:
            jvm["zookeeper.authProvider.1"] = SASL_PROVIDER
        server = ServerProcess(kind, workdir, None, jvm)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def sasl_kazoo(server, user: str, password: str) -> KazooClient:
    require_pure_sasl()
    client = KazooClient(server.connect_string, timeout=20, sasl_options={
        "mechanism": "DIGEST-MD5", "username": user, "password": password})
    client.start(timeout=30)
    return client


def failed_login(server, user: str, password: str) -> str:
    """What kazoo reports for a login the server refuses (at start or on the first request)."""
    require_pure_sasl()
    client = KazooClient(server.connect_string, timeout=20, sasl_options={
        "mechanism": "DIGEST-MD5", "username": user, "password": password})
    try:
        client.start(timeout=30)
        client.get("/")
        return "logged in"
    except AuthFailedError:
        return "AuthFailedError"
    finally:
        client.stop()
        client.close()


def client_jaas(tmp_path, user: str, password: str) -> str:
    path = tmp_path / f"client-{user}-{len(password)}.conf"
    path.write_text(CLIENT_JAAS.format(user=user, password=password))
    return str(path)


@pytest.mark.parametrize("kind", KINDS)
def test_digest_md5_logins_and_sasl_acls(kind, sasl_server, tmp_path):
    server = sasl_server(kind, **{"zookeeper.superUser": "admin"}).start(timeout_s=60)
    alice = sasl_kazoo(server, "alice", "secret")
    bob = sasl_kazoo(server, "bob", "bob's secret")
    admin = sasl_kazoo(server, "admin", "adminsecret")
    anonymous = KazooClient(server.connect_string, timeout=20)
    anonymous.start(timeout=30)
    try:
        alice.create("/alice", b"hers", acl=[make_acl("sasl", "alice", all=True)])
        assert alice.get("/alice")[0] == b"hers"
        for stranger in (bob, anonymous):
            with pytest.raises(NoAuthError):
                stranger.get("/alice")
        assert admin.get("/alice")[0] == b"hers"  # zookeeper.superUser passes every ACL
        alice.create("/mine", b"", acl=CREATOR_ALL_ACL)
        acl, _ = alice.get_acls("/mine")
        assert [(a.id.scheme, a.id.id) for a in acl] == [("sasl", "alice")]
        with pytest.raises(InvalidACLError):  # a name Kerberos rules reject
            alice.create("/bad", b"", acl=[make_acl("sasl", "a@b@c", all=True)])
    finally:
        for client in (alice, bob, admin, anonymous):
            client.stop()
            client.close()
    assert failed_login(server, "alice", "wrong") == "AuthFailedError"
    # An unknown user. (Not with a known user's password: ZooKeeper 3.8's callback handler keeps
    # the last known user name it saw and would check an unknown name against that user's
    # password; zkpy has no such carry-over.)
    assert failed_login(server, "mallory", "mallory's own") == "AuthFailedError"

    lines = java_client(server.connect_string,
                        ["await", "SaslAuthenticated", "whoami", "get", "/alice",
                         "create", "/java", "from java", "auth:", "getacl", "/java"],
                        {"java.security.auth.login.config": client_jaas(tmp_path, "alice", "secret")})
    assert "ok await SaslAuthenticated" in lines, lines
    whoami = next(line for line in lines if line.startswith("ok whoami"))
    assert set(whoami.split(" ", 2)[2].split("|")) == {"ip:127.0.0.1", "sasl:alice"}
    assert "ok get /alice hers" in lines, lines
    assert "ok getacl /java sasl:alice" in lines, lines

    lines = java_client(server.connect_string, ["await", "AuthFailed", "get", "/alice"],
                        {"java.security.auth.login.config": client_jaas(tmp_path, "alice", "nope")})
    assert "ok await AuthFailed" in lines, lines
    assert "event SaslAuthenticated" not in lines, lines
    assert "error get AUTHFAILED" in lines, lines


@pytest.mark.parametrize("kind", KINDS)
def test_sasl_acls_need_the_provider(kind, sasl_server):
    server = sasl_server(kind, provider=False).start(timeout_s=60)
    alice = sasl_kazoo(server, "alice", "secret")
    try:
        # The login works (the JAAS section is there), but without SASLAuthenticationProvider
        # there is no sasl scheme: its ACLs are invalid and auth has no id to expand to.
        with pytest.raises(InvalidACLError):
            alice.create("/alice", b"", acl=[make_acl("sasl", "alice", all=True)])
        with pytest.raises(InvalidACLError):
            alice.create("/mine", b"", acl=CREATOR_ALL_ACL)
        alice.create("/open", b"ok")
        assert alice.get("/open")[0] == b"ok"
    finally:
        alice.stop()
        alice.close()
    assert failed_login(server, "alice", "wrong") == "AuthFailedError"


@pytest.mark.parametrize("kind", KINDS)
def test_unreadable_jaas_file_stops_the_server(kind, sasl_server):
    server = sasl_server(kind, jaas=None)  # the property names a file that is not there
    server.launch()
    assert server.process.wait(timeout=60) == 1, server.log_tail()


def test_kerberos_login_module_is_logged_and_left_out(sasl_server):
    jaas = SERVER_JAAS.replace("};", """\
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true keyTab="/etc/zookeeper/zk.keytab" principal="zookeeper/localhost@EXAMPLE";
};""")
    server = sasl_server("zkpy", jaas=jaas).start(timeout_s=60)
    alice = sasl_kazoo(server, "alice", "secret")
    try:
        alice.create("/alice", b"", acl=[make_acl("sasl", "alice", all=True)])
        assert alice.get("/alice")[0] == b""
    finally:
        alice.stop()
        alice.close()
    log = server.log_path.read_text()
    assert "Kerberos (GSSAPI) is not supported by zkpy" in log, server.log_tail()
