"""The etcd v3 gRPC listener: grpcio's asyncio server on the server's loop, over the etcd front
end (zkpy.frontends.etcd.frontend).

grpcio is the gRPC implementation etcd's own clients interoperate with (HTTP/2, flow control,
keep-alives, deadlines); the message code is generated from etcd's protos at build time. Each
call hands the front end a future as its token; the server's flush delivers the front end's
completions and watch responses (``deliver``), so a write is answered only once its txn is
durable and applied, in the same loop turn as the ZooKeeper clients' replies.

Bounds: a request is at most ``MAX_REQUEST_BYTES`` (etcd's 1.5 MiB default) plus gRPC's
overhead, larger ones fail with RESOURCE_EXHAUSTED before they are decoded; a watch stream
holds at most ``MAX_QUEUED_WATCH_RESPONSES`` unread responses, past which its client is too
slow and the stream is closed (logged with the client's address).
"""

from __future__ import annotations

import asyncio
import itertools
import time

import grpc
import structlog

from zkpy.frontends.etcd import auth_plans
from zkpy.frontends.etcd.auth import PERMISSION_DENIED_ERR
from zkpy.frontends.etcd.frontend import EtcdError, EtcdFrontEnd
from zkpy.frontends.etcd.proto import rpc_pb2, rpc_pb2_grpc, v3election_pb2_grpc, v3lock_pb2_grpc
from zkpy.runtime.etcd_recipes import Recipes, grpc_status
from zkpy.runtime import tls

log = structlog.get_logger("zkpy.etcd")

MAX_REQUEST_BYTES = 1536 * 1024  # etcd's --max-request-bytes default
GRPC_OVERHEAD_BYTES = 512 * 1024  # what etcd allows a gRPC message beyond it
MAX_QUEUED_WATCH_RESPONSES = 4096
ETCD_API_VERSION = "3.4.0"



def now_ms() -> int:
    """The server's clock (zkpy.runtime.server.now_ms): sessions' deadlines are on it."""
    return time.time_ns() // 1_000_000


class EtcdListener:
    """The etcd port(s) of one server; ``deliver`` runs at the end of each server flush."""

    def __init__(self, server, frontend: EtcdFrontEnd) -> None:
        self.server = server
        self.frontend = frontend
        self.streams: dict[int, asyncio.Queue] = {}
        self.stream_clients: dict[int, str] = {}  # the gRPC peer of each client stream
        self._stream_ids = itertools.count(1)
        self._grpc: grpc.aio.Server | None = None
        self.recipes = Recipes(self)

    async def start(self) -> None:
        config = self.server.config
        limit = MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES
        self._grpc = grpc.aio.server(interceptors=[_MalformedRequests()], options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.so_reuseport", 0),
        ])
        services = _Services(self)
        rpc_pb2_grpc.add_KVServicer_to_server(services, self._grpc)
        rpc_pb2_grpc.add_WatchServicer_to_server(services, self._grpc)
        rpc_pb2_grpc.add_LeaseServicer_to_server(services, self._grpc)
        rpc_pb2_grpc.add_ClusterServicer_to_server(services, self._grpc)
        rpc_pb2_grpc.add_MaintenanceServicer_to_server(services, self._grpc)
        rpc_pb2_grpc.add_AuthServicer_to_server(services, self._grpc)
        v3lock_pb2_grpc.add_LockServicer_to_server(services, self._grpc)
        v3election_pb2_grpc.add_ElectionServicer_to_server(services, self._grpc)
        address = config.etcd_client_port_address
        if config.etcd_client_port is not None:
            bound = self._grpc.add_insecure_port(f"{_host(address)}:{config.etcd_client_port}")
            if not bound:
                raise OSError(f"etcd.clientPort: cannot listen on {address}:{config.etcd_client_port}")
        if config.etcd_secure_client_port:
            credentials = _credentials(config.tls)
            bound = self._grpc.add_secure_port(
                f"{_host(address)}:{config.etcd_secure_client_port}", credentials)
            if not bound:
                raise OSError(f"etcd.secureClientPort: cannot listen on {address}:"
                              f"{config.etcd_secure_client_port}")
        await self._grpc.start()
        log.info("serving etcd v3 API", address=address, port=config.etcd_client_port,
                 secure_port=config.etcd_secure_client_port, peer=self.server.replica.settings.server_id)

    async def stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(0.5)

    # -- the front end's outputs --------------------------------------------------------------

    def deliver(self) -> None:
        frontend = self.frontend
        if frontend.completions:
            completions, frontend.completions = frontend.completions, []
            for future, outcome in completions:
                if not future.done():
                    future.set_result(outcome)
        if frontend.watch_out:
            out, frontend.watch_out = frontend.watch_out, []
            for stream_id, response in out:
                queue = self.streams.get(stream_id)
                if queue is None:
                    continue
                if callable(queue):
                    queue(response)  # an internal watch (the lock and election services)
                    continue
                try:
                    queue.put_nowait(response)
                except asyncio.QueueFull:
                    log.warning("etcd watch stream not read; closing it", stream=stream_id,
                                client=self.stream_clients.get(stream_id, "?"),
                                queued=MAX_QUEUED_WATCH_RESPONSES)
                    frontend.drop_stream(stream_id)
                    self.streams.pop(stream_id, None)
                    _drain_and_close(queue)

    async def call(self, method, request, context=None):
        """Run a front-end operation and wait for its outcome (raised as the gRPC error)."""
        future = asyncio.get_running_loop().create_future()
        self.frontend.now_ms = now_ms()
        method(future, request)
        self.deliver()
        self.server._schedule_flush()
        outcome = await future
        if isinstance(outcome, EtcdError):
            if context is None:
                raise outcome
            await context.abort(grpc_status(outcome.code), outcome.message)
        return outcome

    def open_stream(self, sink=None, client: str = "") -> tuple[int, asyncio.Queue | None]:
        stream_id = next(self._stream_ids)
        queue = sink or asyncio.Queue(MAX_QUEUED_WATCH_RESPONSES)
        self.streams[stream_id] = queue
        if client:
            self.stream_clients[stream_id] = client
        return stream_id, (None if sink else queue)

    def close_stream(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self.stream_clients.pop(stream_id, None)
        self.frontend.drop_stream(stream_id)


class _Malformed:
    """What a unary request's bytes decoded to when they are no protobuf of its type."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _MalformedRequests(grpc.aio.ServerInterceptor):
    """A unary request that does not parse is answered INTERNAL with Go gRPC's message, as
    etcd answers it (grpcio's own answer would be UNKNOWN), and logged with its client. The
    wrapped handler is made once per method, not per call."""

    def __init__(self) -> None:
        self._wrapped: dict[str, object] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrapped[method] = _wrap_unary(handler, method)
        return wrapped


def _wrap_unary(handler, method: str):
    if handler.request_streaming or handler.response_streaming:
        return handler
    decode, behaviour = handler.request_deserializer, handler.unary_unary

    def safe_decode(data: bytes):
        try:
            return decode(data)
        except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and kin
            return _Malformed(error)

    async def checked(request, context):
        if type(request) is _Malformed:
            log.warning("malformed etcd request", method=method, client=context.peer(),
                        error=str(request.error))
            await context.abort(grpc.StatusCode.INTERNAL,
                                f"grpc: error unmarshalling request: {request.error}")
        return await behaviour(request, context)

    return handler._replace(request_deserializer=safe_decode, unary_unary=checked)


def _drain_and_close(queue: asyncio.Queue) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _credentials(tls_config) -> grpc.ServerCredentials:
    """The etcd port's TLS from the client port's ssl.* key and trust stores."""
    from cryptography.hazmat.primitives import serialization

    key, chain = tls.load_key_store(tls_config.keystore_location, tls_config.keystore_password,
                                    tls_config.keystore_type)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    roots = None
    if tls_config.truststore_location:
        trusted = tls.load_trust_store(tls_config.truststore_location,
                                       tls_config.truststore_password, tls_config.truststore_type)
        roots = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in trusted)
    client_auth = tls_config.client_auth
    return grpc.ssl_server_credentials(
        [(key_pem, chain_pem)], root_certificates=roots,
        require_client_auth=client_auth == "need" and roots is not None)


class _Services(rpc_pb2_grpc.KVServicer, rpc_pb2_grpc.WatchServicer, rpc_pb2_grpc.LeaseServicer,
                rpc_pb2_grpc.ClusterServicer, rpc_pb2_grpc.MaintenanceServicer,
                rpc_pb2_grpc.AuthServicer, v3lock_pb2_grpc.LockServicer,
                v3election_pb2_grpc.ElectionServicer):
    """Every etcd service: each method turns into one front-end operation."""

    def __init__(self, listener: EtcdListener) -> None:
        self.listener = listener
        self.frontend = listener.frontend

    # -- who asks -----------------------------------------------------------------------------

    async def _user(self, context):
        """The request's etcd user (None while auth is off); a missing or unknown token is
        refused as etcd refuses it."""
        frontend = self.frontend
        if not frontend.auth().enabled:
            return None
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "token":
                token = value
        frontend.now_ms = now_ms()
        user, error = frontend.user_of_token(token)
        if error is not None:
            await context.abort(grpc_status(error.code), error.message)
        return user

    async def _allow(self, context, allowed: bool) -> None:
        if not allowed:
            code, message = PERMISSION_DENIED_ERR
            await context.abort(grpc_status(code), message)

    # -- KV -----------------------------------------------------------------------------------

    async def Range(self, request, context):
        user = await self._user(context)
        await self._allow(context, self.frontend.permitted(user, request.key, request.range_end,
                                                           False))
        return await self.listener.call(self.frontend.range, request, context)

    async def Put(self, request, context):
        user = await self._user(context)
        await self._allow(context, self.frontend.permitted(user, request.key, b"", True))
        return await self.listener.call(self.frontend.put, request, context)

    async def DeleteRange(self, request, context):
        user = await self._user(context)
        await self._allow(context, self.frontend.permitted(user, request.key, request.range_end,
                                                           True))
        return await self.listener.call(self.frontend.delete_range, request, context)

    async def Txn(self, request, context):
        user = await self._user(context)
        await self._allow(context, self.frontend.txn_permitted(user, request))
        return await self.listener.call(self.frontend.txn, request, context)

    async def Compact(self, request, context):
        await self._user(context)
        return await self.listener.call(self.frontend.compact, request, context)

    # -- Watch --------------------------------------------------------------------------------

    async def Watch(self, request_iterator, context):
        listener = self.listener
        user = await self._user(context)
        stream_id, queue = listener.open_stream(client=context.peer())
        reader = asyncio.create_task(self._read_watch_requests(stream_id, request_iterator,
                                                               queue, user))
        try:
            while True:
                response = await queue.get()
                if response is None:
                    return
                yield response
        finally:
            reader.cancel()
            listener.close_stream(stream_id)

    async def _read_watch_requests(self, stream_id, request_iterator, queue, user) -> None:
        frontend = self.frontend
        next_ids = itertools.count(0)
        try:
            async for request in request_iterator:
                which = request.WhichOneof("request_union")
                if which == "create_request":
                    create = request.create_request
                    if not frontend.permitted(user, create.key, create.range_end, False):
                        queue.put_nowait(rpc_pb2.WatchResponse(
                            header=frontend.header(), watch_id=-1, created=True, canceled=True,
                            cancel_reason=PERMISSION_DENIED_ERR[1]))
                        continue
                    watch_id = create.watch_id
                    if not watch_id:
                        watch_id = next(next_ids)
                        while (stream_id, watch_id) in frontend.watchers:
                            watch_id = next(next_ids)
                    frontend.watch(stream_id, create, watch_id)
                elif which == "cancel_request":
                    frontend.cancel_watch(stream_id, request.cancel_request.watch_id)
                elif which == "progress_request":
                    frontend.progress(stream_id)
                self.listener.deliver()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a broken stream ends only itself
            log.info("etcd watch stream ended", stream=stream_id, error=repr(error))
        if stream_id in self.listener.streams:
            queue.put_nowait(None)

    # -- Lease --------------------------------------------------------------------------------

    async def LeaseGrant(self, request, context):
        await self._user(context)
        return await self.listener.call(self.frontend.lease_grant, request, context)

    async def LeaseRevoke(self, request, context):
        await self._user(context)
        return await self.listener.call(self.frontend.lease_revoke, request, context)

    async def LeaseKeepAlive(self, request_iterator, context):
        async for request in request_iterator:
            yield self.frontend.lease_keep_alive(request.ID, now_ms())

    async def LeaseTimeToLive(self, request, context):
        return self.frontend.lease_time_to_live(request, now_ms())

    async def LeaseLeases(self, request, context):
        return self.frontend.leases()

    # -- Cluster and Maintenance --------------------------------------------------------------

    async def MemberList(self, request, context):
        return rpc_pb2.MemberListResponse(header=self.frontend.header(),
                                          members=self.listener.server.etcd_members())

    async def MemberAdd(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "zkpy: members join by ZooKeeper's reconfig, not etcd's member add")

    async def MemberRemove(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "zkpy: members leave by ZooKeeper's reconfig, not etcd's member remove")

    async def MemberUpdate(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "zkpy: member addresses change by ZooKeeper's reconfig")

    async def MemberPromote(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "zkpy: no etcd learners")

    async def Status(self, request, context):
        server = self.listener.server
        revision = self.frontend.index.revision
        return rpc_pb2.StatusResponse(
            header=self.frontend.header(), version=ETCD_API_VERSION,
            dbSize=server.etcd_db_size_bytes(), dbSizeInUse=server.etcd_db_size_bytes(),
            leader=server.etcd_leader_id(), raftIndex=revision, raftTerm=self.frontend.term(),
            raftAppliedIndex=revision)

    async def Alarm(self, request, context):
        return rpc_pb2.AlarmResponse(header=self.frontend.header())

    async def Defragment(self, request, context):
        return rpc_pb2.DefragmentResponse(header=self.frontend.header())

    async def Hash(self, request, context):
        return rpc_pb2.HashResponse(header=self.frontend.header(), hash=self.frontend.hash_kv(0))

    async def HashKV(self, request, context):
        frontend = self.frontend
        return rpc_pb2.HashKVResponse(header=frontend.header(),
                                      hash=frontend.hash_kv(request.revision),
                                      compact_revision=frontend.index.compact_revision)

    async def Snapshot(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "zkpy: take snapshots with ZooKeeper's tools (zkpy export)")

    async def MoveLeader(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "zkpy: ZAB elects the leader")

    # -- Auth ---------------------------------------------------------------------------------

    async def Authenticate(self, request, context):
        self.frontend.now_ms = now_ms()
        outcome = self.frontend.authenticate(request)
        if isinstance(outcome, EtcdError):
            log.info("etcd authentication failed", user=request.name, client=context.peer())
            await context.abort(grpc_status(outcome.code), outcome.message)
        return outcome

    async def _auth_rpc(self, op: str, request, context):
        """Auth administration: root only once auth is on."""
        frontend = self.frontend
        if op != "AuthStatus":
            user = await self._user(context)
            await self._allow(context, user is None or frontend.auth().users.get(user) is not None
                              and "root" in frontend.auth().users[user].roles)
        if op in auth_plans.READS:
            outcome = frontend.auth_read(op, request)
            if isinstance(outcome, EtcdError):
                await context.abort(grpc_status(outcome.code), outcome.message)
            return outcome
        return await self.listener.call(
            lambda token, body: frontend.auth_change(token, op, body), request, context)

    async def AuthEnable(self, request, context):
        return await self._auth_rpc("AuthEnable", request, context)

    async def AuthDisable(self, request, context):
        return await self._auth_rpc("AuthDisable", request, context)

    async def AuthStatus(self, request, context):
        return await self._auth_rpc("AuthStatus", request, context)

    async def UserAdd(self, request, context):
        return await self._auth_rpc("UserAdd", request, context)

    async def UserGet(self, request, context):
        return await self._auth_rpc("UserGet", request, context)

    async def UserList(self, request, context):
        return await self._auth_rpc("UserList", request, context)

    async def UserDelete(self, request, context):
        return await self._auth_rpc("UserDelete", request, context)

    async def UserChangePassword(self, request, context):
        return await self._auth_rpc("UserChangePassword", request, context)

    async def UserGrantRole(self, request, context):
        return await self._auth_rpc("UserGrantRole", request, context)

    async def UserRevokeRole(self, request, context):
        return await self._auth_rpc("UserRevokeRole", request, context)

    async def RoleAdd(self, request, context):
        return await self._auth_rpc("RoleAdd", request, context)

    async def RoleGet(self, request, context):
        return await self._auth_rpc("RoleGet", request, context)

    async def RoleList(self, request, context):
        return await self._auth_rpc("RoleList", request, context)

    async def RoleDelete(self, request, context):
        return await self._auth_rpc("RoleDelete", request, context)

    async def RoleGrantPermission(self, request, context):
        return await self._auth_rpc("RoleGrantPermission", request, context)

    async def RoleRevokePermission(self, request, context):
        return await self._auth_rpc("RoleRevokePermission", request, context)

    # -- Lock and Election --------------------------------------------------------------------

    async def Lock(self, request, context):
        return await self.listener.recipes.lock(request, context)

    async def Unlock(self, request, context):
        return await self.listener.recipes.unlock(request, context)

    async def Campaign(self, request, context):
        return await self.listener.recipes.campaign(request, context)

    async def Proclaim(self, request, context):
        return await self.listener.recipes.proclaim(request, context)

    async def Leader(self, request, context):
        return await self.listener.recipes.leader(request, context)

    async def Observe(self, request, context):
        async for response in self.listener.recipes.observe(request, context):
            yield response

    async def Resign(self, request, context):
        return await self.listener.recipes.resign(request, context)

