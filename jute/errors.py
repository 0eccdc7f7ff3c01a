"""Errors raised by the Jute codec.

Every decoding failure is a ``JuteDecodeError``: a truncated record, a length that is negative
(other than the -1 that Jute uses for null) or larger than what is left of the frame, invalid
UTF-8, or an element count that could not possibly fit. The codec never allocates on the word of
a length it has not checked against the bytes actually present.
"""


class JuteError(ValueError):
    """Base class of every codec error."""


class JuteDecodeError(JuteError):
    """The bytes do not hold a well-formed record."""


class FrameTooLarge(JuteError):
    """A frame's length prefix is negative or above ``jute.maxbuffer``."""

    def __init__(self, length: int, max_frame_bytes: int) -> None:
        super().__init__(f"frame length {length} outside [0, {max_frame_bytes}]")
        self.length = length
        self.max_frame_bytes = max_frame_bytes
