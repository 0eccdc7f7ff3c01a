"""The runtime: sockets, the event loop, the clock and the disk around the sans-IO cores.

This is the only layer that reads the time, touches sockets or writes to RocksDB. Each event
loop turn it feeds what arrived into the ZooKeeper front end, then (``_flush``) group-commits
the txns the replica core prepared: one synced RocksDB write for the whole batch, in a worker
thread so the loop keeps reading, then hands the batch back to the replica core to apply (its
change feed completes the front end's requests), then writes every
connection's replies in one ``transport.write``. At most one sync is in flight; txns prepared
meanwhile form the next batch.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path

import structlog

from jute import records as r

from zkpy.config import ServerConfig
from zkpy.frontends.zookeeper.connection import (ClientConnection, Connect, FourLetterWord, ProtocolError,
                                      Request)
from zkpy.frontends.etcd.frontend import EtcdFrontEnd, EtcdSettings
from zkpy.frontends.zookeeper.frontend import ZooKeeperFrontEnd
from zkpy.replica.core import CoreSettings, ReplicaCore
from zkpy.runtime import forked_snapshot, fourletter, tuning, sasl, tls
from zkpy.runtime.admin import start_monitoring
from zkpy.runtime.server_metrics import ServerMetrics
from zkpy.storage.recovery import restore
from zkpy.storage import snapfile
from zkpy.storage.fuzzy import FuzzySnapshot
from zkpy.storage.txnlog import TxnLog
from zkpy.tree.acl import AclChecker

log = structlog.get_logger("zkpy.server")

HIGH_WATER_BYTES = 4 << 20
MAX_WRITE_BUFFER_BYTES = 64 << 20


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ClientHandler(asyncio.Protocol):
    """One client socket: bytes to the sans-IO connection, events to the ZooKeeper front end."""

    def __init__(self, server: "Server", connection_id: int, secure: bool = False) -> None:
        self.server = server
        self.connection_id = connection_id
        self.secure = secure  # accepted on secureClientPort: TLS, handshake done
        self.protocol = ClientConnection(server.config.max_buffer_bytes)
        self.transport: asyncio.Transport | None = None
        self.write_blocked = False
        self.throttled = False
        self.peer_host = "?"
        self.peer_port = 0
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer_host, self.peer_port = peer[0], peer[1]
        transport.set_write_buffer_limits(high=HIGH_WATER_BYTES)
        certificate_ids = self.server.certificate_ids(self) if self.secure else ()
        if certificate_ids is None:
            self.abort()
            return
        if not self.server.admit(self):
            return
        self.server.zookeeper.connection_opened(self.connection_id, self.peer_host, now_ms())
        if certificate_ids:
            self.server.zookeeper.add_auth(self.connection_id, certificate_ids)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.protocol.receive_data(data)
        except ProtocolError as error:
            session = self.server.session_of(self.connection_id)
            log.warning("closing connection: protocol error", client=self.peer_host,
                        session=session, reason=str(error))
            self.server.large_requests_rejected += "Len error" in str(error)
            self.abort()
            return
        if events:
            self.server.handle_events(self, events)

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests until it does.
        self.write_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        self._update_reading()

    def pause_reads_for_throttle(self) -> None:
        self.throttled = True
        self._update_reading()

    def resume_reads_after_throttle(self) -> None:
        self.throttled = False
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        if self.write_blocked or self.throttled:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.server.connection_lost(self)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES:
            log.warning("closing connection: client is not reading its replies",
                        client=self.peer_host, session=self.server.session_of(self.connection_id))
            self.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()


class Server:
    """A standalone zkpy server: one replica core, one log, the ZooKeeper client listeners."""

    def __init__(self, config: ServerConfig, server_id: int = 0,
                 session_secret: bytes | None = None) -> None:
        """``server_id`` (0 standalone) goes into session ids; ``session_secret`` derives the
        session passwords (None: this data directory's own random secret). An ensemble member
        gives both, and reconfig is taken from the config only then."""
        self.config = config
        # TLS and SASL first: a store or JAAS file that cannot be used stops the server before it
        # opens anything (TlsError, SaslSetupError), as ZooKeeper does not start either.
        self.tls_context = (tls.server_context(config.tls)
                            if config.secure_client_port and config.tls else None)
        sasl_authenticator = sasl.authenticator(config)
        acl_checker = AclChecker(config.auth.schemes, config.auth.x509_super_user,
                                 config.auth.sasl_any_user)
        for provider in config.auth.unknown_providers:
            log.warning("auth provider class zkpy does not have; ignored", provider=provider)
        data_dir = Path(config.data_log_dir or config.data_dir)
        self.txn_log = TxnLog(data_dir / "zkpy-db")
        self.metrics = ServerMetrics()
        self.txn_log.on_synced = self.metrics.log_synced
        start_ms = now_ms()
        settings = CoreSettings(
            tick_ms=config.tick_ms,
            min_session_timeout_ms=config.min_session_timeout,
            max_session_timeout_ms=config.max_session_timeout,
            extended_types_enabled=config.extended_types_enabled,
            server_id=server_id,
            session_secret=(self.txn_log.secret() if session_secret is None else session_secret),
            super_digest=config.super_digest,
            max_watches_per_session=config.max_watches_per_session,
            reconfig_enabled=bool(server_id) and config.reconfig_enabled,
            acl_checker=acl_checker,
        )
        # The replica core holds the tree, the sessions and the write pipeline; the ZooKeeper
        # front end, the client protocol over it.
        self.replica = ReplicaCore(settings, start_ms)
        self.zookeeper = ZooKeeperFrontEnd(self.replica, sasl_authenticator)
        # etcd's v3 API over the same core, when an etcd port is configured.
        self.etcd_frontend = None
        self.etcd = None  # its gRPC listener (zkpy.runtime.etcd), once serving
        if config.etcd_client_port is not None or config.etcd_secure_client_port:
            self.etcd_frontend = EtcdFrontEnd(self.replica, EtcdSettings(
                root=config.etcd_root, cluster_id=_cluster_id(config),
                member_id=etcd_member_id(server_id), client_urls=tuple(self.etcd_client_urls()),
                max_request_bytes=min(1536 * 1024, config.max_buffer_bytes - 4096),
                progress_notify_interval_ms=config.etcd_progress_notify_interval_ms,
                auth_secret=settings.session_secret,
                max_history_versions=config.etcd_max_history_versions))
        self.started_ms = start_ms
        self.connections: dict[int, ClientHandler] = {}
        self._ids = itertools.count(1)
        self._per_ip: Counter[str] = Counter()
        self._flush_scheduled = False
        self._sync_in_flight = False
        self._listener: asyncio.AbstractServer | None = None
        self._secure_listener: asyncio.AbstractServer | None = None
        self._http = None  # the AdminServer and metrics endpoint (zkpy.runtime.admin)
        self.exit_code = 0
        self._tasks: list[asyncio.Task] = []
        self._stopping: asyncio.Event | None = None
        self.txn_count = 0
        self.txns_since_snapshot = 0
        self.snapshot_count = 0
        self.connections_rejected = 0
        self.throttled = False  # reading from every client is paused (globalOutstandingLimit)
        self.throttle_count = 0
        self.large_requests_rejected = 0
        self._snapshot_task: asyncio.Future | None = None
        self._snapshot_write: asyncio.Future | None = None
        self._snapshot_child: int | None = None  # pid of a child encoding a snapshot

    # -- life cycle ---------------------------------------------------------------------------

    def restore(self) -> None:
        def progress(stage: str, count: int) -> None:
            log.info("restoring", stage=stage, count=count)

        with tuning.paused():
            restore(self.replica, self.txn_log, now_ms(), progress)
        tuning.settle()
        if self.etcd_frontend is not None:
            self.etcd_frontend.rebuild()
        self.txns_since_snapshot = 0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # The AdminServer and metrics endpoint come up first, as in ZooKeeper: if one cannot
        # bind, the server stops before it ever serves (exit code 4).
        self._http = await start_monitoring(self)
        if self.etcd_frontend is not None:
            from zkpy.runtime.etcd import EtcdListener  # grpcio only when etcd is served
            self.etcd = EtcdListener(self, self.etcd_frontend)
            await self.etcd.start()
        if self.serves_plaintext():
            self._listener = await loop.create_server(
                lambda: ClientHandler(self, next(self._ids)),
                host=self.config.client_port_address, port=self.config.client_port,
                reuse_address=True, backlog=1024)
        if self.tls_context is not None:
            self._secure_listener = await loop.create_server(
                lambda: ClientHandler(self, next(self._ids), secure=True),
                host=self.config.secure_client_port_address, port=self.config.secure_client_port,
                ssl=self.tls_context, ssl_handshake_timeout=self.config.tls.handshake_timeout_ms / 1000,
                reuse_address=True, backlog=1024)
            log.info("serving TLS", address=self.config.secure_client_port_address,
                     port=self.config.secure_client_port, client_auth=self.config.tls.client_auth)
        await self._start_ensemble()
        log.info("serving", address=self.config.client_port_address,
                 port=self.config.client_port if self.serves_plaintext() else None,
                 zxid=hex(self.replica.tree.last_zxid), mode=self.mode())
        self._tasks = [asyncio.create_task(work) for work in self._periodic_work()]
        if self.config.purge_interval_hours > 0:
            self._tasks.append(asyncio.create_task(self._purger()))
        await self._stopping.wait()
        await self._shutdown()

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def _shutdown(self) -> None:
        log.info("shutting down", zxid=hex(self.replica.tree.last_zxid))
        if self._listener is not None:
            self._listener.close()
        if self._secure_listener is not None:
            self._secure_listener.close()
        if self._http is not None:
            await self._http.close()
        if self.etcd is not None:
            await self.etcd.stop()
        for task in self._tasks:
            task.cancel()
        self._stop_ensemble()
        # A snapshot still being encoded is dropped (the log has everything); one being written
        # is let finish, as is an in-flight log sync, so no acknowledged write is in doubt.
        if self._snapshot_task is not None and (self._snapshot_write is None or self._snapshot_write.done()):
            self._snapshot_task.cancel()
        if self._snapshot_child is not None:
            # Still writing: the child is stopped and its partial file removed.
            forked_snapshot.kill(self._snapshot_child)
        deadline = time.monotonic() + 2.0
        while self._sync_in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._snapshot_write is not None and not self._snapshot_write.done():
            await asyncio.wait([self._snapshot_write], timeout=30)
        for handler in list(self.connections.values()):
            handler.close()
        self.txn_log.close()
        log.info("stopped")

    # -- connections --------------------------------------------------------------------------

    def admit(self, handler: ClientHandler) -> bool:
        limit = self.config.max_client_cnxns
        if limit and self._per_ip[handler.peer_host] >= limit:
            self.connections_rejected += 1
            log.warning("too many connections from one address; closing", client=handler.peer_host,
                        limit=limit)
            handler.abort()
            return False
        self._per_ip[handler.peer_host] += 1
        self.connections[handler.connection_id] = handler
        if self.throttled:
            handler.pause_reads_for_throttle()
        return True

    def connection_lost(self, handler: ClientHandler) -> None:
        if self.connections.pop(handler.connection_id, None) is None:
            return
        self._per_ip[handler.peer_host] -= 1
        if self._per_ip[handler.peer_host] <= 0:
            del self._per_ip[handler.peer_host]
        self.zookeeper.connection_closed(handler.connection_id, now_ms())

    def serves_plaintext(self) -> bool:
        """As ZooKeeper: a zoo.cfg with secureClientPort and no clientPort (nor a client port on
        the server lines) has no plaintext listener."""
        config = self.config
        return (not config.secure_client_port or config.client_port_given
                or any(spec.client_port for spec in config.servers))

    def certificate_ids(self, handler: ClientHandler) -> tuple | None:
        """The x509 ids of a TLS connection, as ZooKeeper's CertificateVerifier and
        X509AuthenticationProvider find them; None closes the connection."""
        client_auth = self.config.tls.client_auth
        if client_auth == "none":
            return ()
        try:
            subject = tls.client_identity(handler.transport.get_extra_info("ssl_object"))
        except Exception as error:  # an unreadable certificate: ZooKeeper closes too
            log.error("error getting peer certificates", client=handler.peer_host, error=repr(error))
            return None
        if subject is None:
            # want: a client without a certificate carries on unauthenticated (need: the
            # handshake has already refused it).
            return () if client_auth == "want" else None
        auth = self.config.auth
        if auth.ssl_auth_scheme != "x509" or "x509" not in auth.schemes:
            log.error("X509 Auth provider not found; closing connection",
                      scheme=auth.ssl_auth_scheme, client=handler.peer_host)
            return None
        ids = [r.Id("x509", subject)]
        if auth.x509_super_user is not None and subject == auth.x509_super_user:
            ids.insert(0, r.Id("super", subject))
            log.info("authenticated as super user", scheme="x509", id=subject)
        log.info("authenticated", scheme="x509", id=subject, client=handler.peer_host)
        return tuple(ids)

    def session_of(self, connection_id: int) -> str | None:
        conn = self.zookeeper.connections.get(connection_id)
        if conn is None or not conn.session_id:
            return None
        return hex(conn.session_id & 0xFFFFFFFFFFFFFFFF)

    def handle_events(self, handler: ClientHandler, events: list) -> None:
        zookeeper = self.zookeeper
        time_ms = now_ms()
        connection_id = handler.connection_id
        for event in events:
            if type(event) is Request:
                zookeeper.handle_request(connection_id, event.xid, event.type, event.payload, time_ms)
            elif type(event) is Connect:
                zookeeper.handle_connect(connection_id, event.request, time_ms)
            elif type(event) is FourLetterWord:
                handler.write(fourletter.answer(self, event.word).encode())
                handler.close()
                return
        self._schedule_flush()

    # -- the pipeline's I/O -------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._sync_in_flight:
            batch = self.replica.take_log_batch()
            if batch:
                if self._sync_inline(batch):
                    return  # durable, applied and flushed again (_batch_durable)
                self._sync_in_flight = True
                future = asyncio.get_running_loop().run_in_executor(None, self.txn_log.append, batch)
                future.add_done_callback(lambda f, b=batch: self._synced(f, b))
        self._send_outbox()
        self._apply_backpressure()

    def _sync_inline(self, batch: list) -> bool:
        """A lone write, with no other session waiting, is synced on the loop thread: there is
        nothing to overlap with the fsync, and the two thread hand-offs of the worker path
        (~55 us of a ~250 us write at 1 session x depth 1) are saved. Batches of more go to
        the worker, so reads and prep carry on during their fsync."""
        if len(batch) != 1 or len(self.zookeeper.pending) > 1 or self._etcd_writes_waiting():
            return False
        try:
            self.txn_log.append(batch)
        except Exception as error:  # noqa: BLE001 - any failure means the log is not durable
            self._log_failed(error)
            return True
        self._batch_durable(batch)
        return True

    def _etcd_writes_waiting(self) -> bool:
        """Whether an etcd client waits on a write. Its sync then goes to the worker: gRPC
        hands the loop one request per callback, so the next writes are not in yet when this
        one is flushed, and an inline sync would take them one fsync each."""
        return self.etcd_frontend is not None and bool(self.etcd_frontend.pending)

    def _synced(self, future: asyncio.Future, batch: list) -> None:
        self._sync_in_flight = False
        error = future.exception()
        if error is not None:
            self._log_failed(error)
            return
        self._batch_durable(batch)

    def _log_failed(self, error: BaseException) -> None:
        # A log that cannot be written cannot promise durability: stop, as ZooKeeper does.
        log.critical("transaction log write failed; shutting down", error=repr(error))
        self.stop()

    def _batch_durable(self, batch: list) -> None:
        self.replica.log_durable(batch, now_ms())
        self.txn_count += len(batch)
        self.txns_since_snapshot += len(batch)
        if self.txns_since_snapshot >= self.config.snap_count:
            self._take_snapshot()
        self._flush()

    def _apply_backpressure(self) -> None:
        """globalOutstandingLimit: above it, stop reading from every client until half of the
        outstanding requests are answered, instead of queueing without bound."""
        outstanding = self.zookeeper.outstanding_requests()
        limit = self.config.global_outstanding_limit
        if not self.throttled and outstanding > limit:
            self.throttled = True
            self.throttle_count += 1
            log.warning("outstanding requests over the limit; pausing client reads",
                        outstanding=outstanding, limit=limit)
            for handler in self.connections.values():
                handler.pause_reads_for_throttle()
        elif self.throttled and outstanding <= limit // 2:
            self.throttled = False
            for handler in self.connections.values():
                handler.resume_reads_after_throttle()

    def _send_outbox(self) -> None:
        if self.etcd is not None:
            self.etcd.deliver()
        zookeeper = self.zookeeper
        outbox = zookeeper.outbox
        if outbox:
            zookeeper.outbox = []
            grouped: dict[int, list[bytes]] = {}
            for connection_id, data in outbox:
                parts = grouped.get(connection_id)
                if parts is None:
                    grouped[connection_id] = [data]
                else:
                    parts.append(data)
            connections = self.connections
            for connection_id, parts in grouped.items():
                handler = connections.get(connection_id)
                if handler is not None:
                    handler.write(parts[0] if len(parts) == 1 else b"".join(parts))
        if zookeeper.to_close:
            doomed, zookeeper.to_close = zookeeper.to_close, []
            for connection_id in doomed:
                handler = self.connections.get(connection_id)
                if handler is not None:
                    handler.close()

    # -- periodic work ------------------------------------------------------------------------

    def tick_frontends(self, time_ms: int) -> None:
        if self.etcd_frontend is not None:
            self.etcd_frontend.tick(time_ms)

    def _periodic_work(self) -> list:
        """The loops that drive the replica core's clock: session expiry and container reaping."""
        return [self._ticker(), self._reaper()]

    async def _ticker(self) -> None:
        interval_s = min(self.config.tick_ms, 500) / 1000
        while True:
            await asyncio.sleep(interval_s)
            time_ms = now_ms()
            self.replica.tick(time_ms)
            self.tick_frontends(time_ms)
            self._schedule_flush()

    async def _reaper(self) -> None:
        interval_s = self.config.container_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            self.replica.reap_containers(now_ms())
            self._schedule_flush()

    async def _purger(self) -> None:
        while True:
            await asyncio.sleep(self.config.purge_interval_hours * 3600)
            removed = self.txn_log.purge(self.config.snap_retain_count)
            log.info("autopurge", snapshots_removed=removed)

    def _take_snapshot(self) -> None:
        """Start a snapshot unless one is under way (it runs beside the request pipeline)."""
        self.txns_since_snapshot = 0
        if self._snapshot_task is None:
            self._snapshot_task = asyncio.ensure_future(self._snapshot())

    async def _snapshot(self) -> None:
        """Snapshot the tree beside the request pipeline, then drop the log behind the retained
        snapshots. Where the OS can fork, a child encodes the tree as it stands at the fork
        (exact as of the last applied zxid; zkpy.runtime.forked_snapshot). Elsewhere it is a
        fuzzy snapshot, as ZooKeeper takes them: the tree is encoded a slice at a time between
        loop turns while txns keep applying, and stored under the zxid applied when it began;
        recovery replays the log from there, skipping what the snapshot already holds
        (DataTree.apply_replayed)."""
        tree = self.replica.tree
        start_zxid = tree.last_zxid
        started = time.monotonic()
        sessions = [(s.session_id, s.timeout_ms) for s in self.replica.sessions.sessions.values()]
        loop = asyncio.get_running_loop()
        log.info("snapshot started", zxid=hex(start_zxid))
        try:
            path = self.txn_log.new_snapshot_path(start_zxid)
            pid = self._fork_snapshot_child(tree, path)
            if pid is not None:
                self._snapshot_child = pid
                self._snapshot_write = loop.run_in_executor(
                    None, self._commit_forked_snapshot, pid, path, start_zxid, len(tree.nodes),
                    sessions, now_ms())
            else:
                chunks, count = await self._encode_tree(tree)
                if self.replica.tree is not tree:
                    log.info("snapshot abandoned: the tree was replaced", zxid=hex(start_zxid))
                    return
                self._snapshot_write = loop.run_in_executor(
                    None, self._write_snapshot, start_zxid, chunks, count, sessions, now_ms())
            meta = await asyncio.shield(self._snapshot_write)
            self.metrics.snapshot_time_ms.observe((time.monotonic() - started) * 1000.0)
            self.snapshot_count += 1
            self._snapshot_written(meta)
            tuning.settle()
            log.info("snapshot taken", zxid=hex(start_zxid), nodes=meta["nodes"],
                     seconds=round(time.monotonic() - started, 3))
        except Exception as error:  # a failed snapshot loses nothing: the log is intact
            log.error("snapshot failed", zxid=hex(start_zxid), error=repr(error))
        finally:
            self._snapshot_task = None
            self._snapshot_child = None

    def _fork_snapshot_child(self, tree, path) -> int | None:
        """The pid of a child writing ``tree`` to the snapshot file ``path``; None where fork
        is unavailable or fails (e.g. out of memory), and the loop encodes a fuzzy snapshot
        instead."""
        if not forked_snapshot.available():
            return None
        try:
            return forked_snapshot.start(tree, path)
        except OSError as error:
            log.warning("cannot fork a snapshot child; encoding in the server", error=repr(error))
            return None

    def _commit_forked_snapshot(self, pid, path, zxid, node_count, sessions, time_ms) -> dict:
        """Worker thread: once the child has made its file durable, commit it as the snapshot
        at ``zxid``; then purge as _write_snapshot does."""
        try:
            forked_snapshot.wait(pid)
        except BaseException:
            snapfile.remove(path)
            raise
        meta = self.txn_log.commit_snapshot_file(zxid, path, node_count, sessions, time_ms)
        self.txn_log.purge(self.config.snap_retain_count)
        return meta

    SNAPSHOT_SLICE_NODES = 2_000  # ~10-40 ms of encoding between loop turns

    def _write_snapshot(self, zxid, chunks, count, sessions, time_ms) -> dict:
        """Worker thread: store the snapshot, then drop what the retained ones make useless."""
        meta = self.txn_log.write_snapshot_chunks(zxid, chunks, count, sessions, time_ms)
        self.txn_log.purge(self.config.snap_retain_count)
        return meta

    async def _encode_tree(self, tree) -> tuple[list[bytes], int]:
        snapshot = FuzzySnapshot(tree)
        while not snapshot.step(self.SNAPSHOT_SLICE_NODES):
            await asyncio.sleep(0)  # let requests through between slices
        return snapshot.chunks, snapshot.node_count

    def _snapshot_written(self, meta: dict) -> None:
        return None

    # -- what the etcd API tells of the server ----------------------------------------------

    def etcd_members(self) -> list:
        """etcd's member list: this server alone (an ensemble member lists the ensemble)."""
        from zkpy.frontends.etcd.proto import rpc_pb2
        return [rpc_pb2.Member(ID=etcd_member_id(0), name="zkpy",
                               clientURLs=self.etcd_client_urls())]

    def etcd_client_urls(self) -> list[str]:
        config = self.config
        host = config.etcd_client_port_address
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        urls = []
        if config.etcd_client_port is not None:
            urls.append(f"http://{host}:{config.etcd_client_port}")
        if config.etcd_secure_client_port:
            urls.append(f"https://{host}:{config.etcd_secure_client_port}")
        return urls

    def etcd_leader_id(self) -> int:
        return etcd_member_id(0)

    def etcd_db_size_bytes(self) -> int:
        """What the data directory holds on disk (etcd reports its database file's size)."""
        directory = Path(self.config.data_log_dir or self.config.data_dir) / "zkpy-db"
        return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())

    def uptime_ms(self) -> int:
        return now_ms() - self.started_ms

    # -- what an ensemble member overrides (zkpy.runtime.quorum) --------------------------------

    def mode(self) -> str:
        return "standalone"

    def serving(self) -> bool:
        return True

    def read_only(self) -> bool:
        return False

    def ensemble_rows(self) -> list[tuple[str, object]]:
        """mntr rows only ensemble members have."""
        return []

    async def _start_ensemble(self) -> None:
        return None

    def _stop_ensemble(self) -> None:
        return None


def etcd_member_id(server_id: int) -> int:
    """The etcd member id of a server: its myid (1 for a standalone server, which has none)."""
    return server_id or 1


def _cluster_id(config: ServerConfig) -> int:
    import zlib
    members = ",".join(sorted(f"{s.server_id}={s.host}" for s in config.servers)) or "standalone"
    return zlib.crc32(("zkpy:" + members).encode())
