"""Which record follows the header of each opcode, and the multi encodings.

A multi request is a sequence of (MultiHeader, op request) pairs closed by
``MultiHeader(type=-1, done=True, err=-1)``; its response is a sequence of
(MultiHeader, op result) pairs closed the same way. Op results: create gives CreateResponse,
create2/createTTL/createContainer give Create2Response (ZooKeeper reports all three as type
create2), delete and check give nothing, setData gives SetDataResponse, getData and getChildren
(multiRead) give their responses, and a failed op is ``MultiHeader(error, False, code)`` then
ErrorResponse(code).
"""

from __future__ import annotations

from typing import NamedTuple

from jute import records as r
from jute.constants import OpCode
from jute.errors import JuteDecodeError

REQUEST_RECORDS: dict[int, type] = {
    OpCode.create: r.CreateRequest,
    OpCode.create2: r.CreateRequest,
    OpCode.createContainer: r.CreateRequest,
    OpCode.createTTL: r.CreateTTLRequest,
    OpCode.delete: r.DeleteRequest,
    OpCode.deleteContainer: r.DeleteRequest,
    OpCode.exists: r.ExistsRequest,
    OpCode.getData: r.GetDataRequest,
    OpCode.setData: r.SetDataRequest,
    OpCode.getACL: r.GetACLRequest,
    OpCode.setACL: r.SetACLRequest,
    OpCode.getChildren: r.GetChildrenRequest,
    OpCode.getChildren2: r.GetChildren2Request,
    OpCode.sync: r.SyncRequest,
    OpCode.check: r.CheckVersionRequest,
    OpCode.reconfig: r.ReconfigRequest,
    OpCode.checkWatches: r.CheckWatchesRequest,
    OpCode.removeWatches: r.RemoveWatchesRequest,
    OpCode.auth: r.AuthPacket,
    OpCode.setWatches: r.SetWatches,
    OpCode.setWatches2: r.SetWatches2,
    OpCode.sasl: r.GetSASLRequest,
    OpCode.getEphemerals: r.GetEphemeralsRequest,
    OpCode.getAllChildrenNumber: r.GetAllChildrenNumberRequest,
    OpCode.addWatch: r.AddWatchRequest,
}
"""Request body record per opcode; opcodes absent here (ping, closeSession, whoAmI, multi,
multiRead) carry no body or are decoded by ``decode_multi_request``."""

RESPONSE_RECORDS: dict[int, type | None] = {
    OpCode.create: r.CreateResponse,
    OpCode.create2: r.Create2Response,
    OpCode.createContainer: r.Create2Response,
    OpCode.createTTL: r.Create2Response,
    OpCode.delete: None,
    OpCode.deleteContainer: None,
    OpCode.exists: r.ExistsResponse,
    OpCode.getData: r.GetDataResponse,
    OpCode.setData: r.SetDataResponse,
    OpCode.getACL: r.GetACLResponse,
    OpCode.setACL: r.SetACLResponse,
    OpCode.getChildren: r.GetChildrenResponse,
    OpCode.getChildren2: r.GetChildren2Response,
    OpCode.sync: r.SyncResponse,
    OpCode.check: None,
    OpCode.reconfig: r.GetDataResponse,
    OpCode.checkWatches: None,
    OpCode.removeWatches: None,
    OpCode.setWatches: None,
    OpCode.setWatches2: None,
    OpCode.sasl: r.SetSASLResponse,
    OpCode.getEphemerals: r.GetEphemeralsResponse,
    OpCode.getAllChildrenNumber: r.GetAllChildrenNumberResponse,
    OpCode.addWatch: r.ErrorResponse,  # ZooKeeper answers addWatch with ErrorResponse(0)
    OpCode.whoAmI: r.WhoAmIResponse,
    OpCode.ping: None,
    OpCode.closeSession: None,
}

TXN_RECORDS: dict[int, type] = {
    OpCode.create: r.CreateTxn,
    OpCode.create2: r.CreateTxn,
    OpCode.createContainer: r.CreateContainerTxn,
    OpCode.createTTL: r.CreateTTLTxn,
    OpCode.delete: r.DeleteTxn,
    OpCode.deleteContainer: r.DeleteTxn,
    OpCode.setData: r.SetDataTxn,
    OpCode.setACL: r.SetACLTxn,
    OpCode.check: r.CheckVersionTxn,
    OpCode.createSession: r.CreateSessionTxn,
    OpCode.closeSession: r.CloseSessionTxn,
    OpCode.error: r.ErrorTxn,
    OpCode.multi: r.MultiTxn,
    OpCode.reconfig: r.SetDataTxn,  # the new /zookeeper/config text
}

MULTI_OP_RECORDS: dict[int, type] = {
    OpCode.create: r.CreateRequest,
    OpCode.create2: r.CreateRequest,
    OpCode.createContainer: r.CreateRequest,
    OpCode.createTTL: r.CreateTTLRequest,
    OpCode.delete: r.DeleteRequest,
    OpCode.setData: r.SetDataRequest,
    OpCode.check: r.CheckVersionRequest,
    OpCode.getChildren: r.GetChildrenRequest,
    OpCode.getData: r.GetDataRequest,
}

MULTI_WRITE_OPS = frozenset((OpCode.create, OpCode.create2, OpCode.createContainer,
                             OpCode.createTTL, OpCode.delete, OpCode.setData, OpCode.check))
MULTI_READ_OPS = frozenset((OpCode.getChildren, OpCode.getData))
MAX_MULTI_OPS = 100_000
_END = r.MultiHeader.encode(r.MultiHeader(-1, True, -1))


class MultiOp(NamedTuple):
    """One operation of a multi or multiRead request."""

    type: int
    request: tuple


class MultiResult(NamedTuple):
    """One result of a multi: ``type`` is the op's result type or OpCode.error."""

    type: int
    err: int
    response: tuple | None


def decode_multi_request(buf: bytes, off: int = 0, allowed: frozenset | None = None,
                         decoders: dict | None = None) -> list[MultiOp]:
    """Decode the ops of a multi/multiRead body; unknown op types are an error, and so are
    types outside ``allowed`` (a multi takes only writes, a multiRead only reads).
    ``decoders``: op type -> ``decode_from(buf, off) -> (record, end)`` to use instead of the
    generic record's (a faster one that gives the same records and raises the same errors)."""
    ops: list[MultiOp] = []
    while True:
        header, off = r.MultiHeader.decode_from(buf, off)
        if header.done:
            return ops
        record = MULTI_OP_RECORDS.get(header.type)
        if record is None or (allowed is not None and header.type not in allowed):
            raise JuteDecodeError(f"invalid op type {header.type} in multi")
        if len(ops) >= MAX_MULTI_OPS:
            raise JuteDecodeError("too many ops in multi")
        decode_from = decoders.get(header.type) if decoders else None
        request, off = (decode_from or record.decode_from)(buf, off)
        ops.append(MultiOp(header.type, request))


def encode_multi_request(ops: list[MultiOp]) -> bytes:
    parts = []
    for op in ops:
        parts.append(r.MultiHeader.encode(r.MultiHeader(op.type, False, -1)))
        parts.append(MULTI_OP_RECORDS[op.type].encode(op.request))
    parts.append(_END)
    return b"".join(parts)


_RESULT_RECORDS: dict[int, type | None] = {
    OpCode.create: r.CreateResponse,
    OpCode.create2: r.Create2Response,
    OpCode.delete: None,
    OpCode.check: None,
    OpCode.setData: r.SetDataResponse,
    OpCode.getChildren: r.GetChildrenResponse,
    OpCode.getData: r.GetDataResponse,
    OpCode.error: r.ErrorResponse,
}


def encode_multi_response(results: list[MultiResult]) -> bytes:
    parts = [encode_multi_result(result) for result in results]
    parts.append(_END)
    return b"".join(parts)


def encode_multi_result(result: MultiResult) -> bytes:
    """One result of a multi response (``encode_multi_response`` without the end marker)."""
    header = r.MultiHeader.encode(r.MultiHeader(result.type, False, result.err))
    record = _RESULT_RECORDS[result.type]
    return header if record is None else header + record.encode(result.response)


def decode_multi_response(buf: bytes, off: int = 0) -> list[MultiResult]:
    results: list[MultiResult] = []
    while True:
        header, off = r.MultiHeader.decode_from(buf, off)
        if header.done:
            return results
        if header.type not in _RESULT_RECORDS:
            raise JuteDecodeError(f"invalid result type {header.type} in multi response")
        record = _RESULT_RECORDS[header.type]
        response = None
        if record is not None:
            response, off = record.decode_from(buf, off)
        results.append(MultiResult(header.type, header.err, response))
