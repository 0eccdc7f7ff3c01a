"""Unit tests for zkpy.auth (DIGEST-MD5, JAAS, X.500 names), the TLS stores and the ssl.* /
SASL settings in zkpy.config. The scenario tests (tests/scenario/test_tls.py, test_sasl.py)
check the same against real clients and the reference ZooKeeper."""

from __future__ import annotations

import pytest

from jute import records as r
from zkpy.auth import jaas
from zkpy.auth.digest_md5 import (DigestMD5Server, SaslAuthenticator, SaslError,
                                  parse_directives, response_value)
from zkpy.auth.x500 import java_rfc2253, valid_dn
from zkpy.config import ConfigError, build_config
from zkpy.runtime.tls import openssl_cipher_name
from zkpy.tree import acl


# -- DIGEST-MD5 ---------------------------------------------------------------------------------

def test_rfc2831_example_values():
    # RFC 2831 section 4: the response and rspauth of its IMAP example.
    args = dict(username="chris", realm="elwood.innosoft.com", password="secret",
                nonce=b"OA6MG9tEQGm2hh", cnonce=b"OA6MHXh6VqTrRk", nc=b"00000001", qop=b"auth",
                digest_uri=b"imap/elwood.innosoft.com", authzid=None)
    assert response_value(**args, client=True) == b"d388dad90d4bbd760a152321f2143af7"
    assert response_value(**args, client=False) == b"ea40f60335c427b5527b84dbabcdfffd"


def _client_response(server: DigestMD5Server, user: str, password: str, **overrides) -> bytes:
    challenge = parse_directives(server.evaluate(b""))
    assert challenge["realm"] == b"zk-sasl-md5" and challenge["qop"] == b"auth"
    values = {"charset": b"utf-8", "username": user.encode(), "realm": b"zk-sasl-md5",
              "nonce": challenge["nonce"], "nc": b"00000001", "cnonce": b"c-nonce",
              "digest-uri": b"zookeeper/zk-sasl-md5", "qop": b"auth"}
    values.update(overrides)
    values["response"] = response_value(
        user, values["realm"].decode(), password, values["nonce"], values["cnonce"], values["nc"],
        values["qop"], values["digest-uri"], values.get("authzid"), client=True)
    quoted = ("username", "realm", "nonce", "cnonce", "digest-uri", "authzid")
    return b",".join(name.encode() + b"=" + (b'"' + value + b'"' if name in quoted else value)
                     for name, value in values.items())


def test_digest_md5_exchange_and_failures():
    auth = SaslAuthenticator({"alice": "secret", "jürgen": "pässwort"})
    server = auth.exchange()
    reply = server.evaluate(_client_response(server, "alice", "secret"))
    assert reply.startswith(b"rspauth=") and server.complete and server.authorization_id == "alice"
    with pytest.raises(SaslError):  # nothing after completion
        server.evaluate(b"")
    # ISO-8859-1 user names and passwords are hashed as ISO-8859-1 (RFC 2831 charset=utf-8).
    server = auth.exchange()
    server.evaluate(_client_response(server, "jürgen", "pässwort"))
    assert server.authorization_id == "jürgen"
    # The authzid a client asks for does not change who it is.
    server = auth.exchange()
    server.evaluate(_client_response(server, "alice", "secret", authzid=b"admin"))
    assert server.authorization_id == "alice"
    for user, password, overrides in [
            ("alice", "wrong", {}), ("mallory", "secret", {}),
            ("alice", "secret", {"realm": b"elsewhere"}),
            ("alice", "secret", {"nc": b"00000002"}),
            ("alice", "secret", {"digest-uri": b"imap/zk-sasl-md5"}),
            ("alice", "secret", {"qop": b"auth-conf"}),
            ("alice", "secret", {"nonce": b"replayed"})]:
        server = auth.exchange()
        with pytest.raises(SaslError):
            server.evaluate(_client_response(server, user, password, **overrides))
        assert not server.complete
    with pytest.raises(SaslError, match="initial response"):
        auth.exchange().evaluate(b"GSSAPI token")


def test_digest_md5_against_pure_sasl():
    from puresasl.client import SASLClient  # pure-sasl, kazoo's SASL (zkpy's test extras)

    auth = SaslAuthenticator({"alice": "secret"})
    client = SASLClient("zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5",
                                 username="alice", password="secret")
    server = auth.exchange()
    challenge = server.evaluate(client.process(None) or b"")
    final = server.evaluate(client.process(challenge))
    client.process(final)  # checks rspauth
    assert client.complete and server.authorization_id == "alice"


def test_super_password_needs_the_user_in_the_section():
    assert SaslAuthenticator({"super": "a"}, super_password="b").password_of("super") == "b"
    assert SaslAuthenticator({}, super_password="b").password_of("super") is None


# -- JAAS ---------------------------------------------------------------------------------------

def test_jaas_sections_options_comments_and_properties():
    sections = jaas.parse("""
        /* the server */ Server {
            org.apache.zookeeper.server.auth.DigestLoginModule required
            user_alice="se\\"cret" user_bob=plain-1; // trailing
            com.sun.security.auth.module.Krb5LoginModule optional keyTab="${dir}/zk.keytab";
        };
        Client { org.apache.zookeeper.server.auth.DigestLoginModule required username="a"; };
    """, properties={"dir": "/etc/zk"})
    server = sections["Server"]
    assert server[0].options == {"user_alice": 'se"cret', "user_bob": "plain-1"}
    assert server[1].flag == "optional" and server[1].options["keyTab"] == "/etc/zk/zk.keytab"
    assert sections["Client"][0].options == {"username": "a"}
    for bad in ("Server { x required a=b }", "Server { x maybe; };", "Server x",
                "Server { x required a b; };", "Server { x required a=\"b; };"):
        with pytest.raises(jaas.JaasError):
            jaas.parse(bad)


# -- X.500 names (checked against Java's X500Principal during development) ----------------------

def _name(*rdns) -> bytes:
    def tlv(tag, body):
        length = len(body)
        header = bytes([length]) if length < 128 else bytes([0x81, length])
        return bytes([tag]) + header + body

    def oid(dotted):
        parts = [int(p) for p in dotted.split(".")]
        body = bytes([40 * parts[0] + parts[1]])
        for part in parts[2:]:
            chunk = [part & 0x7F]
            part >>= 7
            while part:
                chunk.append(0x80 | (part & 0x7F))
                part >>= 7
            body += bytes(reversed(chunk))
        return tlv(0x06, body)

    return tlv(0x30, b"".join(
        tlv(0x31, b"".join(tlv(0x30, oid(o) + tlv(tag, value.encode("utf-8")))
                           for o, tag, value in rdn)) for rdn in rdns))


def test_java_rfc2253_names():
    cn, o, c, email = "2.5.4.3", "2.5.4.10", "2.5.4.6", "1.2.840.113549.1.9.1"
    assert java_rfc2253(_name([(c, 0x13, "DE")], [(o, 0x0C, "zkpy, test")],
                               [(cn, 0x0C, "zk-client")])) == "CN=zk-client,O=zkpy\\, test,C=DE"
    assert java_rfc2253(_name([(cn, 0x0C, " a+b=c #1 ")], [(email, 0x16, "x@y")])) == \
        "1.2.840.113549.1.9.1=#1603784079,CN=\\ a\\+b\\=c \\#1\\ "
    assert java_rfc2253(_name([(cn, 0x0C, "multi"), ("0.9.2342.19200300.100.1.1", 0x0C, "u")])) \
        == "CN=multi+UID=u"
    assert java_rfc2253(_name([("2.5.4.12", 0x0C, "boss")])) == "2.5.4.12=#0c04626f7373"


def test_valid_dn_as_x500principal():
    for good in ("CN=a,O=b", "cn=a, o=b", "CN=a;O=b", "OID.2.5.4.3=x", "2.5.4.3=#0c0161",
                 "CN=a+UID=b", 'CN="quoted, value"', "CN=a\\,b", "CN=a\\2Cb", "CN=",
                 "EMAILADDRESS=a@b,SERIALNUMBER=1", ""):
        assert valid_dn(good), good
    for bad in ("CN=a,b", "foo", "CN", "=a", "XX=a", "CN=a\\", 'CN="open', "CN=#zz", "CN=a<b",
                "CN=a\\q", "CN=a+", "CN=a,", "alice"):
        assert not valid_dn(bad), bad


def test_sasl_and_x509_acls_only_with_their_providers():
    bare = acl.AclChecker()
    assert not bare.valid_acl_id(r.Id("sasl", "alice"))
    assert not bare.id_matches(r.Id("x509", "CN=a"), r.Id("x509", "CN=a"))
    checker = acl.AclChecker({"sasl", "x509"}, x509_super_user="CN=root")
    assert checker.valid_acl_id(r.Id("sasl", "alice")) and not checker.valid_acl_id(r.Id("sasl", "a@b@c"))
    assert checker.valid_acl_id(r.Id("x509", "CN=a,O=b")) and not checker.valid_acl_id(r.Id("x509", "a"))
    assert checker.id_matches(r.Id("sasl", "super"), r.Id("sasl", "alice"))
    assert checker.id_matches(r.Id("x509", "CN=root"), r.Id("x509", "CN=a"))
    assert not checker.id_matches(r.Id("x509", "CN=b"), r.Id("x509", "CN=a"))
    fixed = checker.fixup_acl([r.ACL(31, r.Id("auth", ""))],
                              (r.Id("ip", "127.0.0.1"), r.Id("x509", "CN=a")))
    assert fixed == (r.ACL(31, r.Id("x509", "CN=a")),)
    # Two servers of one process (simulated members) do not share their providers.
    assert not bare.valid_acl_id(r.Id("x509", "CN=a,O=b"))
    assert bare.fixup_acl([r.ACL(31, r.Id("auth", ""))], (r.Id("x509", "CN=a"),)) is None


# -- settings -----------------------------------------------------------------------------------

def test_tls_settings_from_zoo_cfg_and_properties(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    config = build_config(
        {"secureClientPort": "2281", "ssl.keyStore.location": "/k/server.jks",
         "ssl.keyStore.passwordPath": str(secret), "ssl.clientAuth": "WANT",
         "authProvider.1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"},
        {"zookeeper.ssl.trustStore.location": "/k/trust.p12",
         "zookeeper.ssl.keyStore.location": "/ignored/by/zoo.cfg.jks",
         "zookeeper.ssl.enabledProtocols": "TLSv1.3,TLSv1.2",
         "java.security.auth.login.config": "/k/jaas.conf", "zookeeper.superUser": "admin"})
    tls = config.tls
    assert config.secure_client_port == 2281 and config.secure_client_port_address == "0.0.0.0"
    assert (tls.keystore_location, tls.keystore_type, tls.keystore_password) == \
        ("/k/server.jks", "JKS", "from-file")
    assert (tls.truststore_type, tls.client_auth) == ("PKCS12", "want")
    assert tls.enabled_protocols == ("TLSv1.3", "TLSv1.2")
    assert config.auth.schemes == {"sasl", "x509"}  # secureClientPort brings x509
    assert config.auth.jaas_config == "/k/jaas.conf" and config.auth.sasl_super_users == ("admin",)
    assert not any(key.startswith(("ssl.", "authProvider", "secure")) for key in config.ignored)
    assert build_config({}).tls is None and build_config({}).auth.schemes == frozenset()


@pytest.mark.parametrize("settings, message", [
    ({"ssl.keyStore.location": "/k/server.keystore"}, "auto-detect"),
    ({"ssl.keyStore.location": "/k/s.jks", "ssl.clientAuth": "maybe"}, "ssl.clientAuth"),
    ({"ssl.keyStore.location": "/k/s.jks", "ssl.keyStore.type": "BCFKS"}, "BCFKS"),
    ({"ssl.keyStore.location": "/k/s.jks", "ssl.protocol": "SSLv3"}, "SSLv3"),
    ({}, "ssl.keyStore.location"),
    ({"ssl.keyStore.location": "/k/s.jks", "ssl.authProvider": "mine"}, "ssl.authProvider"),
])
def test_tls_settings_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"secureClientPort": "2281", **settings})


def test_secure_address_needs_secure_port():
    with pytest.raises(ConfigError, match="secureClientPortAddress"):
        build_config({"secureClientPortAddress": "127.0.0.1"})


def test_cipher_suite_names():
    assert openssl_cipher_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"
    assert openssl_cipher_name("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA") == "ECDHE-ECDSA-AES256-SHA"
    assert openssl_cipher_name("TLS_RSA_WITH_AES_256_GCM_SHA384") == "AES256-GCM-SHA384"
    assert openssl_cipher_name("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256") == \
        "DHE-RSA-CHACHA20-POLY1305"
    assert openssl_cipher_name("TLS_AES_128_GCM_SHA256") is None


def test_the_same_auth_acl_object_is_fixed_up_for_each_connection_anew():
    """fixup_acl remembers static ACL lists by identity; an ``auth`` list depends on who asks."""
    checker = acl.AclChecker()
    by_auth = (r.ACL(31, r.Id("auth", "")),)
    world = (r.ACL(31, r.Id("world", "anyone")),)
    alice = (r.Id("digest", "alice:hash"),)
    bob = (r.Id("digest", "bob:hash"),)
    assert checker.fixup_acl(world, alice) == world
    assert checker.fixup_acl(world, bob) == world
    assert checker.fixup_acl(by_auth, alice) == (r.ACL(31, alice[0]),)
    assert checker.fixup_acl(by_auth, bob) == (r.ACL(31, bob[0]),)
    assert checker.fixup_acl(by_auth, ()) is None
    assert checker.fixup_acl((), alice) is None
