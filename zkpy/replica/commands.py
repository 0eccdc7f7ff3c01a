"""The bodies of ZooKeeper commands: Jute bytes to the decoded record, and back.

A front end decodes a client's request body once (``decode_body``); from there on the command
travels as a ``Request`` holding the record. A follower that forwards a write to its leader
hands the peer encoding the record, and the encoding turns it back into bytes
(``encode_body``) for the link: the replica core never sees bytes. The common writes take
txncodec's fast decoders, which share their records' ACL tuples.
"""

from __future__ import annotations

import struct

from jute import OpCode
from jute.opcodes import (MULTI_READ_OPS, MULTI_WRITE_OPS, REQUEST_RECORDS, decode_multi_request,
                          encode_multi_request)

from zkpy.tree.txncodec import (decode_create_request, decode_create_request_from,
                                decode_set_data_request)

_TIMEOUT = struct.Struct(">i")
_CREATE_SESSION = int(OpCode.createSession)
_MULTI = int(OpCode.multi)
_MULTI_READ = int(OpCode.multiRead)
_SET_DATA = int(OpCode.setData)
# The requests whose body is a CreateRequest, decoded by txncodec's fast path.
_CREATE_REQUESTS = frozenset(map(int, (OpCode.create, OpCode.create2, OpCode.createContainer)))
_MULTI_DECODERS = {int(OpCode.create): decode_create_request_from,
                   int(OpCode.create2): decode_create_request_from}
# Operations without a body: the header says everything.
NO_BODY_OPS = frozenset(map(int, (OpCode.ping, OpCode.closeSession, OpCode.whoAmI)))


def decode_client_body(op_type: int, buf: bytes, offset: int):
    """``decode_body`` for a request a client sent: createSession is the server's own command
    (a client opens a session with its handshake), so it is as unknown as any other opcode
    ZooKeeper's clients may not send."""
    if op_type == _CREATE_SESSION:
        raise KeyError(op_type)
    return decode_body(op_type, buf, offset)


def decode_body(op_type: int, buf: bytes, offset: int):
    """The body of a ``op_type`` command at ``offset`` of ``buf``. Raises KeyError for an
    opcode ZooKeeper does not have and JuteDecodeError for a body that does not parse."""
    if op_type in NO_BODY_OPS:
        return None
    if op_type in _CREATE_REQUESTS:
        return decode_create_request(buf, offset)
    if op_type == _SET_DATA:
        return decode_set_data_request(buf, offset)
    if op_type == _MULTI:
        return decode_multi_request(buf, offset, MULTI_WRITE_OPS, _MULTI_DECODERS)
    if op_type == _MULTI_READ:
        return decode_multi_request(buf, offset, MULTI_READ_OPS)
    if op_type == _CREATE_SESSION:
        return _TIMEOUT.unpack_from(buf, offset)[0]
    return REQUEST_RECORDS[op_type].decode_from(buf, offset)[0]


def encode_body(op_type: int, body) -> bytes:
    """The Jute bytes of a command's body, as ``decode_body`` reads them back."""
    if op_type in NO_BODY_OPS or body is None:
        return b""
    if op_type == _CREATE_SESSION:
        return _TIMEOUT.pack(body)
    if op_type == _MULTI or op_type == _MULTI_READ:
        return encode_multi_request(body)
    return REQUEST_RECORDS[op_type].encode(body)
