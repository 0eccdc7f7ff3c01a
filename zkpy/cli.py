"""The ``zkpy`` command.

``zkpy [-Dname=value ...] [zoo.cfg]`` runs a server, as ZooKeeper's QuorumPeerMain does; with no
zoo.cfg it serves 127.0.0.1:2181 with data under ./data. ``JVMFLAGS`` and ``SERVER_JVMFLAGS``
are read for -D settings as zkServer.sh reads them. Other commands: ``zkpy bench ...`` (load
generator), ``zkpy bench-codec``, ``zkpy status HOST:PORT[,...]`` (an ensemble's health as JSON).
"""

from __future__ import annotations

import os
import shlex
import sys

import structlog

from zkpy import logging as zk_logging


def _split_properties(argv: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    properties: dict[str, str] = {}
    ignored: list[str] = []
    rest: list[str] = []
    env_flags = shlex.split(os.environ.get("JVMFLAGS", "")) + shlex.split(os.environ.get("SERVER_JVMFLAGS", ""))
    for arg in env_flags + argv:
        if arg.startswith("-D") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            properties[name] = value
        elif arg.startswith(("-X", "-XX")) or arg in ("-server", "-client"):
            ignored.append(arg)
        else:
            rest.append(arg)
    return properties, ignored, [a for a in rest if a not in env_flags or a in argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from zkpy.bench import loadgen
        return loadgen.main(argv[1:]) or 0
    if argv and argv[0] == "status":
        from zkpy import status
        return status.main(argv[1:])
    if argv and argv[0] == "bench-codec":
        from zkpy.bench import codec
        return codec.main(argv[1:]) or 0
    if argv and argv[0] in ("import", "export", "dump-snapshot", "dump-log"):
        from zkpy.tools import cli as tools_cli
        return tools_cli.main(argv[0], argv[1:])
    json_lines = "--log-json" in argv
    argv = [a for a in argv if a != "--log-json"]
    zk_logging.configure(json_lines=json_lines)
    log = structlog.get_logger("zkpy.cli")
    properties, ignored, rest = _split_properties(argv)
    for flag in ignored:
        log.info("JVM flag ignored", flag=flag)
    if len(rest) > 1:
        log.error("usage: zkpy [-Dname=value ...] [zoo.cfg]", arguments=rest)
        return 2

    from zkpy.config import ConfigError, load, unused_properties
    from zkpy.runtime.main import run
    for name in unused_properties(properties):
        # Heap sizes, log4j and other JVM settings mean nothing to zkpy; say so once.
        log.info("system property not used by zkpy", property=name)
    try:
        config = load(rest[0] if rest else None, properties)
    except ConfigError as error:
        log.error("invalid configuration", error=str(error))
        return 2
    return run(config)
