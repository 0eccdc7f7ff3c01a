"""An ensemble member: the standalone runtime plus the ZAB peer and its links.

The client side is the standalone server's (same sockets, same front end, same replica core);
what changes is the order stage. Txns the replica core prepares (as leader) or forwards (as
follower) go through the EnsembleNode; the node's appends are group-committed by
``RocksStorage.flush`` in a worker thread, and only then is the peer told (``log_durable``), which is what lets it acknowledge.
Clients are accepted only while the member serves (an established leader or a synced
follower); when it stops serving every client connection is closed, as ZooKeeper does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from zkpy.config import ConfigError, ServerConfig
from zkpy.replica.core import LEADER, READ_ONLY
from zkpy.ensemble.member import open_member
from zkpy.ensemble.node import EnsembleNode
from zkpy.frontends.zookeeper.connection import Connect
from zkpy.runtime import tls
from zkpy.sessions.tracker import JAVA_SESSION_SECRET
from zkpy.runtime.zkpeers import ElectionLinks, QuorumLinks
from zkpy.runtime.server import ClientHandler, Server, now_ms
from zkpy.storage.rocks_storage import RocksStorage
from zkpy.zab import messages as m
from zkpy.zab.membership import Membership, format_membership, parse_membership
from zkpy.zab.peer import PeerSettings

log = structlog.get_logger("zkpy.quorum")

# Session passwords must verify on every member, Java or zkpy, so they are ZooKeeper's own
# (derived from the session id and ZooKeeper's fixed constant).
ENSEMBLE_SESSION_SECRET = JAVA_SESSION_SECRET
TICK_INTERVAL_S = 0.05
PEER_DATA_MARGIN_BYTES = 1 << 20  # a txn's header and record around a request's data


def read_myid(data_dir: str) -> int:
    path = Path(data_dir) / "myid"
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        raise ConfigError(f"myid: {path} is missing (an ensemble member needs its id there)") from None
    except ValueError:
        raise ConfigError(f"myid: {path} does not hold an integer") from None


class QuorumServer(Server):
    def __init__(self, config: ServerConfig) -> None:
        my_id = read_myid(config.data_dir)
        members = {spec.server_id: spec for spec in config.servers}
        if my_id not in members:
            raise ConfigError(f"myid: {my_id} has no server.{my_id} line")
        spec = members[my_id]
        if not config.client_port_given and spec.client_port is not None:
            # As ZooKeeper: the client address may come from the member's own server line.
            config = config._replace(client_port=spec.client_port,
                                     client_port_address=spec.client_host or config.client_port_address)
        super().__init__(config, server_id=my_id, session_secret=ENSEMBLE_SESSION_SECRET)
        self.my_id = my_id
        self.own_spec = spec  # where we listen, whatever a reconfig says later
        self.members = members
        self.voters = frozenset(sid for sid, spec in members.items() if spec.role == "participant")
        self.observers = frozenset(members) - self.voters
        self.membership = Membership({s.server_id: s for s in config.servers}, 0)
        self.storage = RocksStorage(self.txn_log)
        self.node: EnsembleNode | None = None
        self.quorum_links: QuorumLinks | None = None
        self.election_links: ElectionLinks | None = None

    def restore(self) -> None:
        super().restore()
        time_ms = now_ms()
        self._adopt_committed_membership()
        self._publish_membership(time_ms)
        config = self.config
        settings = PeerSettings(self.my_id, self.voters, tick_ms=config.tick_ms,
                                init_limit=config.init_limit, sync_limit=config.sync_limit,
                                observers=self.observers)
        self.node = open_member(settings, self.replica, self.storage, time_ms,
                                read_only_when_not_serving=config.read_only_mode_enabled,
                                membership=self.membership,
                                on_membership=self._membership_changed)
        self.node.on_reset_link = self._reset_link
        peer = self.node.peer
        if self.my_id not in self.voters | self.observers:
            peer.activate(self.voters, self.observers)  # removed by a reconfig: stays out
        log.info("ensemble member restored", peer=self.my_id, accepted_epoch=peer.accepted_epoch,
                 current_epoch=peer.current_epoch, zxid=hex(self.replica.tree.last_zxid))

    def _adopt_committed_membership(self) -> None:
        """With reconfig enabled, a membership committed by reconfig (in the restored tree)
        overrides the server lines of zoo.cfg, as ZooKeeper's dynamic config file does."""
        if not self.config.reconfig_enabled:
            return
        data = self.replica.tree.nodes["/zookeeper/config"].data or b""
        committed = parse_membership(data.decode(errors="replace"))
        if committed is not None and committed.version > self.membership.version:
            self._set_membership(committed)

    def _publish_membership(self, time_ms: int) -> None:
        """/zookeeper/config shows the ensemble, as ZooKeeper's initConfigInZKDatabase does
        (a local change, not a txn: every member writes the same text at start-up)."""
        if self.membership.version:
            return  # the tree already holds the committed text
        node = self.replica.tree.nodes["/zookeeper/config"]
        node.data = format_membership(self.membership).encode()
        node.version = -1
        node.mtime = time_ms

    def _set_membership(self, membership: Membership) -> None:
        self.membership = membership
        self.members = membership.members
        self.voters = membership.voters
        self.observers = membership.observers

    def _membership_changed(self, membership: Membership) -> None:
        """A reconfig committed: talk to the new members, stop talking to removed ones."""
        self._set_membership(membership)
        if self.quorum_links is not None:
            everyone = {**self.members, self.my_id: self.own_spec}
            self.quorum_links.add_members({s: (m.host, m.quorum_port) for s, m in everyone.items()})
            self.election_links.add_members({s: (m.host, m.election_port) for s, m in everyone.items()})

    # -- links ---------------------------------------------------------------------------------

    async def _start_ensemble(self) -> None:
        """Listen on the election and quorum ports and speak ZooKeeper's peer protocol on them
        (zkpy.runtime.zkpeers), with Java members and zkpy members alike."""
        me = self.own_spec
        everyone = {**self.members, self.my_id: me}
        quorum_addresses = {sid: (s.host, s.quorum_port) for sid, s in everyone.items()}
        election_addresses = {sid: (s.host, s.election_port) for sid, s in everyone.items()}
        server_ssl = client_ssl = None
        if self.config.quorum_tls is not None:
            server_ssl = tls.server_context(self.config.quorum_tls)
            client_ssl = tls.client_context(self.config.quorum_tls)
        self.node.fill_snapshots = False  # a SNAP streams ZooKeeper's serialisation instead
        self.quorum_links = QuorumLinks(
            self.my_id, quorum_addresses, self._on_messages, self._on_lost,
            config_text=self._config_text, config_version=lambda: self.membership.version,
            session_timeout=self._session_timeout, revalidate=self._revalidate,
            snapshot_source=self._snapshot_source,
            max_data_bytes=self.config.max_buffer_bytes + PEER_DATA_MARGIN_BYTES,
            server_ssl=server_ssl, client_ssl=client_ssl)
        self.election_links = ElectionLinks(self.my_id, election_addresses, self._on_message,
                                            self._config_text, server_ssl=server_ssl,
                                            client_ssl=client_ssl)
        await self.quorum_links.start(me.host, me.quorum_port)
        await self.election_links.start(me.host, me.election_port)
        self._route(self.node.process(now_ms()))

    def _config_text(self) -> bytes:
        """The QuorumVerifier text notifications and NEWLEADER carry."""
        return format_membership(self.membership).encode()

    def _session_timeout(self, session_id: int) -> int | None:
        session = self.replica.sessions.sessions.get(session_id)
        return None if session is None else session.timeout_ms

    def _revalidate(self, session_id: int, timeout_ms: int) -> bool:
        """A learner's client reconnected with this session: live (and now touched) or not."""
        session = self.replica.sessions.sessions.get(session_id)
        if session is None or session.closing:
            return False
        self.replica.touch_sessions([session_id], now_ms())
        return True

    def _snapshot_source(self) -> tuple:
        sessions = [(s.session_id, s.timeout_ms) for s in self.replica.sessions.sessions.values()]
        return self.replica.tree, sessions

    def _stop_ensemble(self) -> None:
        for links in (self.quorum_links, self.election_links):
            if links is not None:
                links.stop()

    def _reset_link(self, peer_id: int, outgoing_only: bool = False) -> None:
        if self.quorum_links is not None:
            self.quorum_links.reset(peer_id, outgoing_only)

    def _route(self, outgoing: list) -> None:
        for to, message in outgoing:
            links = self.election_links if type(message) is m.Vote else self.quorum_links
            links.send(to, message)

    def _on_message(self, sender: int, message) -> None:
        self._route(self.node.step(sender, message, now_ms()))
        self._schedule_flush()

    def _on_messages(self, sender: int, messages: list) -> None:
        self._route(self.node.step_all(sender, messages, now_ms()))
        self._schedule_flush()

    def _on_lost(self, peer_id: int) -> None:
        self._route(self.node.link_lost(peer_id, now_ms()))
        self._schedule_flush()

    # -- the order stage -------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._route(self.node.process(now_ms()))
        if not self._sync_in_flight and self.storage.queued:
            self._sync_in_flight = True
            future = asyncio.get_running_loop().run_in_executor(None, self.storage.flush)
            future.add_done_callback(self._log_synced)
        self._send_outbox()
        self._apply_backpressure()

    def _log_synced(self, future: asyncio.Future) -> None:
        self._sync_in_flight = False
        error = future.exception()
        if error is not None:
            log.critical("transaction log write failed; shutting down", peer=self.my_id, error=repr(error))
            self.stop()
            return
        zxid, count, generation = future.result()
        if zxid >= 0 and generation == self.storage.generation:
            self._route(self.node.log_durable(zxid, now_ms()))
            self.txn_count += count
            self.txns_since_snapshot += count
            if self.txns_since_snapshot >= self.config.snap_count:
                self._take_snapshot()
        self._flush()

    def _snapshot_written(self, meta: dict) -> None:
        """Tell the peer how far back its log still reaches."""
        self.node.snapshots_retained([meta["zxid"] for meta in self.txn_log.snapshots()],
                                     self.config.snap_retain_count)

    # -- clients and status ----------------------------------------------------------------------

    def handle_events(self, handler: ClientHandler, events: list) -> None:
        # As ZooKeeper: a socket is accepted even while not serving, so four-letter words are
        # answered ('not currently serving requests'); a session handshake is refused.
        if not self.node.accepting_clients and any(type(event) is Connect for event in events):
            log.info("not serving yet; closing client connection", client=handler.peer_host,
                     peer=self.my_id)
            handler.abort()
            return
        super().handle_events(handler, events)

    def serving(self) -> bool:
        return self.node is not None and self.node.accepting_clients

    def read_only(self) -> bool:
        return self.node is not None and self.node.role == READ_ONLY

    def mode(self) -> str:
        if self.read_only():
            return "read-only"
        if self.node is None or not self.node.serving:
            return "looking"
        if self.node.role == LEADER:
            return "leader"
        return "observer" if self.node.peer.state == m.OBSERVING else "follower"

    def ensemble_rows(self) -> list[tuple[str, object]]:
        peer = self.node.peer
        phase = {m.LEADING: "leading", m.FOLLOWING: "following", m.OBSERVING: "observing",
                 m.LOOKING: "looking"}[peer.state]
        serving = "broadcast" if self.node.serving else ("discovery" if peer.state != m.LOOKING else "")
        rows = [("zk_peer_state", f"{phase} - {serving}" if serving else phase),
                ("zk_quorum_size", len(self.voters)),
                ("zk_digest_mismatches_count", self.node.digest_mismatches)]
        if self.mode() == "leader":
            synced = [l for l in peer.learners.values() if l.up_to_date]
            rows[1:1] = [
                ("zk_synced_followers", sum(1 for l in synced if l.server_id in self.voters)),
                ("zk_synced_non_voting_followers", 0),
                ("zk_synced_observers", sum(1 for l in synced if l.server_id not in self.voters)),
                ("zk_last_proposal_size", -1),
                ("zk_pending_syncs", sum(len(w) for w in peer.pending_syncs.values())),
                ("zk_leader_uptime", now_ms() - self.node.role_since_ms),
                ("zk_learners", len(peer.learners)),
            ]
        return rows

    def etcd_members(self) -> list:
        """etcd's member list: the ensemble's members, with the etcd URLs each published."""
        from zkpy.frontends.etcd.proto import rpc_pb2
        frontend = self.etcd_frontend
        members = []
        for server_id, spec in sorted(self.membership.members.items()):
            members.append(rpc_pb2.Member(
                ID=server_id, name=f"zkpy-{server_id}",
                peerURLs=[f"tcp://{spec.host}:{spec.quorum_port}"],
                clientURLs=frontend.member_urls(server_id), isLearner=spec.role == "observer"))
        return members

    def etcd_leader_id(self) -> int:
        if self.node is None or not self.node.serving:
            return 0
        peer = self.node.peer
        return self.my_id if peer.state == m.LEADING else (peer.leader_id or 0)

    async def _peer_ticker(self) -> None:
        reap_every_ms = self.config.container_check_interval_ms
        last_reap_ms = now_ms()
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            time_ms = now_ms()
            self._route(self.node.tick(time_ms))
            self.tick_frontends(time_ms)
            if time_ms - last_reap_ms >= reap_every_ms:
                last_reap_ms = time_ms
                self._route(self.node.reap_containers(time_ms))
            self._schedule_flush()

    def _periodic_work(self) -> list:
        # Session expiry and container reaping run in the node's tick, on the leader only.
        return [self._peer_ticker()]
