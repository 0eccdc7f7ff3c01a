"""TCP links between ensemble members.

Each member sends to a peer over its own outgoing connection (to the peer's quorum port, or
election port for votes) and receives on connections the peer opened. A link preserves order
(TCP); when it breaks, whatever was queued on it is dropped and the owner is told
(``on_lost``), so the ZAB peer knows a message may have been lost, exactly as a broken socket
tells ZooKeeper. Queues are bounded: a peer that stops reading loses its link.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Callable

import structlog

from jute.errors import JuteDecodeError
from zkpy.zab.wire import decode_hello, decode_message, encode_message, hello

BATCH_BYTES = 1 << 20  # the most one write to a peer gathers from the queue

log = structlog.get_logger("zkpy.peers")

MAX_QUEUED_MESSAGES = 200_000
MAX_PEER_FRAME_BYTES = 512 << 20
RECONNECT_DELAY_S = 0.2
_LENGTH = struct.Struct(">i")


class OutgoingLink:
    """Our connection to one peer: queue, connect, write; report breaks."""

    def __init__(self, my_id: int, peer_id: int, host: str, port: int,
                 on_lost: Callable[[int, bool], None], purpose: str, my_address: str = "",
                 ssl_context=None) -> None:
        self.my_id = my_id
        self.ssl_context = ssl_context
        self.my_address = my_address
        self.peer_id = peer_id
        self.host = host
        self.port = port
        self.on_lost = on_lost
        self.purpose = purpose
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.connected = False

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def send(self, message) -> None:
        if self.queue.qsize() >= MAX_QUEUED_MESSAGES:
            log.warning("peer link queue full; dropping the link", peer=self.peer_id, purpose=self.purpose)
            self._drop_queue()
            self.on_lost(self.peer_id, False)
            return
        self.queue.put_nowait(message)

    def _drop_queue(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def _run(self) -> None:
        while True:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, ssl=self.ssl_context,
                                            server_hostname=self.host if self.ssl_context else None),
                    timeout=2.0)
                writer.write(hello(self.my_id, self.my_address))
                self.connected = True
                log.info("connected to peer", peer=self.peer_id, purpose=self.purpose)
                # The peer never writes on this connection: a read that ends means it is gone
                # (e.g. the peer was killed). Without this the first messages after its restart
                # went into the dead socket and were lost without a word.
                closed = asyncio.ensure_future(reader.read(1))
                getter = None
                try:
                    while True:
                        if self.queue.empty():
                            getter = asyncio.ensure_future(self.queue.get())
                            await asyncio.wait((getter, closed), return_when=asyncio.FIRST_COMPLETED)
                            if closed.done():
                                getter.cancel()
                                raise ConnectionResetError("connection closed by the peer")
                            message = getter.result()
                        else:
                            message = self.queue.get_nowait()
                        writer.write(self._encode_queued(message))
                        await writer.drain()
                finally:
                    if getter is not None and not getter.done():
                        getter.cancel()
                    closed.cancel()
                    if closed.done() and not closed.cancelled():
                        closed.exception()  # retrieved: the loss is reported below
            except asyncio.CancelledError:
                if writer is not None:
                    writer.close()
                raise
            except (OSError, asyncio.TimeoutError, ConnectionError, RuntimeError) as error:
                # RuntimeError: uvloop refuses a write on a transport that an error has already
                # closed ("the handler is closed"). Uncaught, it ended this task silently and
                # the link stayed dead for good (messages queued, nothing sent, no loss told).
                if self.connected:
                    log.info("lost connection to peer", peer=self.peer_id, purpose=self.purpose,
                             error=str(error) or type(error).__name__)
            except Exception:  # noqa: BLE001 - never let the link die silently
                log.exception("peer link failed; reconnecting", peer=self.peer_id, purpose=self.purpose)
            finally:
                if writer is not None:
                    writer.close()
            was_connected, self.connected = self.connected, False
            if was_connected:
                # Some of what was queued may have been written and some not: drop it all and
                # tell the peer, as a broken socket does. Before the first connection nothing
                # was written, so the queue waits for the link intact.
                self._drop_queue()
                self.on_lost(self.peer_id, False)
            await asyncio.sleep(RECONNECT_DELAY_S)

    def _encode_queued(self, first) -> bytes:
        """``first`` and what else is queued (up to about 1 MB) as one write: one send call
        for a loop turn's proposals and commits instead of one each."""
        data = encode_message(first)
        if self.queue.empty():
            return data
        parts = [data]
        size = len(data)
        queue = self.queue
        while size < BATCH_BYTES and not queue.empty():
            data = encode_message(queue.get_nowait())
            parts.append(data)
            size += len(data)
        return b"".join(parts)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def reset(self) -> None:
        """Drop the connection and what is queued on it, then connect afresh (no loss is
        reported: the owner asked for it)."""
        # A fresh queue: the old task (and a getter it may leave behind) must not take what
        # is sent on the new connection.
        self.queue = asyncio.Queue()
        if self.task is not None:
            self.task.cancel()
        self.connected = False
        self.task = asyncio.create_task(self._run())


class LinkSet:
    """Outgoing links to every other member and a listener for their incoming ones."""

    def __init__(self, my_id: int, addresses: dict[int, tuple[str, int]], purpose: str,
                 on_message: Callable[[int, object], None], on_lost: Callable[[int, bool], None],
                 report_loss: bool, server_ssl=None, client_ssl=None) -> None:
        self.my_id = my_id
        self.addresses = addresses
        self.purpose = purpose
        self.on_message = on_message
        self.report_loss = report_loss
        self._on_lost = on_lost
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        host, port = addresses[my_id]
        self.my_address = f"{host}:{port}"
        self.links = {sid: OutgoingLink(my_id, sid, host, port, self._lost, purpose, self.my_address,
                                        client_ssl)
                      for sid, (host, port) in addresses.items() if sid != my_id}
        self._started = False
        self.server: asyncio.AbstractServer | None = None
        self._incoming: set[asyncio.Task] = set()
        self._incoming_peers: dict[asyncio.Task, int] = {}
        self._reset_tasks: set[asyncio.Task] = set()

    def _lost(self, peer_id: int, incoming: bool) -> None:
        if self.report_loss:
            self._on_lost(peer_id, incoming)

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._accept, host, port, reuse_address=True,
                                                 ssl=self.server_ssl)
        self._started = True
        for link in self.links.values():
            link.start()

    def add_members(self, addresses: dict[int, tuple[str, int]]) -> None:
        """Membership changed (reconfig): link to new members. Links to removed members stay:
        as in ZooKeeper, a removed member keeps following, without a vote, until it restarts."""
        for sid, (host, port) in addresses.items():
            if sid != self.my_id and sid not in self.links:
                self._add_link(sid, host, port)

    def _add_link(self, sid: int, host: str, port: int) -> None:
        link = OutgoingLink(self.my_id, sid, host, port, self._lost, self.purpose, self.my_address,
                            self.client_ssl)
        self.links[sid] = link
        if self._started:
            link.start()

    def reset(self, peer_id: int, outgoing_only: bool = False) -> None:
        """Close our connection to ``peer_id`` now and start a fresh one (see
        OutgoingLink.reset), and unless ``outgoing_only`` the one it opened to us too."""
        link = self.links.get(peer_id)
        if link is not None and self._started:
            link.reset()
        if outgoing_only:
            return
        for task, sender in list(self._incoming_peers.items()):
            if sender == peer_id:
                self._reset_tasks.add(task)
                task.cancel()
        log.info("peer connections reset", peer=peer_id, purpose=self.purpose)

    def send(self, peer_id: int, message) -> None:
        link = self.links.get(peer_id)
        if link is not None:
            link.send(message)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_id = None
        task = asyncio.current_task()
        self._incoming.add(task)
        try:
            peer_id, address = decode_hello(await self._read_frame(reader, 4096))
            self._incoming_peers[task] = peer_id
            if peer_id not in self.links:
                host, _, port = address.rpartition(":")
                if peer_id == self.my_id or not host or not port.isdigit():
                    log.warning("connection from an unknown server id; closing", peer=peer_id,
                                purpose=self.purpose)
                    return
                # A server not (yet) in our configuration, e.g. one joining by reconfig: it
                # may follow without a vote, so we talk back to the address it gave.
                log.info("link from a server outside the configuration", peer=peer_id,
                         address=address, purpose=self.purpose)
                self._add_link(peer_id, host, int(port))
            while True:
                frame = await self._read_frame(reader, MAX_PEER_FRAME_BYTES)
                self.on_message(peer_id, decode_message(frame))
        except asyncio.CancelledError:
            raise
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except JuteDecodeError as error:
            log.warning("bad frame from peer; closing", peer=peer_id, purpose=self.purpose,
                        error=str(error))
        finally:
            writer.close()
            self._incoming.discard(task)
            self._incoming_peers.pop(task, None)
            reset = task in self._reset_tasks
            self._reset_tasks.discard(task)
            if peer_id in self.links and not reset:
                self._lost(peer_id, True)

    @staticmethod
    async def _read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
        length = _LENGTH.unpack(await reader.readexactly(4))[0]
        if length < 0 or length > limit:
            raise JuteDecodeError(f"peer frame length {length} out of range")
        return await reader.readexactly(length)

    def stop(self) -> None:
        for link in self.links.values():
            link.stop()
        for task in list(self._incoming):
            task.cancel()
        if self.server is not None:
            self.server.close()
