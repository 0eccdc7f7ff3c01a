"""ZooKeeper's peer connections: the election port (QuorumCnxManager) and the quorum port
(a learner's connection to its leader), carrying ZooKeeper 3.8's own wire formats, so Java
members and zkpy members form one ensemble.

Election port: one connection per pair of members, kept by the member with the larger id. A
member that connects to a larger one sends its handshake and hangs up, and the larger connects
back; a member that receives a connection from a smaller one closes it and connects back.
Either side then writes notifications on it. A notification waiting for a connection is kept,
the newest only (the peer resends its vote on a timer, as FastLeaderElection does).

Quorum port: a learner opens one connection to its leader, starting with FOLLOWERINFO or
OBSERVERINFO, and both directions of that learner's traffic go over it. ``zkpy.zab.zklink``
translates between its packets and the ZAB peer's messages. A broken connection is reported
to the peer (``on_lost``), as a broken socket tells ZooKeeper; what was queued on it is gone.
Writes are bounded: a peer that stops reading loses its connection.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import structlog

from jute import quorum as q
from jute.errors import JuteDecodeError
from zkpy.runtime import forked_snapshot
from zkpy.zab import messages as m
from zkpy.zab import zksnap
from zkpy.zab.zklink import LeaderLink, LearnerLink, SnapshotFollows, add_to_batch

log = structlog.get_logger("zkpy.peers")

CONNECT_TIMEOUT_S = 5.0
HANDSHAKE_TIMEOUT_S = 5.0
RECONNECT_INTERVAL_S = 0.5
READ_BYTES = 1 << 16
MAX_WRITE_BUFFER_BYTES = 256 << 20
SNAP_CHUNK_BYTES = 1 << 20

_STATE_CODES = {m.LOOKING: q.LOOKING, m.FOLLOWING: q.FOLLOWING, m.LEADING: q.LEADING,
                m.OBSERVING: q.OBSERVING}
_STATE_NAMES = {code: name for name, code in _STATE_CODES.items()}


def vote_to_notification(vote: m.Vote, config: bytes) -> q.Notification:
    return q.Notification(_STATE_CODES[vote.state], vote.leader, vote.zxid, vote.round,
                          vote.epoch, q.NOTIFICATION_VERSION, config)


def notification_to_vote(note: q.Notification) -> m.Vote:
    return m.Vote(note.election_epoch, note.leader, note.zxid, note.peer_epoch,
                  _STATE_NAMES[note.state])


def _too_backed_up(writer: asyncio.StreamWriter, queued_bytes: int = 0) -> bool:
    transport = writer.transport
    return (transport is None
            or transport.get_write_buffer_size() + queued_bytes > MAX_WRITE_BUFFER_BYTES)


class _PeerPort:
    """A listening peer port and the addresses of the members it talks to."""

    def __init__(self, my_id: int, addresses: dict[int, tuple[str, int]], server_ssl,
                 client_ssl) -> None:
        self.my_id = my_id
        self.addresses = dict(addresses)
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._accept, host, port, reuse_address=True,
                                                 ssl=self.server_ssl)

    def add_members(self, addresses: dict[int, tuple[str, int]]) -> None:
        self.addresses.update(addresses)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class ElectionLinks(_PeerPort):
    """The election port: notifications to and from every other member."""

    def __init__(self, my_id: int, addresses: dict[int, tuple[str, int]],
                 on_vote: Callable[[int, m.Vote], None], config_text: Callable[[], bytes],
                 server_ssl=None, client_ssl=None) -> None:
        super().__init__(my_id, addresses, server_ssl, client_ssl)
        host, port = addresses[my_id]
        self.my_address = f"{host}:{port}"
        self.on_vote = on_vote
        self.config_text = config_text
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.waiting: dict[int, m.Vote] = {}  # the newest vote for a peer not connected
        self.connecting: dict[int, asyncio.Task] = {}
        self.last_attempt_s: dict[int, float] = {}
        self.tasks: set[asyncio.Task] = set()

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks) + list(self.connecting.values()):
            task.cancel()
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    def send(self, sid: int, vote: m.Vote) -> None:
        writer = self.writers.get(sid)
        if writer is not None and not writer.is_closing():
            if _too_backed_up(writer):
                log.warning("election connection not draining; closing it", peer=sid)
                writer.close()
                return
            writer.write(q.encode_notification(vote_to_notification(vote, self.config_text())))
            return
        self.waiting[sid] = vote
        self._connect_soon(sid)

    def _connect_soon(self, sid: int) -> None:
        if sid in self.connecting or sid not in self.addresses or sid == self.my_id:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self.last_attempt_s.get(sid, -1e9) < RECONNECT_INTERVAL_S:
            return
        self.last_attempt_s[sid] = loop.time()
        task = asyncio.ensure_future(self._connect(sid))
        self.connecting[sid] = task
        task.add_done_callback(lambda _: self.connecting.pop(sid, None))

    async def _connect(self, sid: int) -> None:
        host, port = self.addresses[sid]
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self.client_ssl,
                                        server_hostname=host if self.client_ssl else None),
                timeout=CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as error:
            log.debug("cannot reach peer's election port", peer=sid, error=str(error))
            return
        writer.write(q.encode_handshake(self.my_id, self.my_address))
        if sid > self.my_id:
            # ZooKeeper's rule: the larger id keeps the connection; it connects back to us.
            try:
                await writer.drain()
            except (OSError, ConnectionError):
                pass
            writer.close()
            return
        self._adopt(sid, reader, writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            buffer = b""
            parsed = None
            while parsed is None:
                chunk = await asyncio.wait_for(reader.read(4096), timeout=HANDSHAKE_TIMEOUT_S)
                if not chunk:
                    writer.close()
                    return
                buffer += chunk
                parsed = q.parse_handshake(buffer)
                if parsed is None and len(buffer) > q.MAX_HANDSHAKE_ADDRESS_BYTES + 64:
                    raise JuteDecodeError("election handshake too long")
        except (asyncio.TimeoutError, OSError, ConnectionError, JuteDecodeError) as error:
            log.warning("bad election handshake; closing", error=str(error) or type(error).__name__)
            writer.close()
            return
        (sid, address), used = parsed
        if sid == self.my_id:
            log.warning("election connection claiming our own id; closing", peer=sid)
            writer.close()
            return
        if sid not in self.addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                log.warning("election connection from an unknown server id; closing", peer=sid)
                writer.close()
                return
            log.info("election connection from a server outside the configuration", peer=sid,
                     address=address)
            self.addresses[sid] = (host.strip("[]"), int(port))
        if sid < self.my_id:
            writer.close()
            self.last_attempt_s.pop(sid, None)
            self._connect_soon(sid)
            return
        self._adopt(sid, reader, writer, buffer[used:])

    def _adopt(self, sid: int, reader, writer, rest: bytes = b"") -> None:
        old = self.writers.get(sid)
        if old is not None and old is not writer:
            old.close()
        self.writers[sid] = writer
        log.info("election connection up", peer=sid)
        task = asyncio.ensure_future(self._read(sid, reader, writer, rest))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        vote = self.waiting.pop(sid, None)
        if vote is not None:
            self.send(sid, vote)

    async def _read(self, sid: int, reader, writer, rest: bytes) -> None:
        buffer = rest
        try:
            while True:
                while len(buffer) >= 4:
                    length = int.from_bytes(buffer[:4], "big", signed=True)
                    if length <= 0 or length > q.MAX_ELECTION_MESSAGE_BYTES:
                        raise JuteDecodeError(f"election message length {length} out of range")
                    if len(buffer) < 4 + length:
                        break
                    note = q.decode_notification(buffer[4:4 + length])
                    buffer = buffer[4 + length:]
                    self.on_vote(sid, notification_to_vote(note))
                chunk = await reader.read(READ_BYTES)
                if not chunk:
                    return
                buffer += chunk
        except asyncio.CancelledError:
            raise
        except JuteDecodeError as error:
            log.warning("bad election message; closing", peer=sid, error=str(error))
        except Exception:  # noqa: BLE001
            log.exception("election connection failed; closing", peer=sid)
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()
            if self.writers.get(sid) is writer:
                del self.writers[sid]
                log.info("election connection down", peer=sid)


class _Connection:
    """One quorum-port connection: a learner's to its leader (ours or a learner's to us).

    Bytes are written in the order ``write`` is called. Until the connection is up, and while
    a snapshot streams to the learner (``held``), they wait in ``pending``, bounded as the
    socket's buffer is: the packets a leader queues behind a SNAP (NEWLEADER, then every
    proposal and commit after the snapshot's zxid) go out once the snapshot's last byte has.
    Otherwise they are corked until the end of the event-loop turn and go out in one write:
    a turn that handles a read of many acks answers with many commits, one syscall for all."""

    __slots__ = ("peer_id", "link", "reader", "writer", "task", "pending", "pending_bytes",
                 "held", "snapshot_task", "decoder", "incoming", "corked", "corked_bytes")

    def __init__(self, peer_id, link, incoming: bool, max_data_bytes: int) -> None:
        self.peer_id = peer_id
        self.link = link
        self.incoming = incoming
        self.reader = None
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None
        self.pending: list[bytes] = []  # written once the connection is up and not held
        self.pending_bytes = 0
        self.held = False
        self.snapshot_task: asyncio.Task | None = None
        self.decoder = q.PacketDecoder(max_data_bytes)
        self.corked: list[bytes] = []
        self.corked_bytes = 0

    def write(self, data: bytes) -> bool:
        if self.writer is None or self.held:
            if self.pending_bytes + len(data) > MAX_WRITE_BUFFER_BYTES:
                return False
            self.pending.append(data)
            self.pending_bytes += len(data)
            return True
        writer = self.writer
        if writer.is_closing() or (self.corked_bytes + len(data) > MAX_WRITE_BUFFER_BYTES
                                   or _too_backed_up(writer, self.corked_bytes)):
            return False
        if not self.corked:
            asyncio.get_running_loop().call_soon(self.uncork)
        self.corked.append(data)
        self.corked_bytes += len(data)
        return True

    def uncork(self) -> None:
        """Write what this turn corked."""
        if not self.corked:
            return
        data = b"".join(self.corked)
        self.corked.clear()
        self.corked_bytes = 0
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    def release(self) -> bool:
        """Write what waited (the connection is up, nothing streams any more)."""
        self.held = False
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        return not data or self.write(data)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.snapshot_task is not None:
            self.snapshot_task.cancel()
        if self.writer is not None:
            self.writer.close()


class QuorumLinks(_PeerPort):
    """The quorum port: learners' connections to us, and ours to our leader."""

    def __init__(self, my_id: int, addresses: dict[int, tuple[str, int]],
                 on_messages: Callable[[int, list], None], on_lost: Callable[[int], None],
                 config_text: Callable[[], bytes], config_version: Callable[[], int],
                 session_timeout: Callable[[int], int | None],
                 revalidate: Callable[[int, int], bool], snapshot_source: Callable[[], tuple],
                 max_data_bytes: int, server_ssl=None, client_ssl=None) -> None:
        super().__init__(my_id, addresses, server_ssl, client_ssl)
        self.on_messages = on_messages
        self.on_lost = on_lost
        self.config_text = config_text
        self.config_version = config_version
        self.session_timeout = session_timeout
        self.revalidate = revalidate
        self.snapshot_source = snapshot_source
        self.max_data_bytes = max_data_bytes
        self.learners: dict[int, _Connection] = {}  # learners connected to us, by id
        self.leader: _Connection | None = None  # our connection to the leader we follow
        self.unnamed: set[_Connection] = set()
        self.last_follow_s = -1e9

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in [*self.learners.values(), *self.unnamed, self.leader]:
            if connection is not None:
                connection.close()
        self.learners.clear()
        self.leader = None

    def reset(self, peer_id: int, outgoing_only: bool = False) -> None:
        """Drop the connection with ``peer_id`` (the peer gave up on it). A learner's rejoin
        (``outgoing_only``) needs nothing: it came on a fresh connection that replaced the old."""
        if outgoing_only:
            return
        connection = self.learners.pop(peer_id, None)
        if connection is not None:
            connection.close()
        if self.leader is not None and self.leader.peer_id == peer_id:
            self.leader.close()
            self.leader = None
        log.info("peer connection reset", peer=peer_id)

    # -- sending ---------------------------------------------------------------------------------

    def send(self, to: int, message) -> None:
        connection = self.learners.get(to)
        if connection is not None:
            self._write_to_learner(connection, message)
            return
        if type(message) is m.FollowerInfo:
            self._follow(to, message)
            return
        connection = self.leader
        if connection is None or connection.peer_id != to:
            log.debug("no connection for a quorum message; dropped", peer=to,
                      message=type(message).__name__)
            return
        try:
            packets = connection.link.outgoing(message)
        except OverflowError as error:
            self._fail(connection, str(error))
            return
        if not connection.write(b"".join(map(q.encode_packet, packets))):
            self._fail(connection, "the leader stopped reading")

    def _write_to_learner(self, connection: _Connection, message) -> None:
        parts = []
        for item in connection.link.outgoing(message):
            if type(item) is SnapshotFollows:
                if not connection.write(b"".join(parts)):
                    self._fail(connection, "the learner stopped reading")
                    return
                parts = []
                self._send_snapshot(connection)
            else:
                parts.append(q.encode_packet(item))
        if parts and not connection.write(b"".join(parts)):
            self._fail(connection, "the learner stopped reading")

    def _send_snapshot(self, connection: _Connection) -> None:
        """The tree and sessions as they stand now, after the SNAP packet just written. A
        forked child encodes them (its copy cannot change under it) into a pipe, which
        ``_pump_snapshot`` copies to the learner as fast as it reads; everything written to
        the connection meanwhile waits behind the snapshot."""
        tree, sessions = self.snapshot_source()
        started = None
        if forked_snapshot.available():
            try:
                started = forked_snapshot.start_stream(
                    lambda: zksnap.snap_chunks(tree, sessions, SNAP_CHUNK_BYTES))
            except OSError as error:  # no memory or process left to fork
                log.warning("cannot fork to stream a snapshot; encoding it here",
                            peer=connection.peer_id, error=repr(error))
        if started is None:
            if not connection.write(b"".join(zksnap.snap_chunks(tree, sessions, SNAP_CHUNK_BYTES))):
                self._fail(connection, "the learner stopped reading")
            return
        pid, read_fd = started
        connection.uncork()  # the SNAP packet goes before the tree
        connection.held = True
        log.info("streaming snapshot to learner", peer=connection.peer_id, child=pid,
                 nodes=len(tree.nodes), sessions=len(sessions))
        connection.snapshot_task = asyncio.ensure_future(
            self._pump_snapshot(connection, pid, read_fd))

    async def _pump_snapshot(self, connection: _Connection, pid: int, read_fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=SNAP_CHUNK_BYTES)
        pipe = open(read_fd, "rb", buffering=0)
        pipe_transport = None
        reaped = False
        sent_bytes = 0
        try:
            pipe_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe)
            while chunk := await reader.read(SNAP_CHUNK_BYTES):
                connection.writer.write(chunk)
                sent_bytes += len(chunk)
                await connection.writer.drain()
            status = await asyncio.to_thread(forked_snapshot.reap, pid)
            reaped = True
            if status != 0:
                raise forked_snapshot.SnapshotChildFailed(
                    f"snapshot child {pid} failed (wait status {status})")
            log.info("snapshot sent to learner", peer=connection.peer_id, bytes=sent_bytes)
            connection.snapshot_task = None
            if not connection.release():
                self._fail(connection, "the learner stopped reading")
        except asyncio.CancelledError:
            raise
        except (OSError, ConnectionError, forked_snapshot.SnapshotChildFailed) as error:
            log.warning("snapshot to learner failed; closing", peer=connection.peer_id,
                        sent_bytes=sent_bytes, error=str(error) or type(error).__name__)
            connection.snapshot_task = None  # closing must not cancel this task mid-cleanup
            connection.close()
        finally:
            if pipe_transport is not None:
                pipe_transport.close()
            else:
                pipe.close()
            if not reaped:
                forked_snapshot.kill(pid)
                await asyncio.shield(asyncio.to_thread(forked_snapshot.reap, pid))

    def _fail(self, connection: _Connection, why: str) -> None:
        log.warning("closing quorum connection", peer=connection.peer_id, reason=why)
        connection.close()

    # -- following -------------------------------------------------------------------------------

    def _follow(self, leader_id: int, info: m.FollowerInfo) -> None:
        if self.leader is not None:
            old, self.leader = self.leader, None
            old.close()
        if leader_id not in self.addresses:
            log.warning("no quorum address for the leader", peer=leader_id)
            return
        link = LearnerLink(self.my_id, leader_id, self.config_version(), self.session_timeout)
        connection = _Connection(leader_id, link, False, self.max_data_bytes)
        connection.write(b"".join(map(q.encode_packet, link.outgoing(info))))
        self.leader = connection
        # A learner that lost its leader at once (a leader that refused it, or went away) waits
        # a moment before it tries again, as ZooKeeper's learner does, instead of spinning.
        now_s = asyncio.get_running_loop().time()
        delay_s = max(0.0, self.last_follow_s + RECONNECT_INTERVAL_S - now_s)
        self.last_follow_s = now_s + delay_s
        connection.task = asyncio.ensure_future(self._run_learner(connection, delay_s))

    async def _run_learner(self, connection: _Connection, delay_s: float) -> None:
        host, port = self.addresses[connection.peer_id]
        try:
            if delay_s:
                await asyncio.sleep(delay_s)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self.client_ssl,
                                        server_hostname=host if self.client_ssl else None),
                timeout=CONNECT_TIMEOUT_S)
            connection.writer = writer
            writer.write(b"".join(connection.pending))
            connection.pending.clear()
            log.info("connected to leader", peer=connection.peer_id)
            await self._read_packets(connection, reader)
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.TimeoutError, ConnectionError) as error:
            log.info("lost connection to leader", peer=connection.peer_id,
                     error=str(error) or type(error).__name__)
        except JuteDecodeError as error:
            log.warning("bad packet from leader; closing", peer=connection.peer_id, error=str(error))
        except Exception:  # noqa: BLE001 - the member must survive its link, and say why
            log.exception("leader connection failed; closing", peer=connection.peer_id)
        finally:
            if connection.writer is not None:
                connection.writer.close()
            if self.leader is connection:
                self.leader = None
                self.on_lost(connection.peer_id)

    # -- leading ---------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = LeaderLink(self.config_text, self.revalidate, self.my_id)
        connection = _Connection(None, link, True, self.max_data_bytes)
        connection.reader, connection.writer = reader, writer
        connection.task = asyncio.current_task()
        self.unnamed.add(connection)
        try:
            await self._read_packets(connection, reader)
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.TimeoutError, ConnectionError):
            pass
        except JuteDecodeError as error:
            log.warning("bad packet from learner; closing", peer=connection.peer_id, error=str(error))
        except Exception:  # noqa: BLE001 - the member must survive its link, and say why
            log.exception("learner connection failed; closing", peer=connection.peer_id)
        finally:
            writer.close()
            self.unnamed.discard(connection)
            sid = connection.peer_id
            if sid is not None and self.learners.get(sid) is connection:
                del self.learners[sid]
                log.info("learner connection closed", peer=sid)
                self.on_lost(sid)

    def _named(self, connection: _Connection, packet: q.Packet) -> list:
        sid, messages = connection.link.first(packet)
        if sid == self.my_id:
            raise JuteDecodeError("a learner claiming our own server id")
        connection.peer_id = sid
        self.unnamed.discard(connection)
        old = self.learners.get(sid)
        self.learners[sid] = connection
        if old is not None:
            old.close()
        log.info("learner connected", peer=sid, observer=connection.link.observer)
        return messages

    # -- reading ---------------------------------------------------------------------------------

    async def _read_packets(self, connection: _Connection, reader) -> None:
        decoder = connection.decoder
        snapshot = None
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                return
            while data:
                if snapshot is not None:
                    used = snapshot.feed(data)
                    data = data[used:]
                    if not snapshot.done:
                        break
                    tree, sessions = snapshot.result()
                    snapshot = None
                    log.info("snapshot received from leader", peer=connection.peer_id,
                             nodes=len(tree.nodes))
                    self._deliver(connection, connection.link.snapshot_received(tree, sessions))
                    continue
                # Every packet of this read is handled before the peer is told, so that it
                # carries out many acks or proposals at once.
                batch: list = []
                for packet in decoder.feed(data):
                    self._handle(connection, packet, batch)
                if batch:
                    self._deliver(connection, batch)
                data = b""
                if decoder.stopped:  # a SNAP: the tree follows in the stream
                    snapshot = zksnap.SnapReceiver(connection.link.snapshot_zxid,
                                                   max_length=self.max_data_bytes)
                    data = decoder.take_rest()

    def _handle(self, connection: _Connection, packet: q.Packet, batch: list) -> None:
        """Add the packet's messages for the peer to ``batch``. A packet answered at once
        (a PING, UPTODATE's ack) is answered after the peer has heard of the packets before
        it, in the order a packet at a time would give."""
        if connection.incoming and connection.peer_id is None:
            add_to_batch(batch, self._named(connection, packet))
            return
        messages, replies = connection.link.incoming(packet)
        if replies:
            if batch:
                self._deliver(connection, batch)
                batch.clear()
            connection.write(b"".join(map(q.encode_packet, replies)))
        add_to_batch(batch, messages)

    def _deliver(self, connection: _Connection, messages: list) -> None:
        current = (self.learners.get(connection.peer_id) is connection if connection.incoming
                   else self.leader is connection)
        if not current:
            return  # a replaced connection: what it still brings is stale
        self.on_messages(connection.peer_id, list(messages))
