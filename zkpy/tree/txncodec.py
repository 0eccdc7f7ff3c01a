"""Decoding creates and logged txns on the hot paths, with fast paths for the common ones.

Creates (CreateRequest from clients, CreateTxn on the apply path; a bulk load and its replay
apply millions) nearly all carry the same ACL list. The generic codec decodes that list, its
ACL and Id records and two strings for every create; here the raw bytes of the few ACL lists
seen last are remembered, and a create whose ACL bytes start with one of them takes the
remembered (immutable) value.
The Jute encoding of a vector is self-delimiting, so bytes that begin with a complete known
encoding decode to exactly that value. Anything unusual (null or odd lengths, a new ACL,
trailing bytes) goes through the generic codec, which also raises the errors.

Replay at start-up reads back every txn since the snapshot, mostly setData and multis of
creates: ``split_logged_txn`` and ``decode_set_data_txn`` read them with precompiled structs
and answer None for whatever they do not handle (or find malformed), so that the caller falls
back on the generic codec.
"""

from __future__ import annotations

import struct

from jute import OpCode
from jute import records as r
from jute.opcodes import TXN_RECORDS

_LENGTH = struct.Struct(">i")
_HEADER = struct.Struct(">qiqqi")  # TxnHeader: client_id, cxid, zxid, time_ms, type
_SUB_TXN_HEAD = struct.Struct(">ii")  # a multi's Txn record: type, then its data's length
_TXN_TAIL = struct.Struct(">?i")  # CreateTxn's ephemeral flag and parent_cversion
_FLAGS = struct.Struct(">i")  # CreateRequest's create mode
# The two ACL memos (_acl_memo here, _last_acl_encoded below) are caches of pure functions
# between immutable values (vector bytes -> tuple of ACLs, tuple -> bytes): every server of a
# process may share them, since what they return never depends on who filled them.
_ACL_VECTOR_MEMO_LIMIT = 16  # distinct ACL lists remembered; a miss scans them all
_acl_memo: list[tuple[bytes, tuple]] = []  # (raw vector bytes, the ACLs as a tuple)
_new = tuple.__new__


def encode_txn(hdr: r.TxnHeader, txn) -> bytes:
    """A txn as the log and the peers carry it: its TxnHeader and record back to back."""
    return r.TxnHeader.encode(hdr) + TXN_RECORDS[hdr.type].encode(txn)


def decode_txn(value: bytes) -> tuple[r.TxnHeader, object]:
    hdr, offset = r.TxnHeader.decode_from(value, 0)
    txn, _ = TXN_RECORDS[hdr.type].decode_from(value, offset)
    return hdr, txn


def decode_txn_and_digest(value: bytes) -> tuple[r.TxnHeader, object, r.TxnDigest | None]:
    """A txn as a ZooKeeper 3.6+ peer sends it: TxnHeader, record, then a TxnDigest (the
    tree's digest after the txn) when the sender keeps one; None when nothing follows. Bytes
    that are neither nothing nor exactly a TxnDigest raise ValueError."""
    hdr, offset = r.TxnHeader.decode_from(value, 0)
    txn, offset = TXN_RECORDS[hdr.type].decode_from(value, offset)
    if offset == len(value):
        return hdr, txn, None
    if len(value) - offset != _DIGEST.size:
        raise ValueError(f"{len(value) - offset} bytes after the txn, not a TxnDigest")
    return hdr, txn, r.TxnDigest(*_DIGEST.unpack_from(value, offset))


_DIGEST = struct.Struct(">iq")  # TxnDigest: version, tree digest


def decode_sub_txn(txn_type: int, data: bytes):
    """The record of one sub-txn of a multi (the same value ``TXN_RECORDS`` would give, except
    that a create's ACL list may be a tuple)."""
    if txn_type == _CREATE or txn_type == _CREATE2:
        return decode_create_txn(data)
    return TXN_RECORDS[txn_type].decode(data)


_CREATE = int(OpCode.create)
_CREATE2 = int(OpCode.create2)


def decode_create_txn(buf: bytes) -> r.CreateTxn:
    """The CreateTxn that is the whole of ``buf``."""
    return _decode_create(r.CreateTxn, _TXN_TAIL, buf, 0, True)[0]


def decode_create_request(buf: bytes, offset: int) -> r.CreateRequest:
    """The CreateRequest at ``offset`` of a request frame; bytes after it are ignored, as the
    generic ``decode_from`` (and ZooKeeper) ignore them."""
    return _decode_create(r.CreateRequest, _FLAGS, buf, offset, False)[0]


def decode_create_request_from(buf: bytes, offset: int) -> tuple[r.CreateRequest, int]:
    """(the CreateRequest at ``offset``, the offset after it): a multi's create op."""
    return _decode_create(r.CreateRequest, _FLAGS, buf, offset, False)


def _decode_create(record, tail, buf: bytes, offset: int, whole: bool):
    """(record, end offset) of a record of path, data, ACL list and the fields of ``tail``."""
    size = len(buf)
    try:
        path_start = offset + 4
        path_end = path_start + _LENGTH.unpack_from(buf, offset)[0]
        data_length = _LENGTH.unpack_from(buf, path_end)[0]
        data_end = path_end + 4 + data_length
        if path_end < path_start or data_length < 0 or data_end > size:
            # null or bad lengths: the generic codec decides
            return _decode_and_remember(record, buf, offset, whole)
        path = buf[path_start:path_end].decode()
        data = buf[path_end + 4:data_end]
        for raw, acl in _acl_memo:
            if buf.startswith(raw, data_end):
                tail_start = data_end + len(raw)
                break
        else:
            return _decode_and_remember(record, buf, offset, whole)
        tail_end = tail_start + tail.size
        if tail_end > size or (whole and tail_end != size):
            return _decode_generic(record, buf, offset, whole)
        return _new(record, (path, data, acl) + tail.unpack_from(buf, tail_start)), tail_end
    except (struct.error, UnicodeDecodeError):
        return _decode_generic(record, buf, offset, whole)


def _decode_generic(record, buf: bytes, offset: int, whole: bool):
    if whole:
        return record.decode(buf), len(buf)
    return record.decode_from(buf, offset)


def _decode_and_remember(record, buf: bytes, offset: int, whole: bool):
    decoded, end = _decode_generic(record, buf, offset, whole)
    if decoded.acl is None or len(_acl_memo) >= _ACL_VECTOR_MEMO_LIMIT:
        return decoded, end
    # The canonical encoding of a decoded value decodes back to exactly that value.
    raw = encode_acl_vector(decoded.acl)
    if all(raw != known for known, _ in _acl_memo):
        _acl_memo.append((raw, tuple(decoded.acl)))
    return decoded, end


def encode_acl_vector(acl) -> bytes:
    """A Jute vector<ACL>: the count, then each ACL."""
    return _LENGTH.pack(len(acl)) + b"".join(map(r.ACL.encode, acl))


_last_acl_encoded: tuple = (object(), b"")  # (ACL list, its vector bytes), by identity


def encode_create_txn(txn: r.CreateTxn) -> bytes:
    """``CreateTxn.encode``, with the ACL vector's bytes reused while the list is the same
    object (a multi's creates, a burst of creates, share the list fixup_acl remembered)."""
    global _last_acl_encoded
    path, data, acl, ephemeral, parent_cversion = txn
    if data is None or acl is None or path is None:
        return r.CreateTxn.encode(txn)
    if acl is _last_acl_encoded[0]:
        raw_acl = _last_acl_encoded[1]
    else:
        raw_acl = encode_acl_vector(acl)
        if type(acl) is tuple:  # immutable: the identity stays meaningful
            _last_acl_encoded = (acl, raw_acl)
    raw_path = path.encode()
    return b"".join((_LENGTH.pack(len(raw_path)), raw_path, _LENGTH.pack(len(data)), data,
                     raw_acl, _TXN_TAIL.pack(ephemeral, parent_cversion)))


def split_logged_txn(buf: bytes) -> tuple[int, int, int, int, int]:
    """(client_id, zxid, time_ms, type, offset of the txn record) of a logged txn, which is
    a TxnHeader and the txn record back to back. Raises struct.error on a short buffer."""
    client_id, _cxid, zxid, time_ms, txn_type = _HEADER.unpack_from(buf, 0)
    return client_id, zxid, time_ms, txn_type, _HEADER.size


def decode_set_data_txn(buf: bytes, offset: int) -> tuple[str, bytes, int] | None:
    """(path, data, version) of the SetDataTxn at ``offset`` that ends ``buf``; None for
    anything else (null fields, bad lengths or UTF-8, trailing bytes)."""
    fields = _split_set_data(buf, offset)
    if fields is None or fields[3] != len(buf):
        return None
    return fields[:3]


def decode_set_data_request(buf: bytes, offset: int) -> r.SetDataRequest:
    """The SetDataRequest at ``offset`` of a request frame (it has SetDataTxn's layout);
    bytes after it are ignored, as the generic ``decode_from`` ignores them."""
    fields = _split_set_data(buf, offset)
    if fields is None:  # null data, bad lengths or UTF-8: the generic codec decides
        return r.SetDataRequest.decode_from(buf, offset)[0]
    return _new(r.SetDataRequest, fields[:3])


def _split_set_data(buf: bytes, offset: int) -> tuple[str, bytes, int, int] | None:
    """(path, data, version, end offset) of a path, non-null data and version at ``offset``."""
    try:
        path_end = offset + 4 + _LENGTH.unpack_from(buf, offset)[0]
        data_length = _LENGTH.unpack_from(buf, path_end)[0]
        data_end = path_end + 4 + data_length
        if path_end < offset + 4 or data_length < 0 or data_end + 4 > len(buf):
            return None
        path = buf[offset + 4:path_end].decode()
        version = _LENGTH.unpack_from(buf, data_end)[0]
    except (struct.error, UnicodeDecodeError):
        return None
    return path, buf[path_end + 4:data_end], version, data_end + 4


def split_multi_txn(buf: bytes, offset: int) -> list[tuple[int, bytes]] | None:
    """The (type, data) of each Txn in the MultiTxn at ``offset`` that ends ``buf``; None if
    it is null or malformed (the generic codec then decides what is wrong)."""
    size = len(buf)
    try:
        count = _LENGTH.unpack_from(buf, offset)[0]
        if count < 0 or count > (size - offset) // _SUB_TXN_HEAD.size:
            return None
        offset += 4
        subs = []
        for _ in range(count):
            sub_type, length = _SUB_TXN_HEAD.unpack_from(buf, offset)
            start = offset + _SUB_TXN_HEAD.size
            offset = start + length
            if length < 0 or offset > size:
                return None
            subs.append((sub_type, buf[start:offset]))
    except struct.error:
        return None
    return subs if offset == size else None
