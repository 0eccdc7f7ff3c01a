"""etcd's API over TLS on etcd.secureClientPort, with the client port's ssl.* key and trust
stores (a JKS key store here, as ZooKeeper's operators have them): etcdctl with the CA and a
client certificate is served, without a client certificate it is refused."""

from __future__ import annotations

from tests.support.etcdservers import EtcdServer, etcdctl
from tests.support.securitytools import STORE_PASSWORD, make_pki
from tests.support.servers import free_port


def test_etcdctl_over_tls_with_client_certificates(tmp_path):
    pki = make_pki(tmp_path / "pki")
    secure_port = free_port()
    server = EtcdServer("zkpy", tmp_path / "zkpy", settings={
        "etcd.secureClientPort": str(secure_port),
        "ssl.keyStore.location": str(pki.server.jks),
        "ssl.keyStore.password": STORE_PASSWORD,
        "ssl.trustStore.location": str(pki.trust_jks),
        "ssl.trustStore.password": STORE_PASSWORD,
    }).start()
    try:
        secure = f"https://127.0.0.1:{secure_port}"
        tls = [f"--cacert={pki.ca_pem}", f"--cert={pki.client.cert_pem}",
               f"--key={pki.client.key_pem}"]
        etcdctl(secure, *tls, "put", "/secure/a", "over tls")
        assert etcdctl(secure, *tls, "get", "/secure/a", "--print-value-only").stdout == \
            "over tls\n"
        # The plaintext port serves the same store.
        assert etcdctl(server.endpoint, "get", "/secure/a", "--print-value-only").stdout == \
            "over tls\n"
        refused = etcdctl(secure, f"--cacert={pki.ca_pem}", "--dial-timeout=3s",
                          "--command-timeout=5s", "get", "/secure/a", check=False)
        assert refused.returncode != 0
    finally:
        server.stop()
