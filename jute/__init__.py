"""Jute, ZooKeeper's wire protocol: records, codecs, framing and constants.

This package never imports zkpy: it is the protocol alone, usable by clients and tools.
"""

from jute.constants import (
    AddWatchMode, CreateMode, Err, EventType, KeeperState, MAX_BUFFER_BYTES_DEFAULT, OpCode,
    Perms, WatcherType, Xid,
)
from jute.errors import FrameTooLarge, JuteDecodeError, JuteError
from jute.framing import FrameDecoder, frame
from jute import records
from jute.opcodes import REQUEST_RECORDS, RESPONSE_RECORDS, TXN_RECORDS

__all__ = [
    "AddWatchMode", "CreateMode", "Err", "EventType", "KeeperState", "MAX_BUFFER_BYTES_DEFAULT",
    "OpCode", "Perms", "WatcherType", "Xid", "FrameTooLarge", "JuteDecodeError", "JuteError",
    "FrameDecoder", "frame", "records", "REQUEST_RECORDS", "RESPONSE_RECORDS", "TXN_RECORDS",
]
