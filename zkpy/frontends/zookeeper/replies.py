"""The ZooKeeper client protocol's replies: framing, and the bodies of write results."""

from __future__ import annotations

import struct

from jute import OpCode
from jute import records as r
from jute.opcodes import MultiResult, encode_multi_result

from zkpy.tree.datatree import TxnResult

_REPLY_HEADER = struct.Struct(">iqi")
_LENGTH = struct.Struct(">i")
_MULTI = int(OpCode.multi)
_OP_CREATE = int(OpCode.create)
_OP_CREATE2 = int(OpCode.create2)
_OP_CREATE_CONTAINER = int(OpCode.createContainer)
_OP_CREATE_TTL = int(OpCode.createTTL)
_OP_ERROR = int(OpCode.error)
_OP_SET_ACL = int(OpCode.setACL)
_OP_SET_DATA = int(OpCode.setData)
_CREATE2_REPLIES = frozenset((_OP_CREATE2, _OP_CREATE_CONTAINER, _OP_CREATE_TTL))


def reply_frame(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    payload_length = 16 + len(body)
    return _LENGTH.pack(payload_length) + _REPLY_HEADER.pack(xid, zxid, err) + body


def connect_response(session_id: int, timeout_ms: int, passwd: bytes, read_only: bool = False) -> bytes:
    body = r.ConnectResponse.encode(r.ConnectResponse(0, timeout_ms, session_id, passwd, read_only))
    return _LENGTH.pack(len(body)) + body


def write_body(op_type: int, result: TxnResult) -> bytes:
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
