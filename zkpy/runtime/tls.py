"""TLS for secureClientPort: ZooKeeper's key and trust stores turned into an ``ssl.SSLContext``.

The stores are read as ZooKeeper's X509Util reads them (zkpy.config has already settled each
store's type: the ssl.*.type key, else the file extension):

* JKS with ``pyjks`` (the key entry's PKCS#8 key and certificate chain, the trusted certificate
  entries); PKCS12 with ``cryptography``. Like Java 9+ (keystore.type.compat), a JKS-typed file
  that is really PKCS12 is read as PKCS12 and the other way round.
* PEM directly: a key store file holds the private key (encrypted with ssl.keyStore.password, or
  not) and the certificate chain; a trust store file holds certificates.

The ssl module loads a certificate chain and key only from files, so they are written, the key
encrypted under a random one-time password, to a private (0700) temporary directory with 0600
files, and deleted as soon as the context has loaded them. Trusted certificates are loaded from
memory. Without a trust store the system's default CAs are trusted, as Java's default trust
manager would.

The rest of ZooKeeper's options: ssl.clientAuth need/want/none -> CERT_REQUIRED/CERT_OPTIONAL/
CERT_NONE; ssl.protocol (default TLSv1.2) and ssl.enabledProtocols (default: just ssl.protocol)
bound the protocol versions; ssl.ciphersuites are Java (IANA) names, mapped to OpenSSL's for TLS
1.2 and below (ZooKeeper's default list when unset). TLS 1.3 suites cannot be chosen one by one
in Python's ssl module: TLS 1.3 is offered when enabled and the list names at least one of them,
as a Java server with that list would.

:func:`client_identity` is the ``x509`` auth id of a connection: the subject of the client's
certificate as Java's ``X500Principal.getName()`` writes it (zkpy.auth.x500).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import ssl
import tempfile

import structlog

from zkpy.auth.x500 import subject_of_certificate
from zkpy.config import TlsConfig

log = structlog.get_logger("zkpy.tls")

# X509Util.DEFAULT_CIPHERS_JAVA9 (ZooKeeper 3.8).
DEFAULT_CIPHERSUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
)
TLS13_SUITES = frozenset(("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                          "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                          "TLS_AES_128_CCM_8_SHA256"))
_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}

_SUITE = re.compile(r"TLS_(?:(ECDHE_ECDSA|ECDHE_RSA|DHE_RSA|DHE_DSS|RSA)_WITH_)"
                    r"(AES_128|AES_256|CHACHA20|CAMELLIA_128|CAMELLIA_256|ARIA_128|ARIA_256)_"
                    r"(GCM_SHA256|GCM_SHA384|CBC_SHA|CBC_SHA256|CBC_SHA384|POLY1305_SHA256|"
                    r"CCM|CCM_8)")
_KX = {"ECDHE_ECDSA": "ECDHE-ECDSA-", "ECDHE_RSA": "ECDHE-RSA-", "DHE_RSA": "DHE-RSA-",
       "DHE_DSS": "DHE-DSS-", "RSA": ""}
_CIPHER = {"AES_128": "AES128", "AES_256": "AES256", "CHACHA20": "CHACHA20",
           "CAMELLIA_128": "CAMELLIA128", "CAMELLIA_256": "CAMELLIA256",
           "ARIA_128": "ARIA128", "ARIA_256": "ARIA256"}
_MODE = {"GCM_SHA256": "-GCM-SHA256", "GCM_SHA384": "-GCM-SHA384", "CBC_SHA": "-SHA",
         "CBC_SHA256": "-SHA256", "CBC_SHA384": "-SHA384", "POLY1305_SHA256": "-POLY1305",
         "CCM": "-CCM", "CCM_8": "-CCM8"}


class TlsError(Exception):
    """A store cannot be read or the options make no usable TLS context; says which."""


def openssl_cipher_name(iana: str) -> str | None:
    """OpenSSL's name for a TLS 1.2-and-below suite's IANA/Java name (None: not one)."""
    match = _SUITE.fullmatch(iana.strip())
    if match is None:
        return None
    kx, cipher, mode = match.groups()
    return _KX[kx] + _CIPHER[cipher] + _MODE[mode]


# -- stores ------------------------------------------------------------------------------------

def _read(location: str, what: str) -> bytes:
    try:
        with open(location, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise TlsError(f"{what} {location}: {error.strerror}") from None


def _format_of(data: bytes, kind: str) -> str:
    """JKS and PKCS12 stores are told apart by content, as Java's dual-format key stores do."""
    if kind in ("JKS", "PKCS12"):
        if data[:4] in (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"):
            return "JKS"
        if data[:1] == b"\x30":
            return "PKCS12"
    return kind


def _load_jks(data: bytes, password: str, location: str):
    import jks  # pyjks

    try:
        # Keys are decrypted by _jks_private_key, not by pyjks (see there).
        return jks.KeyStore.loads(data, password, try_decrypt_keys=False)
    except jks.util.KeystoreSignatureException:
        raise TlsError(f"{location}: keystore was tampered with, or password was incorrect") from None
    except (jks.util.BadKeystoreFormatException, jks.util.UnsupportedKeystoreTypeException,
            jks.util.DuplicateAliasException, ValueError) as error:
        raise TlsError(f"{location}: not a readable JKS store ({error})") from None


def _jks_private_key(entry, password: str) -> bytes | None:
    """The PKCS#8 bytes of a JKS private key entry, or None if ``password`` does not open it.

    pyjks's own ``decrypt`` reads the key-protection AlgorithmIdentifier's parameters, which
    JDK 17's keytool (17.0.15 here) no longer writes (it omits them instead of writing NULL), so
    pyjks fails on every such store with any pyasn1. The JavaSoft algorithm takes no
    parameters: only the OID and the encrypted bytes are read here, and pyjks's cipher does
    the rest. JCEKS entries (PBE with parameters) still go through pyjks."""
    import jks
    from pyasn1.codec.ber import decoder
    from pyasn1.error import PyAsn1Error
    from pyasn1_modules import rfc5208

    if entry.is_decrypted():
        return entry.pkey_pkcs8
    # pyjks keeps the still-encrypted entry only in this attribute; it has no public reader.
    encrypted = entry._encrypted
    try:
        info = decoder.decode(encrypted, asn1Spec=rfc5208.EncryptedPrivateKeyInfo())[0]
        algorithm = info["encryptionAlgorithm"]["algorithm"].asTuple()
        ciphertext = info["encryptedData"].asOctets()
    except PyAsn1Error:
        return None
    try:
        if algorithm == jks.sun_crypto.SUN_JKS_ALGO_ID:
            return jks.sun_crypto.jks_pkey_decrypt(ciphertext, password)
        entry.decrypt(password)
        return entry.pkey_pkcs8
    except (jks.util.DecryptionFailureException, jks.util.BadHashCheckException,
            jks.util.BadPaddingException, jks.util.UnexpectedAlgorithmException):
        return None


def _load_pkcs12(data: bytes, password: str, location: str):
    from cryptography.hazmat.primitives.serialization import pkcs12

    last_error: Exception | None = None
    for secret in ((password.encode("utf-8"),) if password else (b"", None)):
        try:
            return pkcs12.load_pkcs12(data, secret)
        except (ValueError, TypeError) as error:
            last_error = error
    raise TlsError(f"{location}: cannot read the PKCS12 store (wrong password?): {last_error}")


def _pem_blocks(data: bytes, location: str) -> list[tuple[str, bytes]]:
    blocks = [(m.group(1).decode(), m.group(0)) for m in
              re.finditer(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", data, re.DOTALL)]
    if not blocks:
        raise TlsError(f"{location}: no PEM blocks")
    return blocks


def _certificates_from_pem(data: bytes, location: str) -> list:
    from cryptography import x509

    certificates = [x509.load_pem_x509_certificate(block)
                    for label, block in _pem_blocks(data, location) if label == "CERTIFICATE"]
    return certificates


def load_key_store(location: str, password: str, kind: str):
    """(private key, [leaf certificate, chain...]) from a JKS, PKCS12 or PEM key store."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = _read(location, "ssl.keyStore.location")
    kind = _format_of(data, kind)
    if kind == "JKS":
        store = _load_jks(data, password, location)
        entries = sorted(store.private_keys.items())
        if not entries:
            raise TlsError(f"{location}: the JKS store has no private key entry")
        if len(entries) > 1:
            log.warning("key store has several private keys; using the first alias",
                        store=location, alias=entries[0][0])
        alias, entry = entries[0]
        pkcs8 = _jks_private_key(entry, password)
        if pkcs8 is None:
            raise TlsError(f"{location}: the key of alias {alias!r} is not encrypted with the "
                           "store password (Java reads it with ssl.keyStore.password)")
        key = serialization.load_der_private_key(pkcs8, None)
        chain = [x509.load_der_x509_certificate(der) for _, der in entry.cert_chain]
        return key, chain
    if kind == "PKCS12":
        store = _load_pkcs12(data, password, location)
        if store.key is None or store.cert is None:
            raise TlsError(f"{location}: the PKCS12 store has no private key with its certificate")
        chain = [store.cert.certificate] + [c.certificate for c in store.additional_certs]
        return store.key, chain
    if kind == "PEM":
        key = None
        for label, block in _pem_blocks(data, location):
            if label.endswith("PRIVATE KEY"):
                secret = password.encode("utf-8") if password and "ENCRYPTED" in label else None
                try:
                    key = serialization.load_pem_private_key(block, secret)
                except (ValueError, TypeError) as error:
                    raise TlsError(f"{location}: cannot read the private key: {error}") from None
                break
        chain = _certificates_from_pem(data, location)
        if key is None or not chain:
            raise TlsError(f"{location}: a PEM key store needs a private key and its certificate")
        return key, chain
    raise TlsError(f"{location}: unsupported key store type {kind!r}")


def load_trust_store(location: str, password: str, kind: str) -> list:
    """The trusted certificates of a JKS, PKCS12 or PEM trust store."""
    from cryptography import x509

    data = _read(location, "ssl.trustStore.location")
    kind = _format_of(data, kind)
    if kind == "JKS":
        store = _load_jks(data, password, location)
        certificates = [x509.load_der_x509_certificate(entry.cert)
                        for _, entry in sorted(store.certs.items())]
    elif kind == "PKCS12":
        store = _load_pkcs12(data, password, location)
        certificates = ([store.cert.certificate] if store.cert is not None else []) + \
            [c.certificate for c in store.additional_certs]
    elif kind == "PEM":
        certificates = _certificates_from_pem(data, location)
    else:
        raise TlsError(f"{location}: unsupported trust store type {kind!r}")
    if not certificates:
        raise TlsError(f"{location}: the trust store has no trusted certificate")
    return certificates


# -- the context -------------------------------------------------------------------------------

def _load_chain(context: ssl.SSLContext, key, chain) -> None:
    from cryptography.hazmat.primitives import serialization

    one_time = secrets.token_urlsafe(24).encode()
    directory = tempfile.mkdtemp(prefix="zkpy-tls-")  # mode 0700
    try:
        cert_path = os.path.join(directory, "chain.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, payload in (
                (cert_path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)),
                (key_path, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(one_time)))):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
        context.load_cert_chain(cert_path, key_path, password=one_time)
    except ssl.SSLError as error:
        raise TlsError(f"the key store's key and certificate do not go together: {error}") from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The SSLContext for secureClientPort, or TlsError naming what is wrong."""
    from cryptography.hazmat.primitives import serialization

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    enabled = set(tls.enabled_protocols or (tls.protocol,))
    if "TLS" in enabled:
        enabled |= {"TLSv1.2", "TLSv1.3"}
    versions = sorted(_VERSIONS[name] for name in enabled if name in _VERSIONS)
    if not versions:
        raise TlsError(f"ssl.enabledProtocols: no TLS version in {sorted(enabled)}")
    suites = [s.strip() for s in (tls.ciphersuites or DEFAULT_CIPHERSUITES) if s.strip()]
    openssl_names, unknown = [], []
    for suite in suites:
        if suite in TLS13_SUITES:
            continue
        name = openssl_cipher_name(suite)
        (openssl_names if name else unknown).append(name or suite)
    if unknown:
        log.warning("cipher suites zkpy cannot map to OpenSSL; left out", suites=unknown)
    has_tls13 = any(s in TLS13_SUITES for s in suites)
    if not has_tls13:
        versions = [v for v in versions if v != ssl.TLSVersion.TLSv1_3]
    usable = []
    if openssl_names:
        for name in openssl_names:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(name)
                usable.append(name)
            except ssl.SSLError:
                unknown.append(name)
    if not usable:
        versions = [v for v in versions if v == ssl.TLSVersion.TLSv1_3]
    if not versions:
        raise TlsError("ssl.ciphersuites: no suite OpenSSL has for the enabled protocols "
                       f"{sorted(enabled)}")
    context.minimum_version = versions[0]
    context.maximum_version = versions[-1]
    if usable:
        context.set_ciphers(":".join(usable))
    context.verify_mode = _CLIENT_AUTH[tls.client_auth]
    if tls.truststore_location:
        trusted = load_trust_store(tls.truststore_location, tls.truststore_password,
                                   tls.truststore_type)
        context.load_verify_locations(cadata="".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in trusted))
    else:
        log.warning("ssl.trustStore.location not specified; client certificates are checked "
                    "against the system's CAs")
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    key, chain = load_key_store(tls.keystore_location, tls.keystore_password, tls.keystore_type)
    _load_chain(context, key, chain)
    # Renegotiation is what Java's jdk.tls.rejectClientInitiatedRenegotiation (set by ZooKeeper)
    # refuses; OpenSSL servers refuse insecure renegotiation already, and TLS 1.3 has none.
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return context


def client_identity(ssl_object) -> str | None:
    """The x509 id of a TLS connection: its client certificate's subject (None: no cert)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return subject_of_certificate(der)


def client_context(tls: TlsConfig) -> ssl.SSLContext:
    """The SSLContext a member uses to connect to another (sslQuorum): it shows its own key
    store's certificate and accepts only peers the trust store vouches for."""
    from cryptography.hazmat.primitives import serialization

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # members are named by the server.N lines, not by DNS
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.truststore_location:
        trusted = load_trust_store(tls.truststore_location, tls.truststore_password,
                                   tls.truststore_type)
        context.load_verify_locations(cadata="".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in trusted))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    key, chain = load_key_store(tls.keystore_location, tls.keystore_password, tls.keystore_type)
    _load_chain(context, key, chain)
    return context
