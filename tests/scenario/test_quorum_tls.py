"""sslQuorum=true: ensemble members talk TLS to each other, with certificates both ways, as
ZooKeeper's quorum TLS does (ssl.quorum.* key and trust stores, the same zoo.cfg keys).
Clients are unaffected. On zkpy, on the reference (with the Netty jars its TLS needs on the
classpath, tests.support.securitytools.SecureServer) and on the mixed ensembles, where Java and
zkpy members hold TLS connections with each other on both peer ports."""

from __future__ import annotations

import socket
import ssl

import pytest
from kazoo.client import KazooClient

from tests.support.ensemble_fixtures import leader_of
from tests.support.securitytools import STORE_PASSWORD, SecureServer, make_pki
from tests.support.servers import (ENSEMBLE_KINDS, connect_string, ensemble, four_letter_word,
                                   start_all)


def quorum_tls_settings(pki) -> dict[str, str]:
    return {
        "sslQuorum": "true",
        "ssl.quorum.keyStore.location": str(pki.server.jks),
        "ssl.quorum.keyStore.password": STORE_PASSWORD,
        "ssl.quorum.trustStore.location": str(pki.trust_jks),
        "ssl.quorum.trustStore.password": STORE_PASSWORD,
    }


def quorum_port(member) -> int:
    value = member.settings[f"server.{member.myid}"]
    return int(value.split(";")[0].split(":")[1])


@pytest.mark.parametrize("kind", ENSEMBLE_KINDS)
def test_members_talk_tls_and_replicate(kind, tmp_path):
    pki = make_pki(tmp_path / "pki")
    members = ensemble(kind, tmp_path / "ensemble", 3, settings=quorum_tls_settings(pki),
                       server_class=SecureServer)
    try:
        start_all(members)
        modes = sorted(line.split(":", 1)[1].strip()
                       for m in members for line in four_letter_word(m.port, "srvr").splitlines()
                       if line.startswith("Mode:"))
        assert modes == ["follower", "follower", "leader"]
        client = KazooClient(connect_string(members))
        client.start()
        client.create("/over-tls", b"v")
        client.stop()
        for member in members:
            reader = KazooClient(member.connect_string)
            reader.start()
            reader.sync("/over-tls")
            assert reader.get("/over-tls")[0] == b"v"
            reader.stop()
        # The quorum port speaks TLS and wants a certificate the trust store vouches for. A
        # Java member listens on it only while it leads, so the leader's is probed.
        port = quorum_port(leader_of(members))
        anonymous = ssl.create_default_context(cafile=str(pki.ca_pem))
        anonymous.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                with anonymous.wrap_socket(raw) as tls_socket:
                    tls_socket.sendall(b"\x00\x00\x00\x01x")
                    if tls_socket.recv(1) == b"":
                        raise ConnectionError("closed")
        trusted = ssl.create_default_context(cafile=str(pki.ca_pem))
        trusted.check_hostname = False
        trusted.load_cert_chain(str(pki.server.cert_pem), str(pki.server.key_pem))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with trusted.wrap_socket(raw) as tls_socket:
                assert tls_socket.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        for member in members:
            member.stop()
