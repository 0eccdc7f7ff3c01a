"""Start-up: the one place that wires a server together from its configuration (standalone or
an ensemble member), restores its state and runs its event loop until SIGTERM or SIGINT. It
sits above both server kinds, so neither imports the other's wiring."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog

from zkpy.config import ServerConfig
from zkpy.runtime import sasl, tls, tuning
from zkpy.runtime.quorum import QuorumServer
from zkpy.runtime.server import Server
from zkpy.storage.snapfile import SnapshotFileError
from zkpy.storage.txnlog import StorageError

log = structlog.get_logger("zkpy.server")


def run(config: ServerConfig) -> int:
    """Run a server until SIGTERM/SIGINT; returns the exit code."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    tuning.configure()
    for key in config.ignored:
        log.info("config key not used by zkpy", key=key)
    for key in config.keys_as_properties:
        # QuorumPeerConfig's rule: a zoo.cfg key it does not parse is the property zookeeper.K.
        log.info("config key taken as a system property", key=key, property="zookeeper." + key)
    os.makedirs(config.data_dir, exist_ok=True)
    try:
        server = QuorumServer(config) if len(config.servers) > 1 else Server(config)
    except (tls.TlsError, sasl.SaslSetupError) as error:
        # ZooKeeper exits 1 (an unexpected exception) for a JAAS file it cannot read.
        log.error("cannot start: TLS or SASL setup failed", error=str(error))
        return 1
    except StorageError as error:
        log.error("cannot start: the data directory cannot be opened", error=str(error))
        return 1
    try:
        server.restore()
    except (StorageError, SnapshotFileError) as error:
        # Never serve a tree rebuilt from damaged files: it could lack acknowledged writes.
        # ZooKeeper, too, exits when it cannot load its database.
        log.error("cannot start: the data directory is damaged; restore it from a backup or, "
                  "in an ensemble, remove it so that the member syncs from the leader",
                  error=str(error))
        server.txn_log.close()
        return 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()

    asyncio.run(main())
    return server.exit_code
