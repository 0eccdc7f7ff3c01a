"""zoo.cfg, read as ZooKeeper reads it.

Every key ZooKeeper 3.8 documents for a server is recognised; the ones zkpy acts on are typed
and validated here (an invalid value is a ``ConfigError`` naming the key), the others are kept
and logged as ignored. Java system properties (``-Dname=value``) may set the same settings
under ZooKeeper's property names; the zoo.cfg value wins, as in ZooKeeper.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from jute import MAX_BUFFER_BYTES_DEFAULT


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key."""


class ServerSpec(NamedTuple):
    server_id: int
    host: str
    quorum_port: int
    election_port: int
    role: str
    client_host: str | None
    client_port: int | None


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
    client_port_given: bool = False  # False: an ensemble member takes it from its server.N line
    admin_enable_server: bool = True
    admin_server_port: int = 8080
    admin_server_address: str = "0.0.0.0"
    metrics_provider_class: str | None = None
    metrics_http_port: int = 7000
    metrics_http_host: str = "0.0.0.0"
    metrics_export_jvm_info: bool = True
    servers: tuple = ()
    ignored: tuple = ()
    # What the server was started with, for the AdminServer's initial_configuration and
    # system_properties commands.
    initial_configuration: str = ""
    system_properties: tuple = ()

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

# Keys ZooKeeper knows that zkpy reads but does not act on (yet); they are accepted quietly.
_KNOWN_IGNORED = {
    "globalOutstandingLimit",
    "preAllocSize", "forceSync", "leaderServes", "cnxTimeout", "electionAlg",
    "quorumListenOnAllIPs", "standaloneEnabled", "reconfigEnabled", "syncEnabled",
    "secureClientPort", "secureClientPortAddress", "clientPortListenBacklog",
    "audit.enable",
    "localSessionsEnabled", "localSessionsUpgradingEnabled", "skipACL", "dynamicConfigFile",
    "peerType", "sslQuorum", "portUnification", "authProvider.1", "jute.maxbuffer.extrasize",
}

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
    "readonlymode.enabled": "readonlymode.enabled",
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


_SERVER_LINE = re.compile(
    r"^(?P<host>\[[^\]]+\]|[^:;]+):(?P<qport>\d+):(?P<eport>\d+)"
    r"(?::(?P<role>participant|observer))?(?:;(?:(?P<chost>[^:;]+):)?(?P<cport>\d+))?$")


def _server(key: str, value: str) -> ServerSpec:
    try:
        server_id = int(key.split(".", 1)[1])
    except ValueError:
        raise ConfigError(f"{key}: the server id must be an integer") from None
    match = _SERVER_LINE.match(value.strip())
    if match is None:
        raise ConfigError(f"{key}: {value!r} is not host:quorumPort:electionPort[:role][;[host:]port]")
    cport = match["cport"]
    return ServerSpec(server_id, match["host"].strip("[]"), int(match["qport"]), int(match["eport"]),
                      match["role"] or "participant", match["chost"], int(cport) if cport else None)


def parse_lines(text: str) -> dict[str, str]:
    """key=value lines; '#' comments and blank lines are skipped (java.util.Properties-like)."""
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("!"):
            continue
        separator = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if separator < 0:
            raise ConfigError(f"line {number}: {line!r} is not key=value")
        settings[line[:separator].strip()] = line[separator + 1:].strip()
    return settings


def build_config(settings: dict[str, str], properties: dict[str, str] | None = None) -> ServerConfig:
    """Validate ``settings`` (zoo.cfg keys) over ``properties`` (-D values) into a config."""
    merged: dict[str, str] = {}
    for name, value in (properties or {}).items():
        if name in _PROPERTY_KEYS:
            merged[_PROPERTY_KEYS[name]] = value
    merged.update(settings)
    fields: dict = {}
    servers = []
    ignored = []
    for key, value in merged.items():
        handler = _HANDLERS.get(key)
        if handler is not None:
            field, parsed = handler(key, value)
            fields[field] = parsed
        elif key.startswith("server."):
            servers.append(_server(key, value))
        elif key in _KNOWN_IGNORED or key.startswith(("ssl.", "group.", "weight.", "quorum.")):
            ignored.append(key)
        else:
            ignored.append(key)
    fields["client_port_given"] = "clientPort" in merged
    config = ServerConfig(**fields, servers=tuple(sorted(servers)), ignored=tuple(ignored),
                          system_properties=tuple(sorted((properties or {}).items())))
    if config.min_session_timeout > config.max_session_timeout:
        raise ConfigError("minSessionTimeout: must not be larger than maxSessionTimeout")
    if not (0 < config.client_port < 65536):
        raise ConfigError(f"clientPort: {config.client_port} is not a TCP port")
    return config


_HANDLERS = {
    "tickTime": lambda k, v: ("tick_ms", _int(k, v, 1)),
    "dataDir": lambda k, v: ("data_dir", v),
    "dataLogDir": lambda k, v: ("data_log_dir", v),
    "clientPort": lambda k, v: ("client_port", _int(k, v, 1)),
    "clientPortAddress": lambda k, v: ("client_port_address", v),
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
    "admin.enableServer": lambda k, v: ("admin_enable_server", _bool(k, v)),
    "admin.serverPort": lambda k, v: ("admin_server_port", _port(k, v)),
    "admin.serverAddress": lambda k, v: ("admin_server_address", v),
    "metricsProvider.className": lambda k, v: ("metrics_provider_class", _provider(k, v)),
    "metricsProvider.httpPort": lambda k, v: ("metrics_http_port", _port(k, v)),
    "metricsProvider.httpHost": lambda k, v: ("metrics_http_host", v),
    "metricsProvider.exportJvmInfo": lambda k, v: ("metrics_export_jvm_info", _bool(k, v)),
}


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
            text = Path(path).read_text()
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from None
        settings = parse_lines(text)
    return build_config(settings, properties)._replace(initial_configuration=text)
