"""Port unification: HTTP and HTTPS on one listening port (ZooKeeper's admin.portUnification).

As ZooKeeper's UnifiedConnectionFactory does for Jetty, the first byte a client sends decides:
22, the first byte of a TLS record carrying a handshake, starts TLS on the connection; anything
else is plain HTTP. The byte is peeked (MSG_PEEK), never consumed, so the TLS layer or the HTTP
parser reads the connection from its first byte; the accepted socket is then handed to the
event loop with or without TLS (``loop.connect_accepted_socket``) and served by the same
protocol as the endpoint's other connections.

A client that sends nothing within the idle timeout is closed, and so is a new connection while
as many as the endpoint serves at once are still waiting for their first byte.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import structlog

log = structlog.get_logger("zkpy.http")

TLS_HANDSHAKE_RECORD = b"\x16"
ACCEPT_RETRY_DELAY_S = 1.0


class UnifiedListener:
    """Accepts on (host, port) and serves each connection over HTTP or HTTPS by its first byte."""

    def __init__(self, protocol_factory, tls_context: ssl.SSLContext, handshake_timeout_s: float,
                 first_byte_timeout_s: float, max_pending: int, name: str) -> None:
        self.protocol_factory = protocol_factory
        self.tls_context = tls_context
        self.handshake_timeout_s = handshake_timeout_s
        self.first_byte_timeout_s = first_byte_timeout_s
        self.max_pending = max_pending
        self.name = name
        self._socket: socket.socket | None = None
        self._accepting: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1] if self._socket is not None else 0

    async def start(self, host: str, port: int, backlog: int) -> None:
        loop = asyncio.get_running_loop()
        family, kind, proto, _, address = (await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))[0]
        listening = socket.socket(family, kind, proto)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.bind(address)
            listening.listen(backlog)
            listening.setblocking(False)
        except OSError:
            listening.close()
            raise
        self._socket = listening
        self._accepting = loop.create_task(self._accept_forever())

    def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._pending):
            task.cancel()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, address = await loop.sock_accept(self._socket)
            except OSError as error:
                # Out of file descriptors, say: keep the port and try again shortly, as
                # asyncio's own servers do, rather than stop accepting for good.
                log.warning("http: accept failed; retrying", endpoint=self.name, error=repr(error))
                await asyncio.sleep(ACCEPT_RETRY_DELAY_S)
                continue
            if len(self._pending) >= self.max_pending:
                log.warning("http: too many connections waiting to be classified; closing",
                            endpoint=self.name, client=address[0], limit=self.max_pending)
                connection.close()
                continue
            task = loop.create_task(self._serve(connection, address))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, connection: socket.socket, address) -> None:
        loop = asyncio.get_running_loop()
        try:
            first = await self._peek_first_byte(loop, connection)
            if not first:  # closed before saying anything
                connection.close()
                return
            secure = first == TLS_HANDSHAKE_RECORD
            await loop.connect_accepted_socket(
                self.protocol_factory, connection, ssl=self.tls_context if secure else None,
                ssl_handshake_timeout=self.handshake_timeout_s if secure else None)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as error:
            # A silent client, or a TLS handshake that failed: nothing was served.
            log.debug("http: connection dropped before a request", endpoint=self.name,
                      client=address[0], error=repr(error))
            connection.close()
        except asyncio.CancelledError:
            connection.close()
            raise

    async def _peek_first_byte(self, loop, connection: socket.socket) -> bytes:
        readable = loop.create_future()
        descriptor = connection.fileno()
        loop.add_reader(descriptor, lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, self.first_byte_timeout_s)
        finally:
            loop.remove_reader(descriptor)
        return connection.recv(1, socket.MSG_PEEK)
