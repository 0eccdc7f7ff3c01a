"""Helpers for the TLS and SASL scenarios (tests/scenario/test_tls.py, test_sasl.py).

* :func:`make_pki` makes a throw-away CA, a server certificate for 127.0.0.1/localhost and client
  certificates with ``cryptography``, then the stores ZooKeeper users have: PEM files, and JKS and
  PKCS12 key and trust stores written by the JDK's own ``keytool``.
* :class:`SecureServer` is a ServerProcess whose reference ZooKeeper has the Netty jars its TLS
  needs on the classpath (test-local: the shared launcher is left as it is).
* :func:`java_client` runs tests/scenario/java/ZkSecurityClient.java (compiled once, cached by
  tests.support.javatools) and returns its output lines.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from tests.support.javatools import compile_java, java_command, resolve_classpath
from tests.support.servers import ServerProcess

HERE = Path(__file__).resolve().parents[1] / "scenario" / "java"
STORE_PASSWORD = "changeit"
NETTY_SERVER_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
# What the Java client's and the reference server's Netty TLS needs beyond zookeeper.jar's own
# manifest (which names netty-handler, -buffer, -common, -transport and -transport-native-epoll).
NETTY_JARS = ("netty-handler.jar", "netty-codec.jar", "netty-buffer.jar", "netty-common.jar",
              "netty-transport.jar", "netty-resolver.jar",
              "netty-transport-native-unix-common.jar")
JAVA_DIR = Path("/usr/share/java")
INSTALL_HINT = ("install the JDK, openssl and Debian's ZooKeeper with its Netty jars: `make "
                "reference` (apt-get install -y openjdk-17-jdk-headless openssl zookeeper "
                "libnetty-java)")

# The client certificate's subject, and the same name as Java's X500Principal.getName() writes
# it: the x509 id ZooKeeper gives the connection (RDNs reversed, the comma escaped, the e-mail
# attribute as its OID with the hex of its DER value).
CLIENT_DN = ("1.2.840.113549.1.9.1=#16117a6b2d636c69656e74406578616d706c65,"
             "CN=zk-client,OU=clients,O=zkpy\\, test,C=DE")
OTHER_DN = "CN=intruder,O=elsewhere"


def require_jdk_tools() -> None:
    missing = [tool for tool in ("java", "javac", "keytool", "openssl")
               if shutil.which(tool) is None]
    missing += [jar for jar in NETTY_JARS if not (JAVA_DIR / jar).exists()]
    if missing:
        raise RuntimeError(f"missing {missing}: {INSTALL_HINT}")


class Identity(NamedTuple):
    key_pem: Path      # the private key alone (PKCS#8, unencrypted)
    cert_pem: Path     # the certificate alone
    bundle_pem: Path   # encrypted key + certificate + CA: a ZooKeeper PEM key store
    jks: Path          # keytool-made JKS key store
    p12: Path          # keytool-made PKCS12 key store


class Pki(NamedTuple):
    directory: Path
    ca_pem: Path
    trust_jks: Path
    trust_p12: Path
    server: Identity
    client: Identity
    other: Identity    # a second client, trusted, with another subject


def _keytool(*args: str) -> None:
    result = subprocess.run(["keytool", "-noprompt", *args], capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"keytool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def make_pki(directory: Path) -> Pki:
    """A CA, a server and two clients, in every store format, under ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    require_jdk_tools()
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    encoding = serialization.Encoding.PEM

    def certificate(subject, key, issuer, issuer_key, ca=False, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zkpy test CA")])
    ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(encoding))

    def identity(name: str, subject, san=None) -> Identity:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = certificate(subject, key, ca_name, ca_key, san=san)
        key_bytes = key.private_bytes(encoding, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        paths = Identity(*(directory / f"{name}{suffix}" for suffix in
                           ("-key.pem", "-cert.pem", ".pem", ".jks", ".p12")))
        paths.key_pem.write_bytes(key_bytes)
        paths.cert_pem.write_bytes(cert.public_bytes(encoding))
        # ZooKeeper's PEM key store: with ssl.keyStore.password set, the key must be encrypted
        # PKCS#8 under that password, with a PBES1 scheme: ZooKeeper 3.8's PemReader has no
        # PBES2 (what cryptography writes), so the openssl CLI encrypts it.
        result = subprocess.run(["openssl", "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES",
                                 "-in", str(paths.key_pem), "-passout", f"pass:{STORE_PASSWORD}"],
                                capture_output=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"openssl pkcs8 failed: {result.stderr.decode(errors='replace')}")
        paths.bundle_pem.write_bytes(result.stdout + cert.public_bytes(encoding)
                                     + ca.public_bytes(encoding))
        interchange = directory / f"{name}-interchange.p12"
        interchange.write_bytes(pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, [ca],
            serialization.BestAvailableEncryption(STORE_PASSWORD.encode())))
        for store, kind in ((paths.jks, "JKS"), (paths.p12, "PKCS12")):
            _keytool("-importkeystore", "-srckeystore", str(interchange), "-srcstoretype", "PKCS12",
                     "-srcstorepass", STORE_PASSWORD, "-destkeystore", str(store),
                     "-deststoretype", kind, "-deststorepass", STORE_PASSWORD,
                     "-destkeypass", STORE_PASSWORD)
        return paths

    server = identity("server", x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
                      san=[x509.DNSName("localhost"),
                           x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client = identity("client", x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zkpy, test"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "clients"),
        x509.NameAttribute(NameOID.COMMON_NAME, "zk-client"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "zk-client@example"),
    ]))
    other = identity("other", x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "elsewhere"),
        x509.NameAttribute(NameOID.COMMON_NAME, "intruder"),
    ]))
    trust_jks, trust_p12 = directory / "truststore.jks", directory / "truststore.p12"
    for store, kind in ((trust_jks, "JKS"), (trust_p12, "PKCS12")):
        _keytool("-importcert", "-alias", "ca", "-file", str(ca_pem), "-keystore", str(store),
                 "-storetype", kind, "-storepass", STORE_PASSWORD)
    return Pki(directory, ca_pem, trust_jks, trust_p12, server, client, other)


class SecureServer(ServerProcess):
    """A server; the reference one gets the Netty jars its TLS needs on its classpath."""

    def command(self, config_path: Path) -> list[str]:
        command = super().command(config_path)
        if self.kind == "zookeeper":
            index = command.index("-cp") + 1
            command[index] += ":" + ":".join(str(JAVA_DIR / jar) for jar in NETTY_JARS)
        return command


def client_classpath() -> list[str]:
    require_jdk_tools()
    classpath = resolve_classpath(["zookeeper.jar", *NETTY_JARS])
    classes = compile_java([HERE / "ZkSecurityClient.java"], classpath)
    return [str(classes), *classpath]


def java_client(connect_string: str, commands: list[str], properties: dict[str, str],
                timeout_s: float = 120.0) -> list[str]:
    """Run ZkSecurityClient with ``-Dname=value`` properties; its output lines."""
    options = ["-Xmx256m", *[f"-D{name}={value}" for name, value in properties.items()]]
    command = java_command("ZkSecurityClient", client_classpath(), [connect_string, *commands],
                           options)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    lines = result.stdout.splitlines()
    if result.returncode != 0:
        raise AssertionError(f"java client exited {result.returncode}:\n{result.stdout}\n"
                             f"{result.stderr[-3000:]}")
    return lines


def tls_client_properties(pki: Pki, identity: Identity | None = None) -> dict[str, str]:
    """The Java client's TLS settings (Netty socket, JKS stores)."""
    properties = {
        "zookeeper.client.secure": "true",
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        "zookeeper.ssl.trustStore.location": str(pki.trust_jks),
        "zookeeper.ssl.trustStore.password": STORE_PASSWORD,
    }
    if identity is not None:
        properties["zookeeper.ssl.keyStore.location"] = str(identity.jks)
        properties["zookeeper.ssl.keyStore.password"] = STORE_PASSWORD
    return properties
