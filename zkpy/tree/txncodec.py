"""Decoding the sub-txns of a multi on the apply path, with a fast path for creates.

A bulk load (and the replay of one) applies millions of CreateTxn records that nearly all
carry the same ACL list. The generic codec decodes that list, its ACL and Id records and two
strings for every create; here the raw bytes of the few ACL lists seen last are remembered,
and a create whose ACL bytes start with one of them takes the remembered (immutable) value.
The Jute encoding of a vector is self-delimiting, so bytes that begin with a complete known
encoding decode to exactly that value. Anything unusual (null or odd lengths, a new ACL,
trailing bytes) goes through the generic codec, which also raises the errors.
"""

from __future__ import annotations

import struct

from jute import OpCode
from jute import records as r
from jute.opcodes import TXN_RECORDS

_LENGTH = struct.Struct(">i")
_TAIL = struct.Struct(">?i")  # CreateTxn's ephemeral flag and parent_cversion
_ACL_VECTOR_MEMO_LIMIT = 16  # distinct ACL lists remembered; a miss scans them all
_acl_memo: list[tuple[bytes, tuple]] = []  # (raw vector bytes, the ACLs as a tuple)
_new = tuple.__new__


def decode_sub_txn(txn_type: int, data: bytes):
    """The record of one sub-txn of a multi (the same value ``TXN_RECORDS`` would give, except
    that a create's ACL list may be a tuple)."""
    if txn_type == _CREATE or txn_type == _CREATE2:
        return decode_create_txn(data)
    return TXN_RECORDS[txn_type].decode(data)


_CREATE = int(OpCode.create)
_CREATE2 = int(OpCode.create2)


def decode_create_txn(buf: bytes) -> r.CreateTxn:
    size = len(buf)
    try:
        path_end = 4 + _LENGTH.unpack_from(buf, 0)[0]
        data_length = _LENGTH.unpack_from(buf, path_end)[0]
        if path_end < 4 or data_length < 0 or path_end + 4 + data_length > size:
            return _decode_and_remember(buf)  # null or bad lengths: the generic codec decides
        path = buf[4:path_end].decode()
        offset = path_end + 4 + data_length
        data = buf[path_end + 4:offset]
        for raw, acl in _acl_memo:
            if buf.startswith(raw, offset):
                offset += len(raw)
                break
        else:
            return _decode_and_remember(buf)
        if offset + _TAIL.size != size:
            return r.CreateTxn.decode(buf)
        ephemeral, parent_cversion = _TAIL.unpack_from(buf, offset)
    except (struct.error, UnicodeDecodeError):
        return r.CreateTxn.decode(buf)
    return _new(r.CreateTxn, (path, data, acl, ephemeral, parent_cversion))


def _decode_and_remember(buf: bytes) -> r.CreateTxn:
    record = r.CreateTxn.decode(buf)
    if record.acl is None or len(_acl_memo) >= _ACL_VECTOR_MEMO_LIMIT:
        return record
    # The canonical encoding of a decoded value decodes back to exactly that value.
    raw = _LENGTH.pack(len(record.acl)) + b"".join(r.ACL.encode(a) for a in record.acl)
    if all(raw != known for known, _ in _acl_memo):
        _acl_memo.append((raw, tuple(record.acl)))
    return record
