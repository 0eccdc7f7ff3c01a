"""The client side of one TCP connection, as a sans-IO state machine.

Bytes go in with ``receive_data``; events come out. No sockets, no asyncio: the runtime moves
bytes and hands the events to the core. States:

* AWAIT_CONNECT: the first four bytes are either a four-letter word (``FourLetterWord``, after
  which the connection is closed) or the length of a ConnectRequest (``Connect``);
* ESTABLISHED: each frame is a RequestHeader and a body (``Request``);
* CLOSED: a protocol error happened (``ProtocolError`` was raised); nothing more is accepted.

Every frame length is checked against ``max_frame_bytes`` (jute.maxbuffer) before buffering.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from jute import records as r
from jute.errors import FrameTooLarge, JuteDecodeError
from jute.framing import FrameDecoder

FOUR_LETTER_WORDS = frozenset((
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi", "wchs", "wchc",
    "wchp", "dump", "dirs", "isro", "gtmk", "stmk",
))
_WORD_BY_INT = {struct.unpack(">i", w.encode())[0]: w for w in FOUR_LETTER_WORDS}
_HEADER = struct.Struct(">ii")

AWAIT_CONNECT = "await-connect"
ESTABLISHED = "established"
CLOSED = "closed"


class Connect(NamedTuple):
    request: r.ConnectRequest


class Request(NamedTuple):
    xid: int
    type: int
    payload: bytes  # the whole frame, header included; the body starts at offset 8


class FourLetterWord(NamedTuple):
    word: str


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must be closed."""


class ClientConnection:
    __slots__ = ("state", "_frames")

    def __init__(self, max_frame_bytes: int) -> None:
        self.state = AWAIT_CONNECT
        self._frames = FrameDecoder(max_frame_bytes)

    @property
    def buffered_bytes(self) -> int:
        return self._frames.pending_bytes

    def receive_data(self, data: bytes) -> list:
        if self.state == CLOSED:
            raise ProtocolError("data after close")
        if self.state == AWAIT_CONNECT:
            return self._receive_first(data)
        try:
            frames = self._frames.feed(data)
        except FrameTooLarge as error:
            self.state = CLOSED
            raise ProtocolError(f"Len error {error.length}") from error
        events = []
        unpack = _HEADER.unpack_from
        for frame in frames:
            if len(frame) < 8:
                self.state = CLOSED
                raise ProtocolError(f"request of {len(frame)} bytes has no header")
            xid, op_type = unpack(frame)
            events.append(Request(xid, op_type, frame))
        return events

    def _receive_first(self, data: bytes) -> list:
        buffered = self._frames.pending_bytes
        if buffered < 4 and buffered + len(data) >= 4:
            head = (self._frames.pending() + data)[:4]
            word = _WORD_BY_INT.get(struct.unpack(">i", head)[0])
            if word is not None:
                self.state = CLOSED
                return [FourLetterWord(word)]
        try:
            frames = self._frames.feed(data)
        except FrameTooLarge as error:
            self.state = CLOSED
            raise ProtocolError(f"Len error {error.length}") from error
        if not frames:
            return []
        try:
            connect = r.ConnectRequest.decode_from(frames[0], 0)[0]
        except JuteDecodeError as error:
            self.state = CLOSED
            raise ProtocolError(f"bad ConnectRequest: {error}") from error
        self.state = ESTABLISHED
        events: list = [Connect(connect)]
        rest = frames[1:]
        for frame in rest:
            if len(frame) < 8:
                self.state = CLOSED
                raise ProtocolError(f"request of {len(frame)} bytes has no header")
            xid, op_type = _HEADER.unpack_from(frame)
            events.append(Request(xid, op_type, frame))
        return events
