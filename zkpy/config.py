"""zoo.cfg, read as ZooKeeper reads it.

Every key ZooKeeper 3.8 documents for a server is recognised; the ones zkpy acts on are typed
and validated here (an invalid value is a ``ConfigError`` naming the key), the others are kept
and logged as ignored. Java system properties (``-Dname=value``) may set the same settings
under ZooKeeper's property names; the zoo.cfg value wins, as in ZooKeeper.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import javaproperties

from jute import MAX_BUFFER_BYTES_DEFAULT
from zkpy.zab.membership import Member, ReconfigError, parse_member


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key."""


class TlsConfig(NamedTuple):
    """The client TLS settings (ZooKeeper's ssl.* keys, zookeeper.ssl.* properties), validated;
    zkpy.runtime.tls turns them into an ssl.SSLContext for secureClientPort."""
    keystore_location: str = ""
    keystore_password: str = ""
    keystore_type: str = ""      # JKS, PKCS12 or PEM (inferred from the file name if not set)
    truststore_location: str = ""
    truststore_password: str = ""
    truststore_type: str = ""
    client_auth: str = "need"    # need, want or none
    protocol: str = "TLSv1.2"
    enabled_protocols: tuple = ()  # () means (protocol,), as ZooKeeper
    ciphersuites: tuple = ()       # () means ZooKeeper's defaults (Java/IANA names)
    handshake_timeout_ms: int = 5000


class AuthConfig(NamedTuple):
    """Authentication providers and SASL settings, read from ZooKeeper's system properties
    (``zookeeper.authProvider.N``, ``java.security.auth.login.config``, ...) or the zoo.cfg keys
    ZooKeeper turns into them (``authProvider.N`` -> ``zookeeper.authProvider.N``)."""
    schemes: frozenset = frozenset()  # provider schemes beyond ip and digest: sasl, x509
    unknown_providers: tuple = ()     # provider classes zkpy does not have (logged)
    jaas_config: str | None = None    # java.security.auth.login.config
    sasl_login_context: str = "Server"  # zookeeper.sasl.serverconfig
    sasl_super_users: tuple = ()      # zookeeper.superUser, zookeeper.superUser.*
    sasl_super_password: str | None = None  # zookeeper.SASLAuthenticationProvider.superPassword
    sasl_allow_failed_clients: bool = False  # zookeeper.allowSaslFailedClients
    sasl_any_user: str | None = None  # zookeeper.letAnySaslUserDoX
    x509_super_user: str | None = None  # zookeeper.X509AuthenticationProvider.superUser
    ssl_auth_scheme: str = "x509"     # zookeeper.ssl.authProvider


class ServerConfig(NamedTuple):
    tick_ms: int = 2000
    data_dir: str = "./data"
    data_log_dir: str | None = None
    client_port: int = 2181
    client_port_address: str = "0.0.0.0"
    max_client_cnxns: int = 60
    min_session_timeout_ms: int | None = None
    max_session_timeout_ms: int | None = None
    init_limit: int = 10
    sync_limit: int = 5
    snap_retain_count: int = 3
    purge_interval_hours: int = 0
    four_letter_words: frozenset = frozenset(("srvr",))
    extended_types_enabled: bool = False
    container_check_interval_ms: int = 60_000
    max_buffer_bytes: int = MAX_BUFFER_BYTES_DEFAULT
    snap_count: int = 100_000
    super_digest: str | None = None
    read_only_mode_enabled: bool = False
    reconfig_enabled: bool = False
    global_outstanding_limit: int = 1000
    max_watches_per_session: int = 1_000_000
    client_port_given: bool = False  # False: an ensemble member takes it from its server.N line
    admin_enable_server: bool = True
    admin_server_port: int = 8080
    admin_server_address: str = "0.0.0.0"
    admin_port_unification: bool = False  # admin.portUnification: HTTP and HTTPS on one port
    admin_force_https: bool = False       # admin.forceHttps: HTTPS only (wins over the above)
    metrics_provider_class: str | None = None
    metrics_http_port: int = 7000
    metrics_http_host: str = "0.0.0.0"
    metrics_export_jvm_info: bool = True
    servers: tuple = ()
    ignored: tuple = ()            # zoo.cfg keys zkpy does not use (logged)
    keys_as_properties: tuple = ()  # zoo.cfg keys taken as zookeeper.K properties (logged)
    # What the server was started with, for the AdminServer's initial_configuration and
    # system_properties commands (the -D properties and those zoo.cfg keys became).
    initial_configuration: str = ""
    system_properties: tuple = ()
    # TLS on secureClientPort (zkpy.runtime.tls) and the x509/SASL authentication (zkpy.auth).
    secure_client_port: int | None = None
    secure_client_port_address: str = "0.0.0.0"
    tls: TlsConfig | None = None
    # TLS between ensemble members (sslQuorum=true, ssl.quorum.* keys): mutual, both ways.
    quorum_tls: TlsConfig | None = None
    # The AdminServer's HTTPS (admin.portUnification or admin.forceHttps): the ssl.quorum.*
    # key and trust stores, as ZooKeeper 3.8's JettyAdminServer reads them.
    admin_tls: TlsConfig | None = None
    auth: AuthConfig = AuthConfig()
    # etcd's v3 gRPC API over the same store (zkpy.frontends.etcd), off unless a port is set;
    # TLS on the secure port with the client port's ssl.* settings.
    etcd_client_port: int | None = None
    etcd_client_port_address: str = "0.0.0.0"
    etcd_secure_client_port: int | None = None
    etcd_root: str = "/etcd"
    etcd_progress_notify_interval_ms: int = 600_000
    etcd_max_history_versions: int = 1_000_000

    @property
    def prometheus_enabled(self) -> bool:
        return self.metrics_provider_class == PROMETHEUS_PROVIDER

    @property
    def min_session_timeout(self) -> int:
        return self.min_session_timeout_ms or 2 * self.tick_ms

    @property
    def max_session_timeout(self) -> int:
        return self.max_session_timeout_ms or 20 * self.tick_ms


ALL_WORDS = frozenset(("ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi",
                       "wchs", "wchc", "wchp", "dump", "dirs", "isro", "gtmk", "stmk"))

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
DEFAULT_METRICS_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"

# The keys ZooKeeper 3.8's QuorumPeerConfig.parseProperties parses itself; every other zoo.cfg
# key K becomes the system property zookeeper.K (see effective_properties).
_QUORUM_PEER_CONFIG_KEYS = frozenset((
    "dataDir", "dataLogDir", "clientPort", "localSessionsEnabled",
    "localSessionsUpgradingEnabled", "clientPortAddress", "clientPortListenBacklog",
    "secureClientPort", "secureClientPortAddress", "observerMasterPort", "tickTime",
    "maxClientCnxns", "minSessionTimeout", "maxSessionTimeout", "initLimit", "syncLimit",
    "connectToLearnerMasterLimit", "electionAlg", "quorumListenOnAllIPs", "peerType",
    "syncEnabled", "dynamicConfigFile", "autopurge.snapRetainCount", "autopurge.purgeInterval",
    "standaloneEnabled", "reconfigEnabled", "sslQuorum", "portUnification",
    "sslQuorumReloadCertFiles", "quorum.auth.enableSasl", "quorum.auth.serverRequireSasl",
    "quorum.auth.learnerRequireSasl", "quorum.auth.learner.saslLoginContext",
    "quorum.auth.server.saslLoginContext", "quorum.auth.kerberos.servicePrincipal",
    "quorum.cnxn.threads.size", "jvm.pause.info-threshold.ms", "jvm.pause.warn-threshold.ms",
    "jvm.pause.sleep.time.ms", "jvm.pause.monitor", "multiAddress.enabled",
    "multiAddress.reachabilityCheckEnabled", "multiAddress.reachabilityCheckTimeoutMs",
    "oraclePath",
))
_QUORUM_PEER_CONFIG_PREFIXES = ("server.", "group", "weight", "metricsProvider.")
# QuorumPeerConfig keys zkpy reads outside _HANDLERS.
_QUORUM_KEYS_READ = frozenset(("sslQuorum",))
# zoo.cfg keys that are zkpy's own (ZooKeeper reads these settings only as -D properties of a
# name that is not zookeeper.K, or not at all).
_ZKPY_KEYS = frozenset(("jute.maxbuffer", "readonlymode.enabled",
                        "znode.container.checkIntervalMs", "superDigest",
                        "zkpy.maxWatchesPerSession", "etcd.clientPort",
                        "etcd.clientPortAddress", "etcd.secureClientPort", "etcd.rootZnode",
                        "etcd.watchProgressNotifyIntervalMs", "etcd.maxHistoryVersions"))

_PROPERTY_KEYS = {
    "zookeeper.extendedTypesEnabled": "extendedTypesEnabled",
    "znode.container.checkIntervalMs": "znode.container.checkIntervalMs",
    "jute.maxbuffer": "jute.maxbuffer",
    "zookeeper.snapCount": "snapCount",
    "zookeeper.4lw.commands.whitelist": "4lw.commands.whitelist",
    "zookeeper.DigestAuthenticationProvider.superDigest": "superDigest",
    "zookeeper.admin.enableServer": "admin.enableServer",
    "zookeeper.admin.serverPort": "admin.serverPort",
    "zookeeper.admin.serverAddress": "admin.serverAddress",
    "zookeeper.admin.portUnification": "admin.portUnification",
    "zookeeper.admin.forceHttps": "admin.forceHttps",
    "readonlymode.enabled": "readonlymode.enabled",
    "zookeeper.globalOutstandingLimit": "globalOutstandingLimit",
    "zkpy.maxWatchesPerSession": "zkpy.maxWatchesPerSession",
}


def unused_properties(properties: dict[str, str]) -> list[str]:
    """The -D properties zkpy does not act on (logged at start-up)."""
    return sorted(name for name in properties if not _property_used(name))


# Properties read by other parts of the server (TLS, SASL) rather than mapped to zoo.cfg keys.
_PROPERTIES_READ_ELSEWHERE = {
    "java.security.auth.login.config", "zookeeper.authProvider.1", "zookeeper.serverCnxnFactory",
}


def _int(key: str, value: str, minimum: int | None = None) -> int:
    try:
        number = int(value.strip(), 0) if value.strip().lower().startswith("0x") else int(value.strip())
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{key}: {number} is below the minimum {minimum}")
    return number


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ConfigError(f"{key}: {value!r} is not a boolean")


def _words(key: str, value: str) -> frozenset:
    words = {w.strip() for w in value.split(",") if w.strip()}
    if "*" in words:
        return ALL_WORDS
    unknown = words - ALL_WORDS
    if unknown:
        raise ConfigError(f"{key}: unknown four-letter word(s) {sorted(unknown)}")
    return frozenset(words)


def _server(key: str, value: str) -> Member:
    """A server.N line, parsed as /zookeeper/config lines are (zkpy.zab.membership)."""
    try:
        int(key.split(".", 1)[1])
    except ValueError:
        raise ConfigError(f"{key}: the server id must be an integer") from None
    try:
        return parse_member(f"{key}={value.strip()}")
    except ReconfigError:
        raise ConfigError(f"{key}: {value!r} is not host:quorumPort:electionPort[:role][;[host:]port]") from None


def parse_zoo_cfg(text: str) -> dict[str, str]:
    """zoo.cfg as ZooKeeper reads it: java.util.Properties.load (comments, ``=``, ``:`` or
    white space between key and value, backslash continuations and escapes, the last of two
    equal keys winning), then keys and values trimmed as QuorumPeerConfig does."""
    return {key.strip(): value.strip() for key, value in javaproperties.loads(text).items()}


def effective_properties(settings: dict[str, str], properties: dict[str, str]) -> dict[str, str]:
    """The Java system properties a ZooKeeper server started this way would have: the -D
    ``properties``, then ``zookeeper.K=V`` for every zoo.cfg key K that QuorumPeerConfig does not
    parse itself (QuorumPeerConfig.parseProperties sets them with System.setProperty, so they
    override a -D value of the same name)."""
    view = dict(properties)
    for key, value in settings.items():
        if not _parsed_by_quorum_peer_config(key):
            view["zookeeper." + key] = value
    return view


def _parsed_by_quorum_peer_config(key: str) -> bool:
    return key in _QUORUM_PEER_CONFIG_KEYS or key.startswith(_QUORUM_PEER_CONFIG_PREFIXES)


def _property_used(name: str) -> bool:
    """Whether zkpy reads the system property ``name`` (to tell the operator which are not)."""
    return (name in _PROPERTY_KEYS or name in _PROPERTIES_READ_ELSEWHERE
            or name.startswith(("zookeeper.authProvider.", "zookeeper.superUser.",
                                "zookeeper.ssl.quorum."))
            or (name.startswith("zookeeper.") and name[len("zookeeper."):] in _SECURITY_KEYS))


def build_config(settings: dict[str, str], properties: dict[str, str] | None = None) -> ServerConfig:
    """Validate ``settings`` (zoo.cfg keys) over ``properties`` (-D values) into a config."""
    properties = properties or {}
    props = effective_properties(settings, properties)
    merged: dict[str, str] = {}
    for name, value in props.items():
        if name in _PROPERTY_KEYS:
            merged[_PROPERTY_KEYS[name]] = value
    merged.update((key, value) for key, value in settings.items() if key in _HANDLERS)
    fields: dict = {}
    for key, value in merged.items():
        field, parsed = _HANDLERS[key](key, value)
        fields[field] = parsed
    servers = [_server(key, value) for key, value in settings.items() if key.startswith("server.")]
    as_properties, ignored = _sort_out_keys(settings)
    fields["client_port_given"] = "clientPort" in merged
    fields.update(_security(settings, props, fields.get("secure_client_port")))
    if fields.get("etcd_secure_client_port") and "tls" not in fields:
        fields["tls"] = _tls(props)  # the etcd port's TLS: the client port's ssl.* settings
    if _bool("sslQuorum", settings.get("sslQuorum", props.get("zookeeper.sslQuorum", "false"))):
        fields["quorum_tls"] = _quorum_tls(props)
    if fields.get("admin_enable_server", True) and (
            fields.get("admin_port_unification") or fields.get("admin_force_https")):
        fields["admin_tls"] = _admin_tls(props)
    config = ServerConfig(**fields, servers=tuple(sorted(servers)), ignored=tuple(ignored),
                          keys_as_properties=tuple(as_properties),
                          system_properties=tuple(sorted(props.items())))
    if config.min_session_timeout > config.max_session_timeout:
        raise ConfigError("minSessionTimeout: must not be larger than maxSessionTimeout")
    if not (0 < config.client_port < 65536):
        raise ConfigError(f"clientPort: {config.client_port} is not a TCP port")
    return config


def _sort_out_keys(settings: dict[str, str]) -> tuple[list[str], list[str]]:
    """(zoo.cfg keys zkpy takes as the system property ``zookeeper.K``, keys it does not use)."""
    as_properties: list[str] = []
    ignored: list[str] = []
    for key in settings:
        if key in _HANDLERS or key.startswith("server.") or key in _QUORUM_KEYS_READ:
            if not _parsed_by_quorum_peer_config(key) and key not in _ZKPY_KEYS:
                as_properties.append(key)
        elif _parsed_by_quorum_peer_config(key):
            ignored.append(key)  # ZooKeeper acts on it; zkpy does not (yet)
        elif _property_used("zookeeper." + key):
            as_properties.append(key)
        else:
            ignored.append(key)
    return as_properties, ignored


_HANDLERS = {
    "tickTime": lambda k, v: ("tick_ms", _int(k, v, 1)),
    "dataDir": lambda k, v: ("data_dir", v),
    "dataLogDir": lambda k, v: ("data_log_dir", v),
    "clientPort": lambda k, v: ("client_port", _int(k, v, 1)),
    "clientPortAddress": lambda k, v: ("client_port_address", v),
    "secureClientPort": lambda k, v: ("secure_client_port", _port(k, v) or None),
    "secureClientPortAddress": lambda k, v: ("secure_client_port_address", v.strip()),
    "maxClientCnxns": lambda k, v: ("max_client_cnxns", _int(k, v, 0)),
    "minSessionTimeout": lambda k, v: ("min_session_timeout_ms", _int(k, v, -1) if _int(k, v) > 0 else None),
    "maxSessionTimeout": lambda k, v: ("max_session_timeout_ms", _int(k, v, -1) if _int(k, v) > 0 else None),
    "initLimit": lambda k, v: ("init_limit", _int(k, v, 1)),
    "syncLimit": lambda k, v: ("sync_limit", _int(k, v, 1)),
    "autopurge.snapRetainCount": lambda k, v: ("snap_retain_count", max(3, _int(k, v, 0))),
    "autopurge.purgeInterval": lambda k, v: ("purge_interval_hours", _int(k, v, 0)),
    "4lw.commands.whitelist": lambda k, v: ("four_letter_words", _words(k, v)),
    "extendedTypesEnabled": lambda k, v: ("extended_types_enabled", _bool(k, v)),
    "znode.container.checkIntervalMs": lambda k, v: ("container_check_interval_ms", _int(k, v, 1)),
    "jute.maxbuffer": lambda k, v: ("max_buffer_bytes", _int(k, v, 1)),
    "snapCount": lambda k, v: ("snap_count", _int(k, v, 2)),
    "superDigest": lambda k, v: ("super_digest", _digest(k, v)),
    "readonlymode.enabled": lambda k, v: ("read_only_mode_enabled", _bool(k, v)),
    "reconfigEnabled": lambda k, v: ("reconfig_enabled", _bool(k, v)),
    "globalOutstandingLimit": lambda k, v: ("global_outstanding_limit", _int(k, v, 1)),
    "zkpy.maxWatchesPerSession": lambda k, v: ("max_watches_per_session", _int(k, v, 0)),
    "admin.enableServer": lambda k, v: ("admin_enable_server", _bool(k, v)),
    "admin.serverPort": lambda k, v: ("admin_server_port", _port(k, v)),
    "admin.serverAddress": lambda k, v: ("admin_server_address", v),
    "admin.portUnification": lambda k, v: ("admin_port_unification", _bool(k, v)),
    "admin.forceHttps": lambda k, v: ("admin_force_https", _bool(k, v)),
    "metricsProvider.className": lambda k, v: ("metrics_provider_class", _provider(k, v)),
    "metricsProvider.httpPort": lambda k, v: ("metrics_http_port", _port(k, v)),
    "metricsProvider.httpHost": lambda k, v: ("metrics_http_host", v),
    "metricsProvider.exportJvmInfo": lambda k, v: ("metrics_export_jvm_info", _bool(k, v)),
    "etcd.clientPort": lambda k, v: ("etcd_client_port", _port(k, v)),
    "etcd.clientPortAddress": lambda k, v: ("etcd_client_port_address", v.strip()),
    "etcd.secureClientPort": lambda k, v: ("etcd_secure_client_port", _port(k, v)),
    "etcd.rootZnode": lambda k, v: ("etcd_root", _root_znode(k, v)),
    "etcd.watchProgressNotifyIntervalMs": lambda k, v: ("etcd_progress_notify_interval_ms",
                                                         _int(k, v, 100)),
    "etcd.maxHistoryVersions": lambda k, v: ("etcd_max_history_versions", _int(k, v, 2)),
}


def _root_znode(key: str, value: str) -> str:
    from zkpy.tree.paths import path_error
    value = value.strip()
    problem = path_error(value)
    if problem or value == "/" or value.startswith("/zookeeper"):
        raise ConfigError(f"{key}: {value!r} is not a znode path zkpy can keep etcd keys under")
    return value


def _port(key: str, value: str) -> int:
    port = _int(key, value, 0)
    if port > 65535:
        raise ConfigError(f"{key}: {port} is not a TCP port")
    return port


def _provider(key: str, value: str) -> str:
    # ZooKeeper refuses to start when it cannot load the provider class; so does zkpy.
    if value not in (PROMETHEUS_PROVIDER, DEFAULT_METRICS_PROVIDER):
        raise ConfigError(f"{key}: {value!r} is not a metrics provider zkpy has "
                          f"(use {PROMETHEUS_PROVIDER} or {DEFAULT_METRICS_PROVIDER})")
    return value


def _digest(key: str, value: str) -> str:
    if ":" not in value or not value.split(":", 1)[1]:
        raise ConfigError(f"{key}: {value!r} is not user:base64(sha1(user:password))")
    return value


def load(path: str | Path | None, properties: dict[str, str] | None = None) -> ServerConfig:
    """Read a zoo.cfg (None: the defaults of ``make run``: 127.0.0.1:2181, ./data)."""
    if path is None:
        settings = {"dataDir": "./data", "clientPortAddress": "127.0.0.1",
                    "4lw.commands.whitelist": "*", "admin.serverAddress": "127.0.0.1"}
        text = "".join(f"{key}={value}\n" for key, value in settings.items())
    else:
        try:
            # java.util.Properties.load(InputStream) reads ISO 8859-1; so does zkpy.
            text = Path(path).read_bytes().decode("latin-1")
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from None
        settings = parse_zoo_cfg(text)
    return build_config(settings, properties)._replace(initial_configuration=text)


# -- TLS and authentication ------------------------------------------------------------------
# ZooKeeper reads these as Java system properties; zoo.cfg keys it does not parse itself become
# "zookeeper." + key properties (QuorumPeerConfig), so ssl.keyStore.location in zoo.cfg and
# -Dzookeeper.ssl.keyStore.location are the same setting, the zoo.cfg one winning.

_SECURITY_KEYS = {
    "ssl.keyStore.location", "ssl.keyStore.password", "ssl.keyStore.passwordPath",
    "ssl.keyStore.type", "ssl.trustStore.location", "ssl.trustStore.password",
    "ssl.trustStore.passwordPath", "ssl.trustStore.type", "ssl.clientAuth", "ssl.protocol",
    "ssl.enabledProtocols", "ssl.ciphersuites", "ssl.handshakeDetectionTimeoutMillis",
    "ssl.authProvider", "superUser", "X509AuthenticationProvider.superUser",
    "SASLAuthenticationProvider.superPassword", "letAnySaslUserDoX", "allowSaslFailedClients",
    "sasl.serverconfig",
}
_PROVIDER_SCHEMES = {
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider": "sasl",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider": "x509",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider": "digest",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider": "ip",
}
_STORE_EXTENSIONS = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12", ".bcfks": "BCFKS"}
_TLS_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "TLS")


def _password(props: dict[str, str], store: str) -> str:
    """X509Util.getPasswordFromConfigPropertyOrFile: the passwordPath file wins."""
    value = props.get(f"zookeeper.ssl.{store}.password", "")
    path = props.get(f"zookeeper.ssl.{store}.passwordPath", "")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"ssl.{store}.passwordPath: cannot read {path}: "
                              f"{error.strerror}") from None
        if value.endswith("\n"):
            value = value[:-1]
    return value


def _store_type(props: dict[str, str], store: str) -> str:
    """KeyStoreFileType.fromPropertyValueOrFileName."""
    location = props.get(f"zookeeper.ssl.{store}.location", "")
    given = props.get(f"zookeeper.ssl.{store}.type", "")
    if given:
        kind = given.upper()
        if kind not in _STORE_EXTENSIONS.values():
            raise ConfigError(f"ssl.{store}.type: {given!r} is not JKS, PEM, PKCS12 or BCFKS")
    elif not location:
        return ""
    else:
        dot = location.rfind(".")
        kind = _STORE_EXTENSIONS.get(location[dot:]) if dot >= 0 else None
        if kind is None:
            raise ConfigError(f"ssl.{store}.location: unable to auto-detect the store file type "
                              f"from the file name {location!r} (use .jks, .p12 or .pem, or set "
                              f"ssl.{store}.type)")
    if kind == "BCFKS":
        raise ConfigError(f"ssl.{store}.type: BCFKS stores need the BouncyCastle provider; "
                          "zkpy reads JKS, PKCS12 and PEM")
    return kind


def _tls(props: dict[str, str]) -> TlsConfig:
    client_auth = props.get("zookeeper.ssl.clientAuth", "") or "need"
    if client_auth.lower() not in ("need", "want", "none"):
        raise ConfigError(f"ssl.clientAuth: {client_auth!r} is not need, want or none")
    protocol = props.get("zookeeper.ssl.protocol", "TLSv1.2")
    enabled = tuple(props["zookeeper.ssl.enabledProtocols"].split(",")) \
        if "zookeeper.ssl.enabledProtocols" in props else (protocol,)
    for name in (protocol, *enabled):
        if name not in _TLS_PROTOCOLS:
            raise ConfigError(f"ssl.protocol/ssl.enabledProtocols: {name!r} is not one of "
                              f"{', '.join(_TLS_PROTOCOLS)}")
    ciphers = props.get("zookeeper.ssl.ciphersuites")
    timeout = props.get("zookeeper.ssl.handshakeDetectionTimeoutMillis")
    timeout_ms = _int("ssl.handshakeDetectionTimeoutMillis", timeout) if timeout else 5000
    if not props.get("zookeeper.ssl.keyStore.location"):
        raise ConfigError("ssl.keyStore.location: secureClientPort needs a key store holding "
                          "the server's key and certificate")
    return TlsConfig(
        keystore_location=props.get("zookeeper.ssl.keyStore.location", ""),
        keystore_password=_password(props, "keyStore"),
        keystore_type=_store_type(props, "keyStore"),
        truststore_location=props.get("zookeeper.ssl.trustStore.location", ""),
        truststore_password=_password(props, "trustStore"),
        truststore_type=_store_type(props, "trustStore"),
        client_auth=client_auth.lower(),
        protocol=protocol,
        enabled_protocols=enabled,
        ciphersuites=tuple(ciphers.split(",")) if ciphers is not None else (),
        handshake_timeout_ms=timeout_ms if timeout_ms >= 1 else 5000,
    )


def _quorum_tls(props: dict[str, str]) -> TlsConfig:
    """ssl.quorum.* as ZooKeeper's QuorumX509Util reads them: the same keys under 'quorum.'."""
    prefix = "zookeeper.ssl.quorum."
    view = {"zookeeper.ssl." + name[len(prefix):]: value
            for name, value in props.items() if name.startswith(prefix)}
    view.setdefault("zookeeper.ssl.clientAuth", "need")
    try:
        return _tls(view)
    except ConfigError as error:
        raise ConfigError(str(error).replace("ssl.", "ssl.quorum.", 1)
                          .replace("secureClientPort", "sslQuorum")) from None


# Jetty 9.4's default cipher suites on JDK 17, which ZooKeeper 3.8's AdminServer keeps (it sets
# no suites of its own): the JDK's defaults without Jetty's exclusions (*_SHA, TLS_RSA_*, ...).
ADMIN_CIPHERSUITES = (
    "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
)
_STORE_SETTINGS = ("location", "password", "passwordPath", "type")


def _admin_tls(props: dict[str, str]) -> TlsConfig:
    """The AdminServer's HTTPS as ZooKeeper 3.8's JettyAdminServer sets it up: the key and
    trust stores of ssl.quorum.* (QuorumX509Util's properties), both required (without either
    ZooKeeper starts no AdminServer; zkpy refuses the configuration instead of running without
    the AdminServer asked for), no client certificate asked for, and Jetty's defaults for the
    rest (TLS 1.2 and 1.3, the suites above): 3.8 reads no other ssl.quorum setting for it."""
    view = {f"zookeeper.ssl.{store}.{setting}": props[f"zookeeper.ssl.quorum.{store}.{setting}"]
            for store in ("keyStore", "trustStore") for setting in _STORE_SETTINGS
            if f"zookeeper.ssl.quorum.{store}.{setting}" in props}
    for store in ("keyStore", "trustStore"):
        if not view.get(f"zookeeper.ssl.{store}.location"):
            raise ConfigError(f"ssl.quorum.{store}.location: admin.portUnification and "
                              "admin.forceHttps serve HTTPS with the ssl.quorum key and trust "
                              "stores, and need both")
    view.update({"zookeeper.ssl.clientAuth": "none",
                 "zookeeper.ssl.enabledProtocols": "TLSv1.2,TLSv1.3",
                 "zookeeper.ssl.ciphersuites": ",".join(ADMIN_CIPHERSUITES)})
    try:
        return _tls(view)
    except ConfigError as error:
        raise ConfigError(str(error).replace("ssl.", "ssl.quorum.", 1)) from None


def _security(settings: dict[str, str], props: dict[str, str],
              secure_client_port: int | None) -> dict:
    schemes: set[str] = set()
    unknown: list[str] = []
    for name, value in sorted(props.items()):
        if name.startswith("zookeeper.authProvider."):
            scheme = _PROVIDER_SCHEMES.get(value.strip())
            if scheme is None:
                unknown.append(value.strip())
            elif scheme not in ("ip", "digest"):
                schemes.add(scheme)
    ssl_scheme = props.get("zookeeper.ssl.authProvider", "x509")
    fields: dict = {}
    if secure_client_port:
        # QuorumPeerConfig.configureSSLAuth: secureClientPort brings the x509 provider with it.
        if not any(n == "zookeeper.authProvider." + ssl_scheme for n in props):
            if ssl_scheme != "x509":
                raise ConfigError(f"ssl.authProvider: no auth provider configured for the SSL "
                                  f"authentication scheme {ssl_scheme!r}")
            schemes.add("x509")
        fields["tls"] = _tls(props)
    elif "secureClientPortAddress" in settings:
        raise ConfigError("secureClientPortAddress: set but secureClientPort is not set")
    super_users = tuple(value for name, value in sorted(props.items())
                        if name == "zookeeper.superUser" or name.startswith("zookeeper.superUser."))
    fields["auth"] = AuthConfig(
        schemes=frozenset(schemes),
        unknown_providers=tuple(unknown),
        jaas_config=props.get("java.security.auth.login.config"),
        sasl_login_context=props.get("zookeeper.sasl.serverconfig", "Server"),
        sasl_super_users=super_users,
        sasl_super_password=props.get("zookeeper.SASLAuthenticationProvider.superPassword"),
        sasl_allow_failed_clients=props.get("zookeeper.allowSaslFailedClients", "").lower() == "true",
        sasl_any_user=props.get("zookeeper.letAnySaslUserDoX"),
        x509_super_user=props.get("zookeeper.X509AuthenticationProvider.superUser"),
        ssl_auth_scheme=ssl_scheme,
    )
    return fields
