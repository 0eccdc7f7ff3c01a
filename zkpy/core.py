"""The server core: sessions, request pipeline and replies, with no I/O.

Pipeline, the same in every mode: prep (validate, ACL, versions -> txn) -> order -> durable
log -> apply to the tree -> reply and fire watches. In standalone mode ordering is a quorum of
one: the txns the core hands out with ``take_log_batch`` are committed once the runtime reports
them durable through ``log_durable``. In an ensemble the leader's core prepares (its own
clients' writes and those followers forward) and ZAB orders the txns; a follower's core
forwards writes (``forwards``) and answers them when their commit is applied
(``apply_committed``), matching the txn's session and cxid to the head of that session's queue.

Duties of the caller (the runtime), in this order for every loop turn:
1. feed events in (``handle_connect``, ``handle_request``, ``connection_closed``, ``tick``);
2. write ``take_log_batch()`` to the log and sync it (one sync for the whole batch);
3. call ``log_durable(batch, now_ms)`` so the txns are applied and answered;
4. send ``outbox`` bytes and close ``to_close`` connections, then clear both.

Ordering duties of the core: txns are applied in zxid order; a session's replies leave in its
request order (a read waits behind the session's outstanding writes); watch notifications
caused by a txn are queued before that txn's reply.

A reply goes to the connection its request came on, never to the session's current one: a
session that moved to another connection (on this member) must not get the old connection's
replies there, where the client never sent those xids. A connection the core has decided to
close (``to_close``) is dead to it at once: nothing more is read from it or sent to it, though
the runtime closes the socket only after this turn. The requests it drops (a forwarded write
that can no longer complete, the reads queued behind it) are then never followed by a later
reply on that connection: the client sees a lost connection, never a gap in its replies.
"""

from __future__ import annotations

import struct
from collections import deque

import structlog

from jute import Err, KeeperState, OpCode, Perms, Xid
from jute import records as r
from jute.errors import JuteDecodeError
from jute.opcodes import (MULTI_READ_OPS, MULTI_WRITE_OPS, MultiResult, REQUEST_RECORDS,
                          decode_multi_request, encode_multi_result)

from zkpy.pipeline.prep import Prep, PrepSettings, WRITE_OPS
from zkpy.pipeline.reads import READ_HANDLERS
from zkpy.pipeline.request import KeeperError, Request
from zkpy.sessions.tracker import SessionTracker, session_password
from zkpy.tree import acl as acls
from zkpy.tree.datatree import DataTree, TxnResult
from zkpy.tree.ephemeral import ttl_of
from zkpy.tree.txncodec import (decode_create_request, decode_create_request_from,
                                decode_set_data_request, decode_txn)
from zkpy.tree.watches import WatchManager

log = structlog.get_logger("zkpy.core")

_REPLY_HEADER = struct.Struct(">iqi")
_LENGTH = struct.Struct(">i")
_SYNC_CONNECTED = int(KeeperState.SyncConnected)
_CLOSE_SESSION = int(OpCode.closeSession)
_SYNC = int(OpCode.sync)
_NOT_SYNCED = 1 << 62
_READ = int(Perms.READ)

STANDALONE = "standalone"
LEADER = "leader"
FOLLOWER = "follower"
READ_ONLY = "read-only"  # an ensemble member without quorum serving read-only clients
FORWARDED = object()  # marks a follower's write that waits for its commit
_DELETE_CONTAINER = int(OpCode.deleteContainer)
_AUTH = int(OpCode.auth)
_MULTI = int(OpCode.multi)
_MULTI_READ = int(OpCode.multiRead)
# The requests whose body is a CreateRequest, decoded by txncodec's fast path.
_CREATE_REQUESTS = frozenset(map(int, (OpCode.create, OpCode.create2, OpCode.createContainer)))
_MULTI_DECODERS = {int(OpCode.create): decode_create_request_from,
                   int(OpCode.create2): decode_create_request_from}
_SASL = int(OpCode.sasl)
# The write path's opcodes as plain ints: reading an IntEnum member costs about 50 ns.
_OP_CHECK = int(OpCode.check)
_OP_CREATE = int(OpCode.create)
_OP_CREATE2 = int(OpCode.create2)
_OP_CREATE_CONTAINER = int(OpCode.createContainer)
_OP_CREATE_SESSION = int(OpCode.createSession)
_OP_CREATE_TTL = int(OpCode.createTTL)
_OP_ERROR = int(OpCode.error)
_OP_RECONFIG = int(OpCode.reconfig)
_OP_SET_ACL = int(OpCode.setACL)
_OP_SET_DATA = int(OpCode.setData)
_CREATE2_REPLIES = frozenset((_OP_CREATE2, _OP_CREATE_CONTAINER, _OP_CREATE_TTL))


def reply_frame(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    payload_length = 16 + len(body)
    return _LENGTH.pack(payload_length) + _REPLY_HEADER.pack(xid, zxid, err) + body


class CoreSettings:
    __slots__ = ("tick_ms", "min_session_timeout_ms", "max_session_timeout_ms", "server_id",
                 "prep", "session_secret", "super_digest", "max_watches_per_session")

    def __init__(self, tick_ms=2000, min_session_timeout_ms=None, max_session_timeout_ms=None,
                 server_id=0, extended_types_enabled=False, session_secret=b"zkpy",
                 super_digest=None, max_watches_per_session=1_000_000,
                 reconfig_enabled=False) -> None:
        self.tick_ms = tick_ms
        self.min_session_timeout_ms = min_session_timeout_ms or 2 * tick_ms
        self.max_session_timeout_ms = max_session_timeout_ms or 20 * tick_ms
        self.server_id = server_id
        self.prep = PrepSettings(extended_types_enabled=extended_types_enabled,
                                 super_digest=super_digest, reconfig_enabled=reconfig_enabled)
        self.session_secret = session_secret
        self.super_digest = super_digest
        self.max_watches_per_session = max_watches_per_session


class Connection:
    """The core's view of one client connection."""

    __slots__ = ("connection_id", "client_ip", "session_id", "auth_info", "closing",
                 "packets_received", "packets_sent", "last_zxid", "established_ms",
                 "last_op", "last_cxid", "last_response_ms", "last_latency_ms", "latency",
                 "sasl")

    def __init__(self, connection_id: int, client_ip: str, now_ms: int) -> None:
        self.connection_id = connection_id
        self.client_ip = client_ip
        self.session_id = 0
        self.auth_info: tuple = (r.Id("ip", client_ip),)
        self.closing = False
        self.sasl = None  # this connection's SASL exchange (zkpy.auth.digest_md5), once begun
        self.packets_received = 0
        self.packets_sent = 0
        self.last_zxid = -1
        self.established_ms = now_ms
        # What the cons four-letter word reports, as ZooKeeper's updateStatsForResponse keeps it.
        self.last_op: int | None = None
        self.last_cxid = -1
        self.last_response_ms = 0
        self.last_latency_ms = 0
        self.latency = Stats()


class Stats:
    __slots__ = ("packets_received", "packets_sent", "latency_min_ms", "latency_max_ms",
                 "latency_total_ms", "latency_count", "watch_limit_rejections")

    def __init__(self) -> None:
        self.reset()
        self.watch_limit_rejections = 0  # a limit counter: srst does not clear it

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.latency_min_ms = 0
        self.latency_max_ms = 0
        self.latency_total_ms = 0
        self.latency_count = 0

    def record_latency(self, latency_ms: int) -> None:
        if self.latency_count == 0 or latency_ms < self.latency_min_ms:
            self.latency_min_ms = latency_ms
        if latency_ms > self.latency_max_ms:
            self.latency_max_ms = latency_ms
        self.latency_total_ms += latency_ms
        self.latency_count += 1


class ServerCore:
    """Sessions, connections and the pipeline of one standalone server (see module doc)."""

    def __init__(self, settings: CoreSettings, now_ms: int, tree: DataTree | None = None) -> None:
        self.settings = settings
        self.tree = tree or DataTree()
        self.watches = WatchManager()
        self.sessions = SessionTracker(settings.tick_ms, settings.server_id, now_ms)
        self.prep = Prep(self.tree, settings.prep)
        self.connections: dict[int, Connection] = {}
        self.session_connection: dict[int, int] = {}
        self.pending: dict[int, deque[Request]] = {}
        self._log_batch: list[tuple[r.TxnHeader, object]] = []
        self._waiting_syncs: set[int] = set()
        self._reaping: set[str] = set()
        self.outbox: list[tuple[int, bytes]] = []
        self.to_close: list[int] = []
        self.stats = Stats()
        self.now_ms = now_ms
        self.role = STANDALONE
        # Follower: what must go to the leader, in the order the requests came (a session's
        # write and sync must reach the leader in its request order, or a sync's reply would
        # come after the commit of a later write, which then matches no queued request):
        # writes as Forward fields (session, xid, opcode, payload, auth), syncs with the
        # sync opcode and no payload.
        self.forwards: list[tuple] = []
        self.touched: set[int] = set()
        # zkpy.auth.digest_md5.SaslAuthenticator when a JAAS Server section is configured.
        self.sasl = None

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
        self.now_ms = now_ms
        if request.last_zxid_seen > self.tree.last_zxid:
            log.warning("refusing session: client has seen a newer zxid",
                        connection=connection_id, client=conn.client_ip,
                        client_zxid=hex(request.last_zxid_seen), our_zxid=hex(self.tree.last_zxid))
            self._close(connection_id)
            return
        timeout_ms = min(max(request.timeout_ms, self.settings.min_session_timeout_ms),
                         self.settings.max_session_timeout_ms)
        if self.role == READ_ONLY:
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
            self._send(conn.connection_id, self._connect_response(0, 0, bytes(16)))
            self._close(conn.connection_id)
            return
        conn.session_id = session_id
        self.session_connection[session_id] = conn.connection_id
        self.sessions.touch(session_id, now_ms)
        log.info("session reconnected", session=hex(session_id & 0xFFFFFFFFFFFFFFFF),
                 client=conn.client_ip)
        self._send(conn.connection_id,
                   self._connect_response(session_id, session.timeout_ms, expected))

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
        body = r.ConnectResponse.encode(r.ConnectResponse(0, session.timeout_ms, session_id, passwd, True))
        self._send(conn.connection_id, _LENGTH.pack(len(body)) + body)

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

    def _connect_response(self, session_id: int, timeout_ms: int, passwd: bytes) -> bytes:
        body = r.ConnectResponse.encode(r.ConnectResponse(0, timeout_ms, session_id, passwd, False))
        return _LENGTH.pack(len(body)) + body

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
        self.now_ms = now_ms
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
        if self.role == FOLLOWER:
            self.touched.add(session_id)
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
            body = self._decode_body(op_type, payload)
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
        request.payload = payload
        if self.role == READ_ONLY and (op_type in WRITE_OPS or op_type == _SYNC):
            self._refuse_read_only(conn, request)
        elif op_type in WRITE_OPS:
            if op_type == _CLOSE_SESSION:
                self.sessions.set_closing(session_id)
            self._submit_write(request, now_ms)
        else:
            request.hdr = None
            if op_type == _SYNC:
                if self.role == FOLLOWER:
                    # Answered once the leader says every earlier commit reached us.
                    request.result = _NOT_SYNCED
                    self.forwards.append((session_id, xid, _SYNC, b"", ()))
                else:
                    request.result = self._last_prepared_zxid()
            queue = self.pending.get(session_id)
            if queue:
                queue.append(request)
                if op_type == _SYNC:
                    self._waiting_syncs.add(session_id)
            elif op_type == _SYNC and request.result > self.tree.last_zxid:
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
            self._send(conn.connection_id, reply_frame(request.xid, self.tree.last_zxid, 0))
            self._session_closed(request.session_id)
            self._close(conn.connection_id)
            return
        self._reply_now(conn, request.xid, Err.NOTREADONLY)

    _NO_BODY_OPS = frozenset((OpCode.ping, OpCode.closeSession, OpCode.whoAmI))

    def _decode_body(self, op_type: int, payload: bytes):
        if op_type in self._NO_BODY_OPS:
            return None
        if op_type in _CREATE_REQUESTS:
            return decode_create_request(payload, 8)
        if op_type == _OP_SET_DATA:
            return decode_set_data_request(payload, 8)
        if op_type == _MULTI:
            return decode_multi_request(payload, 8, MULTI_WRITE_OPS, _MULTI_DECODERS)
        if op_type == _MULTI_READ:
            return decode_multi_request(payload, 8, MULTI_READ_OPS)
        record = REQUEST_RECORDS[op_type]
        body, _ = record.decode_from(payload, 8)
        return body

    def _reply_now(self, conn: Connection, xid: int, err: int) -> None:
        """Errors found before the pipeline (bad opcode, bad body) still keep session order."""
        request = Request(conn.session_id, xid, -999, None, conn.auth_info, conn.connection_id)
        request.err = int(err)
        queue = self.pending.get(conn.session_id)
        if queue:
            queue.append(request)
        else:
            self._send(conn.connection_id, reply_frame(xid, self.tree.last_zxid, int(err)))

    def _submit_write(self, request: Request, now_ms: int) -> None:
        if not request.received_ms:
            request.received_ms = now_ms
        if self.role == FOLLOWER:
            request.hdr = FORWARDED
            self.forwards.append((request.session_id, request.xid, int(request.type),
                                  _forward_payload(request), request.auth_info))
        else:
            hdr, txn = self.prep.prepare(request, now_ms)
            request.hdr = hdr
            request.txn = txn
            self._log_batch.append((hdr, txn))
        if request.session_id == 0:
            return  # internal (expiry, reaping): nobody waits for a reply
        queue = self.pending.get(request.session_id)
        if queue is None:
            queue = self.pending[request.session_id] = deque()
        queue.append(request)

    # -- reads --------------------------------------------------------------------------------

    def _answer_read(self, request: Request, now_ms: int) -> None:
        connection_id = request.connection_id
        if request.type == -999:
            self._send(connection_id, reply_frame(request.xid, self.tree.last_zxid, request.err))
            return
        handler = READ_HANDLERS[request.type]
        try:
            if self._over_watch_limit(request):
                raise KeeperError(Err.THROTTLEDOP)
            body = handler(self.tree, self.watches, request)
            err = 0
        except KeeperError as error:
            body, err = b"", error.code
        conn = self._open(connection_id)
        if conn is None:
            return  # its connection is gone: the read's effects (watches) stay, as in ZooKeeper
        xid = request.xid
        if request.type == OpCode.ping:
            xid = Xid.PING
        self._deliver(conn, reply_frame(xid, self.tree.last_zxid, err, body))
        self._answered(conn, request, self.tree.last_zxid, now_ms)
        if request.type in (OpCode.setWatches, OpCode.setWatches2) and request.result:
            self._notify(request.result)
        if request.type != OpCode.ping:
            self.stats.record_latency(max(0, now_ms - request.received_ms))

    # -- durability and apply -----------------------------------------------------------------

    def plan_reconfigs_with(self, planner) -> None:
        """The leader's reconfig planner (None: not leading, reconfig requests are refused)."""
        self.prep.settings.reconfig_planner = planner

    def has_outputs(self) -> bool:
        """Whether txns wait for the log, or (as a follower) requests for the leader."""
        return bool(self._log_batch or self.forwards)

    def take_log_batch(self) -> list[tuple[r.TxnHeader, object]]:
        """Txns prepared since the last call, in zxid order, for the log (or ZAB)."""
        batch, self._log_batch = self._log_batch, []
        return batch

    def apply_committed(self, batch, now_ms: int) -> None:
        """The txns of ``batch`` are committed (and, standalone, synced): apply them in zxid
        order and answer the requests they complete."""
        self.now_ms = now_ms
        for hdr, txn in batch:
            if self._waiting_syncs:
                # Every txn before this one is applied: the syncs waiting for them are answered
                # now, before it. It may be a write their session sent after the sync, whose
                # commit must find it at the head of the queue (or its reply is never sent),
                # and the reads queued between must not see it.
                self._release_syncs(now_ms, hdr.zxid - 1)
            result = self.tree.apply(hdr, txn)
            self.prep.applied(hdr.zxid)
            self._after_apply(hdr, txn, result, now_ms)
        if self._waiting_syncs:
            self._release_syncs(now_ms)

    log_durable = apply_committed

    def handle_forwarded(self, forward, now_ms: int) -> None:
        """Leader: prepare a write a follower received from one of its clients."""
        session_id, xid, op_type, payload, auth_info = forward
        self.now_ms = now_ms
        if op_type == OpCode.createSession:
            body = struct.unpack(">i", payload)[0]
        else:
            try:
                body = self._decode_body(op_type, payload)
            except (KeyError, JuteDecodeError):
                body = None
        request = Request(session_id, xid, op_type, body, tuple(auth_info), 0, now_ms)
        if not self._session_is_live(request):
            # Sent before the session expired and delayed (a follower cut off by a partition):
            # refused as ZooKeeper's PrepRequestProcessor refuses it, never applied.
            log.info("write from an expired session refused",
                     session=hex(session_id & 0xFFFFFFFFFFFFFFFF), opcode=op_type)
            self._log_batch.append(self.prep.prepare_error(request, Err.SESSIONEXPIRED, now_ms))
            return
        if op_type == _CLOSE_SESSION:
            self.sessions.set_closing(session_id)
        hdr, txn = self.prep.prepare(request, now_ms)
        self._log_batch.append((hdr, txn))

    def _session_is_live(self, request: Request) -> bool:
        if request.type in (OpCode.createSession, _CLOSE_SESSION):
            return True
        session = self.sessions.get(request.session_id)
        return session is not None and not session.closing

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

    def not_passed_on(self, session_id: int, xid: int) -> None:
        """Follower: a forwarded write or a sync of this session could not be sent to the
        leader. It will never complete, so its connection is closed (its client retries
        elsewhere) and it leaves the session's queue, where it would hold up the session's
        later connections forever."""
        queue = self.pending.get(session_id)
        if not queue:
            return
        waiting = [request for request in queue if request.xid == xid
                   and (request.hdr is FORWARDED or request.result == _NOT_SYNCED)]
        if not waiting:
            return
        request = waiting[-1]  # the newest: xids can repeat across a session's connections
        log.info("request could not reach the leader; closing the connection",
                 session=hex(session_id & 0xFFFFFFFFFFFFFFFF), xid=xid)
        self._close(request.connection_id)
        queue.remove(request)
        self._drain(session_id, queue, self.now_ms)

    def touch_sessions(self, session_ids, now_ms: int) -> None:
        """Leader: followers report the sessions their clients kept alive."""
        for session_id in session_ids:
            self.sessions.touch(session_id, now_ms)

    def take_touched(self) -> list[int]:
        touched, self.touched = list(self.touched), set()
        return touched

    def become(self, role: str, now_ms: int, epoch: int = 0) -> None:
        """Change role (ZAB elected a leader, or we stopped serving): every client connection
        is closed, as ZooKeeper restarts its request pipeline; sessions live on in the tree."""
        for connection_id in list(self.connections):
            self._close(connection_id)
        self.pending.clear()
        self._waiting_syncs.clear()
        self._log_batch = []
        self.forwards = []
        self.touched = set()
        self._reaping.clear()
        self.role = role
        if role == LEADER:
            self.prep = Prep(self.tree, self.settings.prep)
            self.prep.next_zxid = max((epoch << 32) | 1, self.tree.last_zxid + 1)
            # Sessions get a full timeout under the new leader before they can expire.
            for session_id, session in list(self.sessions.sessions.items()):
                session.closing = False
                self.sessions.add(session_id, session.timeout_ms, now_ms)

    def reload_tree(self, tree: DataTree) -> None:
        """After a log truncation or snapshot install: the tree was rebuilt from storage."""
        self.tree = tree
        self.prep = Prep(tree, self.settings.prep)

    def _after_apply(self, hdr: r.TxnHeader, txn, result: TxnResult, now_ms: int) -> None:
        if result.changes:
            self._notify(self.watches.trigger(result.changes))
        session_id = hdr.client_id
        if hdr.type == _OP_CREATE_SESSION:
            if session_id not in self.sessions.sessions:
                self.sessions.add(session_id, txn.timeout_ms, now_ms)
        elif hdr.type == _CLOSE_SESSION:
            self._session_closed(session_id)
        elif session_id == 0:
            self._reaping.discard(getattr(txn, "path", None))
        queue = self.pending.get(session_id)
        if not queue:
            return
        request = queue[0]
        if request.hdr is None or request.xid != hdr.cxid:
            return  # not this session's oldest write (e.g. an expiry's closeSession)
        queue.popleft()
        self._reply_write(request, hdr, result, now_ms)
        if queue:
            self._drain(request.session_id, queue, now_ms)
        elif queue is not None:
            del self.pending[request.session_id]

    def _drain(self, session_id: int, queue: deque, now_ms: int,
               synced_to: int | None = None) -> None:
        """Answer the reads now at the head of a session's queue, up to its next write.
        ``synced_to``: every txn up to it is applied (default: the tree's last zxid)."""
        if synced_to is None:
            synced_to = self.tree.last_zxid
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

    def _last_prepared_zxid(self) -> int:
        """Leader or standalone: the zxid a sync waits for, the last txn prepared. A new
        leader's counter starts at 1 in its epoch: while it is still 0 nothing was prepared,
        every txn is applied already, and the sync must not wait for a next write that may
        never come."""
        last = self.prep.next_zxid - 1
        if self.role == LEADER and not last & 0xFFFFFFFF:
            return min(last, self.tree.last_zxid)
        return last

    def _reply_write(self, request: Request, hdr: r.TxnHeader, result: TxnResult, now_ms: int) -> None:
        # The connection the request came on: if the session has moved since, the client
        # never sent this xid on its new connection, and the reply is lost with the old one.
        conn = self._open(request.connection_id)
        if conn is None:
            return
        if request.type == _OP_CREATE_SESSION:
            passwd = session_password(request.session_id, self.settings.session_secret)
            self._deliver(conn, self._connect_response(request.session_id, request.body, passwd))
            self._answered(conn, request, hdr.zxid, now_ms)
            return
        self.stats.record_latency(max(0, now_ms - request.received_ms))
        self._answered(conn, request, hdr.zxid, now_ms)
        err = result.err
        if request.type == _OP_RECONFIG and not err:
            # The client is shown the new configuration, as a getData of /zookeeper/config.
            data = self.tree.nodes[result.path].data
            self._deliver(conn, reply_frame(request.xid, hdr.zxid, 0,
                                            r.GetDataResponse.encode((data, result.stat))))
            return
        if request.type == _OP_CHECK and not err:
            # ZooKeeper 3.8 applies a successful stand-alone check but sends no reply.
            return
        body = b"" if err else _write_body(request.type, result)
        self._deliver(conn, reply_frame(request.xid, hdr.zxid, err, body))
        if request.type == _CLOSE_SESSION:
            self._close(conn.connection_id)

    def _session_closed(self, session_id: int) -> None:
        self.sessions.remove(session_id)
        self.watches.remove_session(session_id)
        connection_id = self.session_connection.get(session_id)
        # The client's own closeSession on this connection is answered, then the connection
        # closes (_reply_write); an expiry's (no connection) is not answered.
        answered_close = any(q.type == _CLOSE_SESSION and q.connection_id == connection_id
                             for q in self.pending.get(session_id, ()))
        if connection_id is not None and not answered_close:
            # Expired: the client learns it when the connection drops and it reconnects.
            self._close(connection_id)
            del self.session_connection[session_id]
        log.info("session closed", session=hex(session_id & 0xFFFFFFFFFFFFFFFF))

    def _notify(self, notifications) -> None:
        for session_id, event_type, path, acl in notifications:
            connection_id = self.session_connection.get(session_id)
            if connection_id is None:
                continue
            if acl:
                auth = self.connections[connection_id].auth_info
                if not acls.has_permission(acl, _READ, auth):
                    continue
            event = r.WatcherEvent.encode((event_type, _SYNC_CONNECTED, path))
            self._send(connection_id, reply_frame(Xid.NOTIFICATION, -1, 0, event))

    # -- time ---------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Expire sessions whose deadline passed (each becomes a closeSession txn); only the
        leader (or a standalone server) expires sessions."""
        self.now_ms = now_ms
        if self.role == FOLLOWER:
            return
        if self.role == READ_ONLY:
            for session_id in self.sessions.expire(now_ms):
                self._session_closed(session_id)  # local sessions: no txn
            return
        for session_id in self.sessions.expire(now_ms):
            log.info("session expired", session=hex(session_id & 0xFFFFFFFFFFFFFFFF))
            self._submit_write(Request(session_id, 0, OpCode.closeSession, None), now_ms)

    def reap_containers(self, now_ms: int) -> None:
        """Delete empty containers that once had children, and expired empty TTL nodes."""
        if self.role == FOLLOWER:
            return
        nodes = self.tree.nodes
        candidates = []
        for path in self.tree.containers:
            node = nodes[path]
            if node.cversion > 0 and not node.children:
                candidates.append(path)
        for path in self.tree.ttls:
            node = nodes[path]
            if not node.children and now_ms - node.mtime > ttl_of(node.ephemeral_owner):
                candidates.append(path)
        for path in sorted(candidates):
            if path in self._reaping:
                continue
            self._reaping.add(path)
            self._submit_write(Request(0, 0, OpCode.deleteContainer, r.DeleteRequest(path, -1)), now_ms)

    # -- recovery -----------------------------------------------------------------------------

    def replay(self, hdr: r.TxnHeader, txn, now_ms: int) -> None:
        """Apply a txn read back from the log at start-up, restoring sessions too."""
        self.tree.apply_replayed(hdr, txn)
        if hdr.type == OpCode.createSession:
            self.sessions.add(hdr.client_id, txn.timeout_ms, now_ms)
        elif hdr.type == OpCode.closeSession:
            self.sessions.remove(hdr.client_id)
        self.prep.next_zxid = max(self.prep.next_zxid, hdr.zxid + 1)

    def replay_encoded(self, buf: bytes, now_ms: int) -> None:
        """``replay`` for a txn as the log stores it (TxnHeader and record bytes). The tree
        replays setData and multis, most of a log, without building generic records."""
        if not self.tree.replay_encoded(buf):
            hdr, txn = decode_txn(buf)
            self.replay(hdr, txn, now_ms)

    def restored(self, now_ms: int) -> None:
        """After replay: sessions get a full timeout from now to reconnect."""
        self.prep.next_zxid = max(self.prep.next_zxid, self.tree.last_zxid + 1)
        for session_id, session in list(self.sessions.sessions.items()):
            self.sessions.add(session_id, session.timeout_ms, now_ms)
        for session_id in list(self.tree.ephemerals):
            if session_id not in self.sessions.sessions:
                # Owner's session is gone (its close was never logged): treat as expired now.
                self.sessions.add(session_id, self.settings.min_session_timeout_ms, now_ms)

    # -- status -------------------------------------------------------------------------------

    def outstanding_requests(self) -> int:
        return sum(len(q) for q in self.pending.values())


def _forward_payload(request: Request) -> bytes:
    if request.type == OpCode.createSession:
        return struct.pack(">i", request.body)
    return request.payload


def _write_body(op_type: int, result: TxnResult) -> bytes:
    if op_type == _OP_CREATE:
        return r.CreateResponse.encode((result.path,))
    if op_type in _CREATE2_REPLIES:
        return r.Create2Response.encode((result.path, result.stat))
    if op_type == _OP_SET_DATA:
        return r.SetDataResponse.encode((result.stat,))
    if op_type == _OP_SET_ACL:
        return r.SetACLResponse.encode((result.stat,))
    if op_type == _MULTI:
        return _encode_multi_results(result.sub_results)
    return b""


_CREATE_RESULT_HEADER = r.MultiHeader.encode(r.MultiHeader(int(OpCode.create), False, 0))
_MULTI_END = r.MultiHeader.encode(r.MultiHeader(-1, True, -1))


def _encode_multi_results(sub_results) -> bytes:
    """A multi's response; the results of plain creates (all of a bulk load's) are encoded
    here directly: the fixed header of a create result, then the path."""
    parts = []
    for sub in sub_results:
        if sub.type == _OP_CREATE:
            path = sub.path.encode()
            parts.append(_CREATE_RESULT_HEADER + _LENGTH.pack(len(path)) + path)
        else:
            parts.append(encode_multi_result(_multi_result(sub)))
    parts.append(_MULTI_END)
    return b"".join(parts)


def _multi_result(sub: TxnResult) -> MultiResult:
    if sub.type == _OP_ERROR:
        return MultiResult(_OP_ERROR, sub.err, r.ErrorResponse(sub.err))
    if sub.type == _OP_CREATE:
        return MultiResult(_OP_CREATE, 0, r.CreateResponse(sub.path))
    if sub.type == _OP_CREATE2:
        return MultiResult(_OP_CREATE2, 0, r.Create2Response(sub.path, sub.stat))
    if sub.type == _OP_SET_DATA:
        return MultiResult(_OP_SET_DATA, 0, r.SetDataResponse(sub.stat))
    return MultiResult(sub.type, 0, None)
