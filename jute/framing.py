"""Length-prefixed frames: every Jute packet is an int32 length followed by that many bytes.

``FrameDecoder`` is sans-IO: feed it bytes as they arrive, take whole frames out. It holds at
most one partial frame plus what one ``feed`` brought, and refuses (``FrameTooLarge``) a length
prefix that is negative or above ``max_frame_bytes`` before buffering any of the frame, as
ZooKeeper's server does with ``jute.maxbuffer`` ("Len error").
"""

from __future__ import annotations

import struct

from jute.constants import MAX_BUFFER_BYTES_DEFAULT
from jute.errors import FrameTooLarge

_LENGTH = struct.Struct(">i")


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    return _LENGTH.pack(len(payload)) + payload


class FrameDecoder:
    """Splits a byte stream into frames, checking each length against the limit."""

    __slots__ = ("max_frame_bytes", "_buffer")

    def __init__(self, max_frame_bytes: int = MAX_BUFFER_BYTES_DEFAULT) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = b""

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def pending(self) -> bytes:
        """The bytes of the frame not yet complete (a caller may look at its first bytes before
        deciding how to read the stream, as the four-letter-word check does)."""
        return self._buffer

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frames now complete, in order.

        Raises ``FrameTooLarge`` on a bad length; the caller must then close the connection, as
        the stream can no longer be resynchronised.
        """
        buffer = self._buffer + data if self._buffer else data
        frames = []
        offset = 0
        available = len(buffer)
        limit = self.max_frame_bytes
        while available - offset >= 4:
            length = _LENGTH.unpack_from(buffer, offset)[0]
            if length < 0 or length > limit:
                self._buffer = b""
                raise FrameTooLarge(length, limit)
            end = offset + 4 + length
            if end > available:
                break
            frames.append(buffer[offset + 4:end])
            offset = end
        self._buffer = buffer[offset:] if offset < available else b""
        return frames
