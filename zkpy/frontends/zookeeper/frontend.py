"""The ZooKeeper client protocol as a front end of the replica core, with no I/O.

It owns what is ZooKeeper's own: connections, the session handshake (create, reconnect with
password, read-only sessions), auth and SASL, request decoding into commands, per-session
request order, the reads, the watches and their notifications, and reply framing. Writes go to
the replica core (``zkpy.replica.core``) as commands; their results come back on the core's
change feed (``applied``), in zxid order, and complete the session's oldest write.

Duties of the caller (the runtime), in this order for every loop turn:
1. feed events in (``connection_opened``, ``handle_connect``, ``handle_request``,
   ``connection_closed``);
2. let the replica core log and apply what was submitted (``ReplicaCore.take_log_batch``,
   ``ReplicaCore.log_durable``);
3. send ``outbox`` bytes and close ``to_close`` connections, then clear both.

Ordering duties: a session's replies leave in its request order (a read waits behind the
session's outstanding writes); watch notifications caused by a txn are queued before that
txn's reply.

A reply goes to the connection its request came on, never to the session's current one: a
session that moved to another connection (on this member) must not get the old connection's
replies there, where the client never sent those xids. A connection the front end has decided
to close (``to_close``) is dead to it at once: nothing more is read from it or sent to it,
though the runtime closes the socket only after this turn. The requests it drops (a forwarded
write that can no longer complete, the reads queued behind it) are then never followed by a
later reply on that connection: the client sees a lost connection, never a gap in its replies.
"""

from __future__ import annotations

from collections import deque

import structlog

from jute import Err, KeeperState, OpCode, Perms, Xid
from jute import records as r
from jute.errors import JuteDecodeError

from zkpy.frontends.zookeeper.clients import Connection, Stats
from zkpy.frontends.zookeeper.reads import READ_HANDLERS
from zkpy.frontends.zookeeper.replies import connect_response, reply_frame, write_body
from zkpy.replica.commands import decode_client_body
from zkpy.replica.core import FOLLOWER, READ_ONLY, CoreSettings, ReplicaCore
from zkpy.replica.prep import WRITE_OPS
from zkpy.replica.request import ZOOKEEPER, KeeperError, Request
from zkpy.sessions.tracker import session_password
from zkpy.tree import acl as acls
from zkpy.tree.datatree import TxnResult
from zkpy.tree.watches import WatchManager

log = structlog.get_logger("zkpy.zookeeper")

_SYNC_CONNECTED = int(KeeperState.SyncConnected)
_CLOSE_SESSION = int(OpCode.closeSession)
_SYNC = int(OpCode.sync)
_NOT_SYNCED = 1 << 62
_READ = int(Perms.READ)
_DELETE_CONTAINER = int(OpCode.deleteContainer)
_AUTH = int(OpCode.auth)
_SASL = int(OpCode.sasl)
_OP_CHECK = int(OpCode.check)
_OP_CREATE_SESSION = int(OpCode.createSession)
_OP_RECONFIG = int(OpCode.reconfig)


class ZooKeeperFrontEnd:
    """The ZooKeeper clients of one server over its replica core (see the module doc)."""

    tag = ZOOKEEPER

    def __init__(self, replica: ReplicaCore, sasl=None) -> None:
        self.replica = replica
        self.settings: CoreSettings = replica.settings
        self.acl = replica.settings.acl_checker
        # The replica's session tracker: one object for the member's life (a reload refills it).
        self.sessions = replica.sessions
        self.watches = WatchManager()
        self.connections: dict[int, Connection] = {}
        self.session_connection: dict[int, int] = {}
        self.pending: dict[int, deque[Request]] = {}
        self._waiting_syncs: set[int] = set()
        self.outbox: list[tuple[int, bytes]] = []
        self.to_close: list[int] = []
        self.stats = Stats()
        # zkpy.auth.digest_md5.SaslAuthenticator when a JAAS Server section is configured.
        self.sasl = sasl
        replica.attach(self)

    # -- connections --------------------------------------------------------------------------

    def connection_opened(self, connection_id: int, client_ip: str, now_ms: int) -> None:
        self.connections[connection_id] = Connection(connection_id, client_ip, now_ms)

    def add_auth(self, connection_id: int, ids) -> None:
        """Ids the runtime proved for a connection as it opened (its TLS client certificate's
        x509 id)."""
        conn = self.connections[connection_id]
        conn.auth_info = conn.auth_info + tuple(i for i in ids if i not in conn.auth_info)

    def connection_closed(self, connection_id: int, now_ms: int) -> None:
        """The socket is gone; the session lives on until it expires or another connection
        takes it over. Watches belong to the connection, as in ZooKeeper."""
        conn = self.connections.pop(connection_id, None)
        if conn is None or not conn.session_id:
            return
        if self.session_connection.get(conn.session_id) == connection_id:
            del self.session_connection[conn.session_id]
            self.watches.remove_session(conn.session_id)

    def _send(self, connection_id: int, data: bytes) -> None:
        conn = self._open(connection_id)
        if conn is None:
            # Gone, or being closed: whatever it still waited for is lost with it, so a later
            # reply must not follow (the client would see a gap in its replies).
            return
        self._deliver(conn, data)

    def _deliver(self, conn: Connection, data: bytes) -> None:
        """Queue ``data`` for an open connection (the caller has checked it with _open)."""
        self.outbox.append((conn.connection_id, data))
        self.stats.packets_sent += 1
        conn.packets_sent += 1

    def _open(self, connection_id: int) -> Connection | None:
        """The connection, unless it is gone or the core has decided to close it."""
        conn = self.connections.get(connection_id)
        if conn is None or conn.closing:
            return None
        return conn

    def _answered(self, conn: Connection, request: Request, zxid: int, now_ms: int) -> None:
        """Per-connection figures of the last answered request (for cons)."""
        if request.xid >= 0:  # pings and other special xids are not the client's operations
            conn.last_cxid = request.xid
        conn.last_op = request.type
        conn.last_zxid = zxid
        conn.last_response_ms = now_ms
        conn.last_latency_ms = max(0, now_ms - request.received_ms)
        conn.latency.record_latency(conn.last_latency_ms)

    def _close(self, connection_id: int) -> None:
        conn = self.connections.get(connection_id)
        if conn is not None and not conn.closing:
            conn.closing = True
            self.to_close.append(connection_id)

    # -- handshake ----------------------------------------------------------------------------

    def handle_connect(self, connection_id: int, request: r.ConnectRequest, now_ms: int) -> None:
        conn = self.connections[connection_id]
        self.stats.packets_received += 1
        conn.packets_received += 1
        last_zxid = self.replica.tree.last_zxid
        if request.last_zxid_seen > last_zxid:
            log.warning("refusing session: client has seen a newer zxid",
                        connection=connection_id, client=conn.client_ip,
                        client_zxid=hex(request.last_zxid_seen), our_zxid=hex(last_zxid))
            self._close(connection_id)
            return
        timeout_ms = min(max(request.timeout_ms, self.settings.min_session_timeout_ms),
                         self.settings.max_session_timeout_ms)
        if self.replica.role == READ_ONLY:
            self._connect_read_only(conn, request, timeout_ms, now_ms)
        elif request.session_id == 0:
            self._create_session(conn, timeout_ms, now_ms)
        else:
            self._reopen_session(conn, request, now_ms)

    def _create_session(self, conn: Connection, timeout_ms: int, now_ms: int) -> None:
        session_id = self.sessions.next_session_id()
        self.sessions.add(session_id, timeout_ms, now_ms)
        conn.session_id = session_id
        self.session_connection[session_id] = conn.connection_id
        request = Request(session_id, 0, OpCode.createSession, timeout_ms, conn.auth_info,
                          conn.connection_id)
        log.info("creating session", session=hex(session_id & 0xFFFFFFFFFFFFFFFF),
                 client=conn.client_ip, timeout_ms=timeout_ms)
        self._submit_write(request, now_ms)

    def _reopen_session(self, conn: Connection, request: r.ConnectRequest, now_ms: int) -> None:
        session_id = request.session_id
        session = self.sessions.get(session_id)
        expected = session_password(session_id, self.settings.session_secret)
        # ZooKeeper drops the session's current connection before it checks the password.
        self._detach_previous(session_id, conn.connection_id)
        if session is None or session.closing or request.passwd != expected:
            log.info("session expired or invalid on reconnect",
                     session=hex(session_id & 0xFFFFFFFFFFFFFFFF), client=conn.client_ip)
            self._send(conn.connection_id, connect_response(0, 0, bytes(16)))
            self._close(conn.connection_id)
            return
        conn.session_id = session_id
        self.session_connection[session_id] = conn.connection_id
        self.sessions.touch(session_id, now_ms)
        self.replica.revalidate(session_id, session.timeout_ms)
        log.info("session reconnected", session=hex(session_id & 0xFFFFFFFFFFFFFFFF),
                 client=conn.client_ip)
        self._send(conn.connection_id,
                   connect_response(session_id, session.timeout_ms, expected))

    def _connect_read_only(self, conn: Connection, request: r.ConnectRequest, timeout_ms: int,
                           now_ms: int) -> None:
        """Without a quorum only clients that asked for read-only sessions are served; their
        sessions are local to this member (no txn), as ZooKeeper's ReadOnlyZooKeeperServer."""
        if not request.read_only:
            log.info("refusing a read-write client while read-only", client=conn.client_ip)
            self._close(conn.connection_id)
            return
        session_id = request.session_id
        session = self.sessions.get(session_id) if session_id else None
        expected = session_password(session_id, self.settings.session_secret)
        if session is None or request.passwd != expected:
            session_id = self.sessions.next_session_id()
            session = self.sessions.add(session_id, timeout_ms, now_ms)
            session.read_only = True
        self._detach_previous(session_id, conn.connection_id)
        conn.session_id = session_id
        self.session_connection[session_id] = conn.connection_id
        self.sessions.touch(session_id, now_ms)
        passwd = session_password(session_id, self.settings.session_secret)
        self._send(conn.connection_id, connect_response(session_id, session.timeout_ms, passwd, True))

    def _detach_previous(self, session_id: int, connection_id: int) -> None:
        previous = self.session_connection.get(session_id)
        if previous is None or previous == connection_id:
            return
        del self.session_connection[session_id]
        self.watches.remove_session(session_id)
        self._close(previous)
        old = self.connections.get(previous)
        if old is not None:
            old.session_id = 0

    # -- requests -----------------------------------------------------------------------------

    def handle_auth(self, connection_id: int, packet: r.AuthPacket, xid: int = Xid.AUTH) -> None:
        conn = self.connections[connection_id]
        self.stats.packets_received += 1
        if packet.scheme != "digest" or packet.auth is None:
            log.warning("authentication failed: unsupported scheme", connection=connection_id,
                        session=hex(conn.session_id & 0xFFFFFFFFFFFFFFFF), scheme=packet.scheme)
            self._send(connection_id, reply_frame(xid, 0, Err.AUTHFAILED))
            self._close(connection_id)
            return
        credentials = packet.auth.decode("utf-8", errors="replace")
        digest = acls.digest_of(credentials)
        ids = [r.Id("digest", digest)]
        if self.settings.super_digest and digest == self.settings.super_digest:
            ids.append(r.Id("super", ""))
        conn.auth_info = conn.auth_info + tuple(i for i in ids if i not in conn.auth_info)
        self._send(connection_id, reply_frame(xid, 0, 0))

    def handle_request(self, connection_id: int, xid: int, op_type: int, payload: bytes,
                       now_ms: int) -> None:
        """One framed request (header already split off) from an established connection."""
        conn = self.connections[connection_id]
        if conn.closing:
            # Read after the close was decided, before the runtime closed the socket. Its
            # earlier requests may have been dropped (a role change empties the queues), so
            # answering this one would answer it out of order; ZooKeeper reads no further.
            return
        self.stats.packets_received += 1
        conn.packets_received += 1
        session_id = conn.session_id
        if not self.sessions.touch(session_id, now_ms):
            session = self.sessions.get(session_id)
            if session is not None and session.closing:
                # A closeSession (the client's or an expiry's) is on its way through the log;
                # ZooKeeper ignores later requests, answers the close and then drops the
                # connection, so closing now would lose the client's closeSession reply.
                return
            log.info("request on an unknown session; closing connection",
                     session=hex(session_id & 0xFFFFFFFFFFFFFFFF), client=conn.client_ip)
            self._close(connection_id)
            return
        replica = self.replica
        role = replica.role
        if role == FOLLOWER:
            replica.touched.add(session_id)
        if op_type == _AUTH:
            try:
                packet = r.AuthPacket.decode_from(payload, 8)[0]
            except JuteDecodeError:
                log.warning("malformed auth packet; closing connection",
                            session=hex(session_id & 0xFFFFFFFFFFFFFFFF))
                self._close(connection_id)
                return
            self.stats.packets_received -= 1  # handle_auth counts it
            self.handle_auth(connection_id, packet, xid)
            return
        if op_type == _SASL:
            self._sasl(conn, xid, payload)
            return
        if op_type == _DELETE_CONTAINER:
            # Only the server's own reaper deletes containers; ZooKeeper refuses a client's
            # deleteContainer, so it cannot be used to get around the delete ACLs.
            self._reply_now(conn, xid, Err.BADARGUMENTS)
            return
        try:
            body = decode_client_body(op_type, payload, 8)
        except KeyError:
            # ZooKeeper answers Unimplemented at once (zxid -1), ahead of any reply still
            # queued for the session (the close drops those), then drops the connection.
            log.warning("unknown opcode; closing connection", opcode=op_type,
                        session=hex(session_id & 0xFFFFFFFFFFFFFFFF))
            self._send(connection_id, reply_frame(xid, -1, Err.UNIMPLEMENTED))
            self._close(connection_id)
            return
        except JuteDecodeError as error:
            log.warning("malformed request", session=hex(session_id & 0xFFFFFFFFFFFFFFFF),
                        opcode=op_type, error=str(error))
            self._reply_now(conn, xid, Err.MARSHALLINGERROR)
            return
        request = Request(session_id, xid, op_type, body, conn.auth_info, connection_id, now_ms)
        if role == READ_ONLY and (op_type in WRITE_OPS or op_type == _SYNC):
            self._refuse_read_only(conn, request)
        elif op_type in WRITE_OPS:
            self._submit_write(request, now_ms)
        else:
            if op_type == _SYNC:
                if role == FOLLOWER:
                    # Answered once the leader says every earlier commit reached us.
                    request.result = _NOT_SYNCED
                    replica.forward_sync(request)
                else:
                    request.result = replica.last_prepared_zxid()
            queue = self.pending.get(session_id)
            if queue:
                queue.append(request)
                if op_type == _SYNC:
                    self._waiting_syncs.add(session_id)
            elif op_type == _SYNC and request.result > replica.tree.last_zxid:
                self.pending[session_id] = deque((request,))
                self._waiting_syncs.add(session_id)
            else:
                self._answer_read(request, now_ms)

    def _sasl(self, conn: Connection, xid: int, payload: bytes) -> None:
        """ZooKeeper's processSasl: one step of the connection's SASL exchange (DIGEST-MD5),
        answered at once (sasl has no handler in the read pipeline). On success the connection
        gets ``sasl:<user>`` (and ``super`` for a zookeeper.superUser); a failure is answered
        AUTHFAILED and the connection dropped. Without a JAAS Server section, as ZooKeeper
        without a SASL login, every token gets an empty answer and the client carries on
        unauthenticated. A packet without a token drops the connection."""
        try:
            token = r.GetSASLRequest.decode_from(payload, 8)[0].token
        except JuteDecodeError:
            token = None
        session = hex(conn.session_id & 0xFFFFFFFFFFFFFFFF)
        if token is None:
            log.warning("malformed SASL request; closing connection", session=session)
            self._close(conn.connection_id)
            return
        response = None
        authenticator = self.sasl
        if authenticator is not None:
            from zkpy.auth.digest_md5 import SaslError
            if conn.sasl is None:
                conn.sasl = authenticator.exchange()
            try:
                response = conn.sasl.evaluate(token)
            except SaslError as error:
                log.warning("client failed to SASL authenticate", client=conn.client_ip,
                            session=session, reason=str(error))
                if not authenticator.allow_failed_clients:
                    body = r.SetSASLResponse.encode(r.SetSASLResponse(None))
                    self._send(conn.connection_id, reply_frame(xid, 0, Err.AUTHFAILED, body))
                    self._close(conn.connection_id)
                    return
                log.warning("keeping the connection despite the SASL failure "
                            "(zookeeper.allowSaslFailedClients)", session=session)
            else:
                if conn.sasl.complete and conn.sasl.authorization_id is not None:
                    user = conn.sasl.authorization_id
                    ids = [r.Id("sasl", user)]
                    if authenticator.is_super(user):
                        ids.append(r.Id("super", ""))
                    conn.auth_info = conn.auth_info + tuple(
                        i for i in ids if i not in conn.auth_info)
                    log.info("SASL authenticated", session=session, id=user,
                             super_user=len(ids) > 1)
        body = r.SetSASLResponse.encode(r.SetSASLResponse(response))
        self._send(conn.connection_id, reply_frame(xid, 0, 0, body))

    _WATCHING_READS = frozenset((OpCode.getData, OpCode.exists, OpCode.getChildren,
                                 OpCode.getChildren2))

    def _over_watch_limit(self, request: Request) -> bool:
        """A session at its watch cap may not add more: the read is refused (THROTTLEDOP,
        'not executed at all') rather than leaving a watch silently unset."""
        limit = self.settings.max_watches_per_session
        if not limit:
            return False
        op_type = request.type
        if not ((op_type in self._WATCHING_READS and request.body.watch) or op_type == OpCode.addWatch):
            return False
        if self.watches.session_watch_count(request.session_id) < limit:
            return False
        self.stats.watch_limit_rejections += 1
        log.warning("session reached its watch limit; read refused", limit=limit,
                    session=hex(request.session_id & 0xFFFFFFFFFFFFFFFF))
        return True

    def _refuse_read_only(self, conn: Connection, request: Request) -> None:
        if request.type == _CLOSE_SESSION:
            self._send(conn.connection_id, reply_frame(request.xid, self.replica.tree.last_zxid, 0))
            self.replica.close_local_session(request.session_id)
            self._close(conn.connection_id)
            return
        self._reply_now(conn, request.xid, Err.NOTREADONLY)

    def _reply_now(self, conn: Connection, xid: int, err: int) -> None:
        """Errors found before the pipeline (bad opcode, bad body) still keep session order."""
        request = Request(conn.session_id, xid, -999, None, conn.auth_info, conn.connection_id)
        request.err = int(err)
        queue = self.pending.get(conn.session_id)
        if queue:
            queue.append(request)
        else:
            self._send(conn.connection_id, reply_frame(xid, self.replica.tree.last_zxid, int(err)))

    def _submit_write(self, request: Request, now_ms: int) -> None:
        self.replica.submit(request, now_ms)
        queue = self.pending.get(request.session_id)
        if queue is None:
            queue = self.pending[request.session_id] = deque()
        queue.append(request)

    # -- reads --------------------------------------------------------------------------------

    def _answer_read(self, request: Request, now_ms: int) -> None:
        connection_id = request.connection_id
        tree = self.replica.tree
        if request.type == -999:
            self._send(connection_id, reply_frame(request.xid, tree.last_zxid, request.err))
            return
        handler = READ_HANDLERS[request.type]
        try:
            if self._over_watch_limit(request):
                raise KeeperError(Err.THROTTLEDOP)
            body = handler(tree, self.watches, self.acl, request)
            err = 0
        except KeeperError as error:
            body, err = b"", error.code
        conn = self._open(connection_id)
        if conn is None:
            return  # its connection is gone: the read's effects (watches) stay, as in ZooKeeper
        xid = request.xid
        if request.type == OpCode.ping:
            xid = Xid.PING
        self._deliver(conn, reply_frame(xid, tree.last_zxid, err, body))
        self._answered(conn, request, tree.last_zxid, now_ms)
        if request.type in (OpCode.setWatches, OpCode.setWatches2) and request.result:
            self._notify(request.result)
        if request.type != OpCode.ping:
            self.stats.record_latency(max(0, now_ms - request.received_ms))

    # -- the replica core's change feed ------------------------------------------------------

    def applied(self, hdr: r.TxnHeader, txn, result: TxnResult, now_ms: int) -> None:
        """A txn was applied: fire its watches, end a closed session's connection, complete
        the session's oldest write when this txn is it, then answer the syncs it releases."""
        if result.changes:
            self._notify(self.watches.trigger(result.changes))
        session_id = hdr.client_id
        if hdr.type == _CLOSE_SESSION:
            self.session_closed(session_id)
        queue = self.pending.get(session_id)
        if queue:
            request = queue[0]
            if request.hdr is not None and request.xid == hdr.cxid:
                # This session's oldest write (not, e.g., an expiry's closeSession).
                queue.popleft()
                self._reply_write(request, hdr, result, now_ms)
                if queue:
                    self._drain(session_id, queue, now_ms)
                else:
                    del self.pending[session_id]
        if self._waiting_syncs:
            # Every txn up to this one is applied: the syncs waiting for them are answered now,
            # before the next. That may be a write their session sent after the sync, whose
            # commit must find it at the head of the queue (or its reply is never sent), and
            # the reads queued between must not see it.
            self._release_syncs(now_ms, hdr.zxid)

    def batch_applied(self, now_ms: int) -> None:
        if self._waiting_syncs:
            self._release_syncs(now_ms)

    def sync_done(self, session_id: int, xid: int, now_ms: int) -> None:
        """Follower: the leader answered our sync; release the waiting request."""
        queue = self.pending.get(session_id)
        if not queue:
            return
        for request in queue:
            if request.type == _SYNC and request.xid == xid and request.result == _NOT_SYNCED:
                request.result = 0
                break
        self._drain(session_id, queue, now_ms)

    def not_passed_on(self, request: Request, now_ms: int) -> None:
        """Follower: a forwarded write or a sync of this front end could not be sent to the
        leader. It will never complete, so its connection is closed (its client retries
        elsewhere) and it leaves the session's queue, where it would hold up the session's
        later connections forever."""
        queue = self.pending.get(request.session_id)
        if not queue or not any(queued is request for queued in queue):
            return
        log.info("request could not reach the leader; closing the connection",
                 session=hex(request.session_id & 0xFFFFFFFFFFFFFFFF), xid=request.xid)
        self._close(request.connection_id)
        queue.remove(request)
        self._drain(request.session_id, queue, now_ms)

    def role_changed(self, role: str, now_ms: int) -> None:
        """The member changed role: every client connection is closed, as ZooKeeper restarts
        its request pipeline; sessions live on in the replica."""
        for connection_id in list(self.connections):
            self._close(connection_id)
        self.pending.clear()
        self._waiting_syncs.clear()

    def _drain(self, session_id: int, queue: deque, now_ms: int,
               synced_to: int | None = None) -> None:
        """Answer the reads now at the head of a session's queue, up to its next write.
        ``synced_to``: every txn up to it is applied (default: the tree's last zxid)."""
        if synced_to is None:
            synced_to = self.replica.tree.last_zxid
        while queue:
            head = queue[0]
            if head.hdr is not None:
                return
            if head.type == _SYNC and head.result > synced_to:
                self._waiting_syncs.add(session_id)
                return
            queue.popleft()
            self._answer_read(head, now_ms)
        self.pending.pop(session_id, None)

    def _release_syncs(self, now_ms: int, synced_to: int | None = None) -> None:
        for session_id in list(self._waiting_syncs):
            self._waiting_syncs.discard(session_id)
            queue = self.pending.get(session_id)
            if queue:
                self._drain(session_id, queue, now_ms, synced_to)

    def _reply_write(self, request: Request, hdr: r.TxnHeader, result: TxnResult, now_ms: int) -> None:
        # The connection the request came on: if the session has moved since, the client
        # never sent this xid on its new connection, and the reply is lost with the old one.
        conn = self._open(request.connection_id)
        if conn is None:
            return
        if request.type == _OP_CREATE_SESSION:
            passwd = session_password(request.session_id, self.settings.session_secret)
            self._deliver(conn, connect_response(request.session_id, request.body, passwd))
            self._answered(conn, request, hdr.zxid, now_ms)
            return
        self.stats.record_latency(max(0, now_ms - request.received_ms))
        self._answered(conn, request, hdr.zxid, now_ms)
        err = result.err
        if request.type == _OP_RECONFIG and not err:
            # The client is shown the new configuration, as a getData of /zookeeper/config.
            data = self.replica.tree.nodes[result.path].data
            self._deliver(conn, reply_frame(request.xid, hdr.zxid, 0,
                                            r.GetDataResponse.encode((data, result.stat))))
            return
        if request.type == _OP_CHECK and not err:
            # ZooKeeper 3.8 applies a successful stand-alone check but sends no reply.
            return
        body = b"" if err else write_body(request.type, result)
        self._deliver(conn, reply_frame(request.xid, hdr.zxid, err, body))
        if request.type == _CLOSE_SESSION:
            self._close(conn.connection_id)

    def session_closed(self, session_id: int) -> None:
        """The session ended (its closeSession applied, or a read-only member's local session
        expired): its watches go, and its connection closes. The client's own closeSession on
        that connection is answered first (_reply_write closes the connection after the reply);
        an expiry's is not answered."""
        self.watches.remove_session(session_id)
        connection_id = self.session_connection.get(session_id)
        answered_close = any(q.type == _CLOSE_SESSION and q.connection_id == connection_id
                             for q in self.pending.get(session_id, ()))
        if connection_id is not None and not answered_close:
            # Expired: the client learns it when the connection drops and it reconnects.
            self._close(connection_id)
            del self.session_connection[session_id]

    def _notify(self, notifications) -> None:
        for session_id, event_type, path, acl in notifications:
            connection_id = self.session_connection.get(session_id)
            if connection_id is None:
                continue
            if acl:
                auth = self.connections[connection_id].auth_info
                if not self.acl.has_permission(acl, _READ, auth):
                    continue
            event = r.WatcherEvent.encode((event_type, _SYNC_CONNECTED, path))
            self._send(connection_id, reply_frame(Xid.NOTIFICATION, -1, 0, event))

    # -- status -------------------------------------------------------------------------------

    def outstanding_requests(self) -> int:
        return sum(len(q) for q in self.pending.values())
