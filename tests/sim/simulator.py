"""Deterministic simulation of a zkpy ensemble: nodes, network, clock and disks in one process.

Each member is the runtime's own code with the I/O taken out: the replica core and the
ZooKeeper front end, restored from and logging to the real RocksDB storage (group commit at a
seeded disk pace, snapshots and log purging every ``snap_count`` txns, SNAP sync included),
and the ZAB peer; only the sockets, the clock and the worker thread are the simulator's.

One seed derives everything (message delays, drops, partitions, crashes, disk latency, client
operations), so a failure is reproduced by running the same seed. Links behave like TCP
connections: FIFO per direction; a "drop" resets the connection (both ends are told, and what
was in flight is lost), as a real peer would see a broken socket. Votes travel on their own
loss-tolerant channel, as on ZooKeeper's election port.

Clients pipeline writes (create, setData), reads (getData, exists), syncs and pings on one
session, move their session to another member (or back to the same one) now and then, and check
every reply as a client library does: a reply must be for the oldest request still outstanding
on that connection (request order, no gap, no duplicate; ``InvariantViolation`` otherwise), and
a create's reply must name the path that was asked for. A connection the server decides to
close may stay open a little longer (``Faults.close_lag_probability``), as in the runtime, where
the socket is closed at the end of the loop turn and requests already on their way are still
read meanwhile.
"""

from __future__ import annotations

import heapq
import os
import random
import shutil
import struct
import tempfile
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from jute import OpCode, Xid
from jute import records as r
from zkpy.frontends.zookeeper.frontend import ZooKeeperFrontEnd
from zkpy.replica.core import CoreSettings, ReplicaCore
from zkpy.ensemble.node import EnsembleNode
from zkpy.ensemble.member import open_member
from zkpy.storage.recovery import restore
from zkpy.storage.rocks_storage import RocksStorage
from zkpy.storage.txnlog import TxnLog
from zkpy.tree.txncodec import encode_txn
from zkpy.zab import messages as m
from zkpy.zab.peer import PeerSettings

TICK_MS = 100
# Small enough that members snapshot, purge their logs and send SNAPs to lagging followers
# within one simulated run.
SNAP_COUNT = 40
SNAP_RETAIN_COUNT = 3
_SCRATCH_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Longer than any wait for a reply a correct member makes a client bear (sync limit, elections,
# slow disks) and than the simulated session timeout (5 s): past it a request is stuck.
STUCK_MS = 6_000
OPEN = [r.ACL(31, r.Id("world", "anyone"))]
_LENGTH = struct.Struct(">i")


class InvariantViolation(AssertionError):
    pass


@dataclass
class Faults:
    drop_probability: float = 0.0
    vote_drop_probability: float = 0.0
    max_delay_ms: int = 5
    disk_max_delay_ms: int = 3
    crash_probability: float = 0.0  # per node per 100 ms
    partition_probability: float = 0.0  # per 100 ms
    # A connection the server closes stays open until the clients' next round of requests
    # has been handled (the runtime closes sockets at the end of its loop turn).
    close_lag_probability: float = 0.0
    reconnect_probability: float = 0.0  # per client per 100 ms: move the session (any member)


@dataclass
class Outstanding:
    """A request sent on the client's current connection and not answered yet."""

    xid: int
    op: int
    path: str
    sent_ms: int = 0


@dataclass
class SimClient:
    client_id: int
    node_id: int | None = None
    connection_id: int = 0
    session_id: int = 0
    passwd: bytes = b""
    # As the Java client, xids go on counting across reconnections of the session.
    next_xid: int = 1
    next_name: int = 1
    last_zxid: int = 0
    awaiting_connect: bool = False
    scripted: bool = False  # driven by the test itself, not by the random client step
    outstanding: deque = field(default_factory=deque)  # Outstanding, in request order
    created: list = field(default_factory=list)  # its acknowledged creates, read back later
    answered: list = field(default_factory=list)  # (connection_id, xid) of every reply, in order
    lost: int = 0  # requests left unanswered when a connection closed (connection loss)


class AppliedRecorder:
    """Reads a member's change feed, as a front end does, and checks that every member applies
    the same txn at each zxid."""

    tag = "sim-recorder"

    def __init__(self, sim: "Simulation", server_id: int) -> None:
        self.sim = sim
        self.server_id = server_id

    def applied(self, hdr, txn, result, now_ms: int) -> None:
        encoded = encode_txn(hdr, txn)
        seen = self.sim.applied.get(hdr.zxid)
        if seen is None:
            self.sim.applied[hdr.zxid] = encoded
        elif seen != encoded:
            raise InvariantViolation(f"seed {self.sim.seed}: node {self.server_id} applied a "
                                     f"different txn at zxid {hdr.zxid:#x}")

    def batch_applied(self, now_ms: int) -> None:
        return None

    def sync_done(self, session_id: int, xid: int, now_ms: int) -> None:
        return None

    def not_passed_on(self, request, now_ms: int) -> None:
        return None

    def session_closed(self, session_id: int) -> None:
        return None

    def role_changed(self, role: str, now_ms: int) -> None:
        return None


class SimNode:
    """One member as the runtime runs it: a replica core and its ZooKeeper front end over the
    RocksDB txn log (``RocksStorage`` on ``TxnLog``, in a directory of its own), restored and
    opened by the runtime's own code, group-committed at the simulated disk's pace and
    snapshotted every ``snap_count`` txns. A crash closes the log and loses what was queued but
    not flushed; a restart reopens the same directory."""

    def __init__(self, sim: "Simulation", server_id: int, directory: Path) -> None:
        self.sim = sim
        self.server_id = server_id
        self.directory = directory
        self.storage: RocksStorage | None = None
        self.alive = True
        self.sync_due_ms: int | None = None
        self.txns_since_snapshot = 0
        self.node = self._boot(sim.now_ms)

    def _boot(self, now_ms: int) -> EnsembleNode:
        txn_log = TxnLog(self.directory)
        self.storage = RocksStorage(txn_log)
        core = self._new_core(now_ms)
        restore(core, txn_log, now_ms)
        peer_settings = PeerSettings(self.server_id, self.sim.voters, tick_ms=TICK_MS,
                                     init_limit=10, sync_limit=5, finalize_wait_ms=50,
                                     election_resend_ms=200, observers=self.sim.observers)
        node = open_member(peer_settings, core, self.storage, now_ms)
        core.attach(AppliedRecorder(self.sim, self.server_id))
        self.txns_since_snapshot = 0
        self.sim.route(self.server_id, node.process(now_ms))
        return node

    def _new_core(self, now_ms: int) -> ReplicaCore:
        settings = CoreSettings(tick_ms=TICK_MS, server_id=self.server_id,
                                session_secret=b"sim", extended_types_enabled=True)
        core = ReplicaCore(settings, now_ms)
        self.zookeeper = ZooKeeperFrontEnd(core)
        return core

    def flush(self, now_ms: int) -> list:
        """The disk finished a sync: what the runtime's worker thread does (``_flush``), then
        what ``_log_synced`` does on the loop with its result."""
        storage = self.storage
        zxid, count, generation = storage.flush()
        if zxid < 0 or generation != storage.generation:
            return []
        outgoing = self.node.log_durable(zxid, now_ms)
        self.txns_since_snapshot += count
        snap_count = self.sim.snap_count
        if snap_count is not None and self.txns_since_snapshot >= snap_count:
            self._snapshot(now_ms)
        return outgoing

    def _snapshot(self, now_ms: int) -> None:
        """The runtime's snapshot, taken at once: the tree as of its last applied txn, then the
        purge behind the retained snapshots, then the peer's log floor."""
        self.txns_since_snapshot = 0
        tree = self.node.core.tree
        sessions = [(s.session_id, s.timeout_ms) for s in self.node.core.sessions.sessions.values()]
        txn_log = self.storage.txn_log
        txn_log.write_snapshot(tree.last_zxid, tree.iter_nodes(), sessions, now_ms)
        txn_log.purge(SNAP_RETAIN_COUNT)
        self.node.snapshots_retained([meta["zxid"] for meta in txn_log.snapshots()],
                                     SNAP_RETAIN_COUNT)
        self.sim.snapshots_taken += 1

    def crash(self) -> None:
        self.alive = False
        self.storage.close()
        self.sync_due_ms = None
        self.sim.disconnect_all(self.server_id)
        self.sim.drop_clients_of(self.server_id)

    def restart(self, while_down=None) -> None:
        """Boot from the directory again; ``while_down(storage)`` first changes what is on disk
        (as an operator, or a bug, would between the crash and the restart)."""
        if while_down is not None:
            storage = RocksStorage(TxnLog(self.directory))
            while_down(storage)
            storage.close()
        self.alive = True
        self.node = self._boot(self.sim.now_ms)

    def close(self) -> None:
        if self.alive:
            self.storage.close()
            self.alive = False


class Simulation:
    def __init__(self, seed: int, size: int = 3, faults: Faults | None = None,
                 observers: int = 0, snap_count: int | None = SNAP_COUNT) -> None:
        self.seed = seed
        self.snap_count = snap_count  # txns between a member's snapshots (None: never)
        self.snapshots_taken = 0
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.now_ms = 0
        self.voters = frozenset(range(1, size + 1))
        self.observers = frozenset(range(size + 1, size + observers + 1))
        self.members = self.voters | self.observers
        self._queue: list = []
        self._seq = 0
        self._link_epoch: dict[tuple[int, int], int] = {}
        self._link_last_ms: dict[tuple[int, int], int] = {}
        # A broken link stays broken for a sender until that sender has noticed (link_lost).
        self._link_broken: set[tuple[int, int]] = set()
        self.partition: set[frozenset] = set()  # pairs that cannot talk
        self.applied: dict[int, bytes] = {}  # zxid -> txn bytes, across all nodes
        self.leaders_by_epoch: dict[int, set[int]] = {}
        self.acked: dict[str, int] = {}  # path -> zxid of an acknowledged create
        self.trace: list[str] = []
        self.nodes: dict[int, SimNode] = {}
        # Each member's data directory, on tmpfs where there is one (a sync is cheap there, and
        # nothing of the simulation depends on the time a sync takes); removed with the
        # simulation, or when it is collected if nobody closed it.
        self.directory = Path(tempfile.mkdtemp(prefix="zkpy-sim-", dir=_SCRATCH_DIRECTORY))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)
        for server_id in sorted(self.members):
            self.nodes[server_id] = SimNode(self, server_id, self.directory / f"member-{server_id}")
        self.clients: list[SimClient] = []
        self._next_connection = 1000
        # (server_id, connection_id): closes the core asked for that have not happened yet.
        self._lagging_closes: list[tuple[int, int]] = []

    def close(self) -> None:
        for sim_node in self.nodes.values():
            sim_node.close()
        self._cleanup()

    def __enter__(self) -> "Simulation":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- invariants ------------------------------------------------------------------------------

    def check_single_leader(self) -> None:
        for server_id, sim_node in self.nodes.items():
            if not sim_node.alive:
                continue
            peer = sim_node.node.peer
            if peer.state == m.LEADING and peer.established:
                leaders = self.leaders_by_epoch.setdefault(peer.epoch, set())
                leaders.add(server_id)
                if len(leaders) > 1:
                    raise InvariantViolation(
                        f"seed {self.seed}: two established leaders in epoch {peer.epoch}: {leaders}")

    # -- network ---------------------------------------------------------------------------------

    def route(self, sender: int, outgoing: list) -> None:
        for to, message in outgoing:
            self.send(sender, to, message)

    def send(self, sender: int, to: int, message) -> None:
        if frozenset((sender, to)) in self.partition:
            if type(message) is not m.Vote:
                self.reset_link(sender, to)
            return
        if type(message) is m.Vote:
            if self.rng.random() < self.faults.vote_drop_probability:
                return
            delay = self.rng.randint(0, self.faults.max_delay_ms)
            self._push(self.now_ms + delay, ("msg", sender, to, message, None))
            return
        link = (sender, to)
        if link in self._link_broken:
            return
        if self.rng.random() < self.faults.drop_probability:
            self.reset_link(sender, to)
            return
        # FIFO per link: never deliver before the link's previous message.
        at = max(self.now_ms + self.rng.randint(0, self.faults.max_delay_ms),
                 self._link_last_ms.get(link, 0))
        self._link_last_ms[link] = at
        self._push(at, ("msg", sender, to, message, self._link_epoch.get(link, 0)))

    def reset_link(self, a: int, b: int) -> None:
        """A broken connection: in-flight messages both ways are lost; both ends notice."""
        for link in ((a, b), (b, a)):
            self._link_epoch[link] = self._link_epoch.get(link, 0) + 1
            self._link_broken.add(link)
        self._push(self.now_ms, ("link_lost", a, b, None, None))
        self._push(self.now_ms, ("link_lost", b, a, None, None))

    def disconnect_all(self, server_id: int) -> None:
        for other in self.members:
            if other != server_id:
                self.reset_link(server_id, other)

    def _push(self, at_ms: int, event) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, event))

    # -- running ---------------------------------------------------------------------------------

    def run_until(self, end_ms: int, chaos: bool = False) -> None:
        next_tick = (self.now_ms // TICK_MS + 1) * TICK_MS
        while True:
            next_event = self._queue[0][0] if self._queue else end_ms + 1
            next_disk = min((n.sync_due_ms for n in self.nodes.values()
                             if n.alive and n.sync_due_ms is not None), default=end_ms + 1)
            at = min(next_event, next_disk, next_tick)
            if at > end_ms:
                self.now_ms = end_ms
                return
            self.now_ms = at
            if at == next_disk:
                self._disk_syncs()
            elif at == next_event:
                self._deliver(heapq.heappop(self._queue)[2])
            else:
                self._tick_all(chaos)
                next_tick += TICK_MS
            self._schedule_syncs()
            self.check_single_leader()

    def _deliver(self, event) -> None:
        kind, sender, to, message, link_epoch = event
        target = self.nodes[to]
        if not target.alive:
            if kind == "link_lost":
                self._link_broken.discard((to, sender))
            return
        if kind == "link_lost":
            self._link_broken.discard((to, sender))
            self.route(to, target.node.link_lost(sender, self.now_ms))
            self._drain_clients(to)
            return
        if link_epoch is not None and link_epoch != self._link_epoch.get((sender, to), 0):
            return  # sent on a connection that has since broken
        if not self.nodes[sender].alive and type(message) is not m.Vote:
            return
        self.route(to, target.node.step(sender, message, self.now_ms))
        self._drain_clients(to)

    def _schedule_syncs(self) -> None:
        for sim_node in self.nodes.values():
            if sim_node.alive and sim_node.storage.queued and sim_node.sync_due_ms is None:
                sim_node.sync_due_ms = self.now_ms + self.rng.randint(0, self.faults.disk_max_delay_ms)

    def _disk_syncs(self) -> None:
        for server_id, sim_node in self.nodes.items():
            if sim_node.alive and sim_node.sync_due_ms is not None and sim_node.sync_due_ms <= self.now_ms:
                sim_node.sync_due_ms = None
                self.route(server_id, sim_node.flush(self.now_ms))
                self._drain_clients(server_id)

    def _tick_all(self, chaos: bool) -> None:
        for server_id, sim_node in sorted(self.nodes.items()):
            if sim_node.alive:
                self.route(server_id, sim_node.node.tick(self.now_ms))
                self._drain_clients(server_id)
        if chaos:
            self._chaos()
        self._client_step()

    def _chaos(self) -> None:
        faults = self.faults
        for sim_node in self.nodes.values():
            if self.rng.random() < faults.crash_probability:
                if sim_node.alive:
                    self.trace.append(f"{self.now_ms}: crash {sim_node.server_id}")
                    sim_node.crash()
                else:
                    self.trace.append(f"{self.now_ms}: restart {sim_node.server_id}")
                    sim_node.restart()
        if self.rng.random() < faults.partition_probability:
            if self.partition:
                self.trace.append(f"{self.now_ms}: heal")
                self.partition = set()
            else:
                isolated = self.rng.choice(sorted(self.members))
                self.trace.append(f"{self.now_ms}: isolate {isolated}")
                self.partition = {frozenset((isolated, o)) for o in self.members if o != isolated}
                for other in self.members:
                    if other != isolated:
                        self.reset_link(isolated, other)

    def heal(self) -> None:
        self.partition = set()
        for sim_node in self.nodes.values():
            if not sim_node.alive:
                sim_node.restart()

    # -- clients ---------------------------------------------------------------------------------

    def add_clients(self, count: int) -> None:
        for _ in range(count):
            self.add_client()

    def add_client(self, scripted: bool = False) -> SimClient:
        """A client; a scripted one sends only what the test tells it to (``connect``,
        ``request``, ``disconnect``)."""
        client = SimClient(len(self.clients), scripted=scripted)
        self.clients.append(client)
        return client

    def leader(self) -> int | None:
        return next((sid for sid, n in sorted(self.nodes.items())
                     if n.alive and n.node.role == "leader"), None)

    def _client_step(self) -> None:
        for client in self.clients:
            if client.scripted:
                continue
            if client.node_id is None:
                self._connect_anywhere(client)
                continue
            if client.awaiting_connect or not client.session_id:
                continue
            self._check_not_stuck(client)
            if self.rng.random() < self.faults.reconnect_probability:
                self.trace.append(f"{self.now_ms}: client {client.client_id} moves its session")
                self.disconnect(client)
                self._connect_anywhere(client)
                continue
            wanted = [self._random_request(client) for _ in range(self.rng.randint(1, 3))
                      if self.rng.random() < 0.7]
            wanted = wanted[:max(0, 5 - len(client.outstanding))]
            if wanted:
                self.pipeline(client, wanted)
        # Requests sent before the socket closed were read by the server; now it closes.
        self.carry_out_lagging_closes()

    def _check_not_stuck(self, client: SimClient) -> None:
        """A request is answered, or its connection closed, long before the session could
        expire: a member that can no longer answer it stops serving and closes its connections
        within the sync limit. One left waiting past that is a reply that will never come."""
        if client.outstanding and self.now_ms - client.outstanding[0].sent_ms > STUCK_MS:
            head = client.outstanding[0]
            raise InvariantViolation(
                f"seed {self.seed}: client {client.client_id} (session {client.session_id:#x}) "
                f"on member {client.node_id}: xid {head.xid} (op {head.op}) sent at "
                f"{head.sent_ms} ms is neither answered nor its connection closed at "
                f"{self.now_ms} ms\n" + "\n".join(self.trace[-20:]))

    def _connect_anywhere(self, client: SimClient) -> None:
        candidates = [sid for sid, n in sorted(self.nodes.items()) if n.alive and n.node.serving]
        if candidates:
            self.connect(client, self.rng.choice(candidates))

    def connect(self, client: SimClient, server_id: int) -> None:
        """Open a connection to ``server_id`` and ask for the client's session (a new one if it
        has none)."""
        self._next_connection += 1
        client.node_id = server_id
        client.connection_id = self._next_connection
        client.outstanding.clear()
        client.awaiting_connect = True
        sim_node = self.nodes[server_id]
        zookeeper = sim_node.zookeeper
        zookeeper.connection_opened(client.connection_id, "10.0.0.1", self.now_ms)
        request = r.ConnectRequest(0, client.last_zxid, 5000, client.session_id,
                                   client.passwd or bytes(16), False)
        zookeeper.handle_connect(client.connection_id, request, self.now_ms)
        self.route(server_id, sim_node.node.process(self.now_ms))
        self._drain_clients(server_id)

    def disconnect(self, client: SimClient) -> None:
        """The client drops its connection (its socket closes; the server notices)."""
        if client.node_id is None:
            return
        sim_node = self.nodes[client.node_id]
        if sim_node.alive:
            sim_node.zookeeper.connection_closed(client.connection_id, self.now_ms)
        self._connection_lost(client)

    def _connection_lost(self, client: SimClient) -> None:
        client.node_id = None
        client.awaiting_connect = False
        client.lost += len(client.outstanding)
        client.outstanding.clear()

    def drop_clients_of(self, server_id: int) -> None:
        """A crashed member: its clients see their connections break."""
        for client in self.clients:
            if client.node_id == server_id:
                self._connection_lost(client)
        self._lagging_closes = [(s, c) for s, c in self._lagging_closes if s != server_id]

    def _random_request(self, client: SimClient) -> tuple[int, str]:
        roll = self.rng.random()
        own = self.rng.choice(client.created) if client.created else "/"
        if roll < 0.4:
            client.next_name += 1
            return OpCode.create, f"/c{client.client_id}-{client.next_name - 1}"
        if roll < 0.5 and client.created:
            return OpCode.setData, own
        if roll < 0.65:
            return OpCode.getData, own
        if roll < 0.75:
            return OpCode.exists, f"/c{client.client_id}-{self.rng.randint(1, 9)}"
        if roll < 0.88:
            return OpCode.sync, "/"
        return OpCode.ping, "/"

    def request(self, client: SimClient, op: int, path: str = "/") -> int:
        """Send one request on the client's connection; returns its xid."""
        return self.pipeline(client, [(op, path)])[0]

    def pipeline(self, client: SimClient, requests) -> list[int]:
        """Send several ``(op, path)`` requests at once: the member reads them in one turn (one
        socket read) before it passes anything on to the leader. Returns their xids."""
        assert client.node_id is not None and not client.awaiting_connect, client
        sim_node = self.nodes[client.node_id]
        zookeeper = sim_node.zookeeper
        xids = []
        for op, path in requests:
            op = int(op)
            if op == OpCode.ping:
                xid, body = int(Xid.PING), b""
            else:
                xid, body = client.next_xid, _request_body(op, path)
                client.next_xid += 1
            payload = r.RequestHeader.encode((xid, op)) + body
            client.outstanding.append(Outstanding(xid, op, path, self.now_ms))
            zookeeper.handle_request(client.connection_id, xid, op, payload, self.now_ms)
            xids.append(xid)
        self.route(client.node_id, sim_node.node.process(self.now_ms))
        self._drain_clients(client.node_id)
        return xids

    def _drain_clients(self, server_id: int) -> None:
        sim_node = self.nodes[server_id]
        zookeeper = sim_node.zookeeper
        outbox, zookeeper.outbox = zookeeper.outbox, []
        closed, zookeeper.to_close = zookeeper.to_close, []
        by_connection = {c.connection_id: c for c in self.clients if c.node_id == server_id}
        for connection_id, data in outbox:
            client = by_connection.get(connection_id)
            if client is None:
                continue
            offset = 0
            while offset < len(data):
                length = _LENGTH.unpack_from(data, offset)[0]
                frame = data[offset + 4:offset + 4 + length]
                offset += 4 + length
                self._client_frame(client, frame)
        lag = self.faults.close_lag_probability
        for connection_id in closed:
            if lag and self.rng.random() < lag:
                self._lagging_closes.append((server_id, connection_id))
            else:
                self._close(server_id, connection_id)

    def carry_out_lagging_closes(self) -> None:
        closes, self._lagging_closes = self._lagging_closes, []
        for server_id, connection_id in closes:
            self._close(server_id, connection_id)

    def _close(self, server_id: int, connection_id: int) -> None:
        sim_node = self.nodes[server_id]
        if not sim_node.alive:
            return
        sim_node.zookeeper.connection_closed(connection_id, self.now_ms)
        for client in self.clients:
            if client.node_id == server_id and client.connection_id == connection_id:
                self._connection_lost(client)

    def _client_frame(self, client: SimClient, frame: bytes) -> None:
        if client.awaiting_connect:
            client.awaiting_connect = False
            response = r.ConnectResponse.decode_from(frame, 0)[0]
            if response.timeout_ms <= 0:
                client.session_id, client.passwd = 0, b""
            else:
                client.session_id, client.passwd = response.session_id, response.passwd
            return
        header, offset = r.ReplyHeader.decode_from(frame, 0)
        if header.xid == Xid.NOTIFICATION:
            return
        where = (f"seed {self.seed}: client {client.client_id} (session {client.session_id:#x}) "
                 f"on member {client.node_id}, connection {client.connection_id}")
        if not client.outstanding:
            raise InvariantViolation(f"{where}: reply for xid {header.xid} with no request "
                                     f"outstanding (a duplicate or a stray reply)\n"
                                     + "\n".join(self.trace[-20:]))
        head = client.outstanding.popleft()
        if header.xid != head.xid:
            raise InvariantViolation(
                f"{where}: reply for xid {header.xid} while the oldest outstanding request is "
                f"xid {head.xid} (op {head.op}); replies must come in request order\n"
                + "\n".join(self.trace[-20:]))
        client.answered.append((client.connection_id, header.xid))
        if header.zxid > client.last_zxid:
            client.last_zxid = header.zxid
        if head.op == OpCode.create and header.err == 0:
            path = r.CreateResponse.decode_from(frame, offset)[0].path
            if path != head.path:
                raise InvariantViolation(f"{where}: the reply to create {head.path} (xid "
                                         f"{head.xid}) names {path}: another request's reply")
            self.acked[path] = header.zxid
            client.created.append(path)

    # -- final checks ----------------------------------------------------------------------------

    def converge(self, within_ms: int = 20_000) -> None:
        """Heal everything and wait until every node serves the same tree."""
        self.heal()
        self.clients = []
        deadline = self.now_ms + within_ms
        while self.now_ms < deadline:
            self.run_until(self.now_ms + 500)
            if self._converged():
                return
        states = {sid: (n.node.peer.state, n.node.role, hex(n.node.core.tree.last_zxid))
                  for sid, n in self.nodes.items()}
        raise InvariantViolation(f"seed {self.seed}: no convergence: {states}\n" + "\n".join(self.trace[-20:]))

    def _converged(self) -> bool:
        nodes = [n.node for n in self.nodes.values()]
        if not all(n.serving for n in nodes):
            return False
        zxids = {n.core.tree.last_zxid for n in nodes}
        return len(zxids) == 1

    def check_final_state(self) -> None:
        views = {sid: _tree_view(n.node.core.tree) for sid, n in self.nodes.items()}
        first_id, first = next(iter(views.items()))
        for sid, view in views.items():
            if view != first:
                diff = sorted(set(view.items()) ^ set(first.items()))[:5]
                raise InvariantViolation(f"seed {self.seed}: trees of {first_id} and {sid} differ: {diff}")
        for path, zxid in self.acked.items():
            if path not in first:
                raise InvariantViolation(
                    f"seed {self.seed}: acknowledged create {path} (zxid {zxid:#x}) lost\n"
                    + "\n".join(self.trace[-30:]))


def _request_body(op: int, path: str) -> bytes:
    if op == OpCode.create:
        return r.CreateRequest.encode(r.CreateRequest(path, b"x", OPEN, 0))
    if op == OpCode.setData:
        return r.SetDataRequest.encode(r.SetDataRequest(path, b"y", -1))
    if op == OpCode.getData:
        return r.GetDataRequest.encode(r.GetDataRequest(path, False))
    if op == OpCode.exists:
        return r.ExistsRequest.encode(r.ExistsRequest(path, False))
    if op == OpCode.sync:
        return r.SyncRequest.encode(r.SyncRequest(path))
    raise ValueError(f"the simulated client does not send opcode {op}")


def _tree_view(tree) -> dict:
    return {path: (node.data, node.czxid, node.mzxid, node.version, node.cversion, node.pzxid,
                   node.ephemeral_owner) for path, node in tree.nodes.items()}
