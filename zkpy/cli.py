"""The ``zkpy`` command: one argparse parser with a subcommand per job.

``zkpy [run] [-Dname=value ...] [--log-json] [zoo.cfg]`` runs a server, as ZooKeeper's
QuorumPeerMain does (``run`` may be left out, so ``zkpy zoo.cfg`` works as ``zkServer.sh``
users expect); with no zoo.cfg it serves 127.0.0.1:2181 with data under ./data. ``-D``
arguments, and those in ``JVMFLAGS`` and ``SERVER_JVMFLAGS`` as zkServer.sh reads them, set
Java system properties; JVM-only flags (``-Xmx``, ``-XX:...``, ``-server``) are logged and
ignored. ``zkpy status``, ``import``, ``export``, ``dump-snapshot`` and ``dump-log`` are the
operations commands; ``zkpy --help`` and ``zkpy COMMAND --help`` describe them. The benchmarks
are not part of the server: ``python -m benchmarks.loadgen`` from a checkout.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

import structlog

from zkpy import logging as zk_logging
from zkpy import status
from zkpy.tools import cli as tools_cli

COMMANDS = ("run", "status", "import", "export", "dump-snapshot", "dump-log")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zkpy", description="A ZooKeeper-compatible coordination server.",
        epilog="With no command, the arguments are run's: zkpy [-Dname=value ...] [zoo.cfg].")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(subparsers)
    status.add_subcommand(subparsers)
    tools_cli.add_subcommands(subparsers)
    return parser


def _add_run(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run a server (the default command)",
        description="Run a server from a zoo.cfg, as ZooKeeper's QuorumPeerMain does. "
                    "-Dname=value arguments (and JVMFLAGS, SERVER_JVMFLAGS) set ZooKeeper's "
                    "system properties; JVM-only flags are ignored.",
        usage="zkpy run [-h] [--log-json] [-Dname=value ...] [zoo.cfg]")
    parser.add_argument("config", nargs="?", metavar="zoo.cfg",
                        help="the configuration (default: 127.0.0.1:2181, data in ./data)")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    parser.set_defaults(run=None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "run")
    properties, jvm_flags, argv = split_java_arguments(argv, _environment_flags())
    args = build_parser().parse_args(argv)
    if args.command != "run":
        return args.run(args)
    return _run_server(args, properties, jvm_flags)


def _environment_flags() -> list[str]:
    return shlex.split(os.environ.get("JVMFLAGS", "")) + shlex.split(os.environ.get("SERVER_JVMFLAGS", ""))


def split_java_arguments(argv: list[str], environment_flags: list[str]
                         ) -> tuple[dict[str, str], list[str], list[str]]:
    """(-D properties, ignored JVM flags, the remaining arguments). The environment's flags come
    first, so a -D on the command line wins over JVMFLAGS, as with java."""
    properties: dict[str, str] = {}
    jvm_flags: list[str] = []
    rest: list[str] = []
    for position, arg in enumerate(environment_flags + argv):
        from_environment = position < len(environment_flags)
        if arg.startswith("-D") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            properties[name] = value
        elif arg.startswith("-X") or arg in ("-server", "-client"):
            jvm_flags.append(arg)
        elif not from_environment:
            rest.append(arg)
    return properties, jvm_flags, rest


def _run_server(args: argparse.Namespace, properties: dict[str, str], jvm_flags: list[str]) -> int:
    zk_logging.configure(json_lines=args.log_json)
    log = structlog.get_logger("zkpy.cli")
    for flag in jvm_flags:
        log.info("JVM flag ignored", flag=flag)

    from zkpy.config import ConfigError, load, unused_properties
    from zkpy.runtime.main import run
    for name in unused_properties(properties):
        # Heap sizes, log4j and other JVM settings mean nothing to zkpy; say so once.
        log.info("system property not used by zkpy", property=name)
    try:
        config = load(args.config, properties)
    except ConfigError as error:
        log.error("invalid configuration", error=str(error))
        return 2
    return run(config)
