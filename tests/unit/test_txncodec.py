"""The apply path's sub-txn decoder gives what the generic codec gives, ACL memo or not."""

from __future__ import annotations

import pytest

from jute import OpCode
from jute import records as r
from jute.errors import JuteDecodeError
from zkpy.tree import txncodec

_WORLD = r.ACL(31, r.Id("world", "anyone"))
_DIGEST = r.ACL(1, r.Id("digest", "u:hash"))


@pytest.mark.parametrize("txn", [
    r.CreateTxn("/a", b"x" * 100, [_WORLD], False, 1),
    r.CreateTxn("/a/b", b"", [_WORLD], True, 7),
    r.CreateTxn("/a/c", None, [_WORLD, _DIGEST], False, -1),
    r.CreateTxn("/a/\u00e9", b"\0", [_DIGEST], False, 2 ** 31 - 1),
    r.CreateTxn("/empty-acl", b"v", [], False, 3),
    r.CreateTxn("/null-acl", b"v", None, False, 3),
])
def test_create_decodes_as_the_generic_codec_does_twice_over(txn):
    data = r.CreateTxn.encode(txn)
    expected = r.CreateTxn.decode(data)
    for _ in range(2):  # the second time the ACL list comes from the memo
        got = txncodec.decode_sub_txn(int(OpCode.create), data)
        assert type(got) is r.CreateTxn
        assert got._replace(acl=None if got.acl is None else list(got.acl)) == expected


def test_a_longer_acl_list_sharing_a_prefix_is_not_taken_for_the_shorter():
    one = r.CreateTxn.encode(r.CreateTxn("/p", b"", [_WORLD], False, 1))
    two = r.CreateTxn.encode(r.CreateTxn("/p", b"", [_WORLD, _WORLD], False, 1))
    txncodec.decode_sub_txn(int(OpCode.create), one)
    assert list(txncodec.decode_sub_txn(int(OpCode.create), two).acl) == [_WORLD, _WORLD]
    assert list(txncodec.decode_sub_txn(int(OpCode.create), one).acl) == [_WORLD]


@pytest.mark.parametrize("cut", [0, 3, 6, 20, -1])
def test_truncated_creates_raise_as_the_generic_codec_does(cut):
    data = r.CreateTxn.encode(r.CreateTxn("/t", b"abc", [_WORLD], False, 1))
    txncodec.decode_sub_txn(int(OpCode.create), data)
    with pytest.raises(JuteDecodeError):
        txncodec.decode_sub_txn(int(OpCode.create), data[:cut])


def test_trailing_bytes_raise():
    data = r.CreateTxn.encode(r.CreateTxn("/t", b"abc", [_WORLD], False, 1))
    with pytest.raises(JuteDecodeError):
        txncodec.decode_sub_txn(int(OpCode.create), data + b"\0")


def test_other_sub_txns_use_the_generic_codec():
    txn = r.SetDataTxn("/s", b"v", 3)
    assert txncodec.decode_sub_txn(int(OpCode.setData), r.SetDataTxn.encode(txn)) == txn


# -- the replay path's readers -----------------------------------------------------------------

def _logged(hdr: r.TxnHeader, txn) -> bytes:
    return txncodec.encode_txn(hdr, txn)


_HDR = r.TxnHeader(0x1234, 7, 0x500000001, 1_700_000_000_000, int(OpCode.setData))


def test_a_logged_header_splits_as_the_generic_codec_reads_it():
    buf = _logged(_HDR, r.SetDataTxn("/s", b"v", 3))
    client_id, zxid, time_ms, txn_type, offset = txncodec.split_logged_txn(buf)
    hdr, _ = txncodec.decode_txn(buf)
    assert (client_id, zxid, time_ms, txn_type) == (hdr.client_id, hdr.zxid, hdr.time_ms, hdr.type)
    assert r.SetDataTxn.decode(buf[offset:]) == r.SetDataTxn("/s", b"v", 3)


@pytest.mark.parametrize("txn", [
    r.SetDataTxn("/s", b"v", 3),
    r.SetDataTxn("/a/\u00e9", b"", 0),
    r.SetDataTxn("/big", bytes(range(256)) * 40, -1),
])
def test_set_data_decodes_as_the_generic_codec_does(txn):
    buf = _logged(_HDR, txn)
    assert txncodec.decode_set_data_txn(buf, 32) == tuple(txn)


@pytest.mark.parametrize("mangle", [
    lambda b: b[:-1],                      # truncated version
    lambda b: b + b"\0",                   # trailing byte
    lambda b: b[:32] + b"\xff\xff\xff\xff",  # null path, nothing after
    lambda b: b[:32] + b"\0\0\0\x02\xff\xfe" + b[38:],  # path that is not UTF-8
])
def test_malformed_set_data_is_left_to_the_generic_codec(mangle):
    buf = mangle(_logged(_HDR, r.SetDataTxn("/s", b"v", 3)))
    assert txncodec.decode_set_data_txn(buf, 32) is None


def test_null_data_is_left_to_the_generic_codec():
    buf = _logged(_HDR, r.SetDataTxn("/s", None, 3))
    assert txncodec.decode_set_data_txn(buf, 32) is None
    assert txncodec.decode_txn(buf)[1] == r.SetDataTxn("/s", None, 3)


def test_a_multi_splits_into_its_sub_txns():
    subs = [r.Txn(int(OpCode.create), r.CreateTxn.encode(r.CreateTxn("/m", b"", [_WORLD], False, 1))),
            r.Txn(int(OpCode.setData), r.SetDataTxn.encode(r.SetDataTxn("/m", b"x", 1))),
            r.Txn(int(OpCode.error), r.ErrorTxn.encode(r.ErrorTxn(-101)))]
    buf = _logged(_HDR._replace(type=int(OpCode.multi)), r.MultiTxn(subs))
    assert txncodec.split_multi_txn(buf, 32) == [tuple(sub) for sub in subs]
    empty = _logged(_HDR._replace(type=int(OpCode.multi)), r.MultiTxn([]))
    assert txncodec.split_multi_txn(empty, 32) == []


@pytest.mark.parametrize("mangle", [
    lambda b: b[:-1],                               # last sub-txn truncated
    lambda b: b + b"\0",                            # trailing byte
    lambda b: b[:32] + b"\xff\xff\xff\xff",         # null vector
    lambda b: b[:32] + b"\x7f\xff\xff\xff" + b[36:],  # count beyond the buffer
    lambda b: b[:40] + b"\xff\xff\xff\xfe" + b[44:],  # negative sub-txn length
])
def test_a_malformed_multi_is_left_to_the_generic_codec(mangle):
    subs = [r.Txn(int(OpCode.delete), r.DeleteTxn.encode(r.DeleteTxn("/d")))]
    buf = mangle(_logged(_HDR._replace(type=int(OpCode.multi)), r.MultiTxn(subs)))
    assert txncodec.split_multi_txn(buf, 32) is None


# -- CreateRequest, as the server decodes client creates ----------------------------------------

@pytest.mark.parametrize("request_", [
    r.CreateRequest("/a", b"x" * 100, [_WORLD], 3),
    r.CreateRequest("/a/b-", b"", [_WORLD, _DIGEST], 1),
    r.CreateRequest("/n", None, [_WORLD], 0),
    r.CreateRequest("/null-acl", b"v", None, 0),
    r.CreateRequest("/\u00e9", b"\0", [_DIGEST], -7),
])
@pytest.mark.parametrize("trailer", [b"", b"\0\0extra"])
def test_a_create_request_decodes_as_the_generic_codec_does(request_, trailer):
    frame = b"\0\0\0\x07\0\0\0\x01" + r.CreateRequest.encode(request_) + trailer
    expected = r.CreateRequest.decode_from(frame, 8)[0]
    for _ in range(2):  # the second time the ACL list comes from the memo
        got = txncodec.decode_create_request(frame, 8)
        assert type(got) is r.CreateRequest
        assert got._replace(acl=None if got.acl is None else list(got.acl)) == expected


@pytest.mark.parametrize("cut", [8, 11, 14, 20, -1])
def test_truncated_create_requests_raise_as_the_generic_codec_does(cut):
    frame = b"\0" * 8 + r.CreateRequest.encode(r.CreateRequest("/t", b"abc", [_WORLD], 0))
    txncodec.decode_create_request(frame, 8)
    with pytest.raises(JuteDecodeError):
        r.CreateRequest.decode_from(frame[:cut], 8)
    with pytest.raises(JuteDecodeError):
        txncodec.decode_create_request(frame[:cut], 8)


def test_a_create_request_with_a_path_that_is_not_utf8_raises():
    frame = b"\0" * 8 + b"\0\0\0\x02\xff\xfe" + r.CreateRequest.encode(
        r.CreateRequest("/t", b"", [_WORLD], 0))[6:]
    with pytest.raises(JuteDecodeError):
        txncodec.decode_create_request(frame, 8)


@pytest.mark.parametrize("txn", [
    r.CreateTxn("/a", b"x" * 100, (_WORLD,), True, 1),
    r.CreateTxn("/a", b"x" * 100, (_WORLD,), False, -1),  # the same ACL object again
    r.CreateTxn("/b", b"", [_WORLD, _DIGEST], False, 2),
    r.CreateTxn("/\u00e9", None, (_DIGEST,), False, 3),
    r.CreateTxn("/d", b"v", None, True, 4),
])
def test_create_txns_encode_as_the_generic_codec_does(txn):
    assert txncodec.encode_create_txn(txn) == r.CreateTxn.encode(txn)


def test_a_changed_acl_list_object_is_encoded_anew():
    acl = [_WORLD]
    first = txncodec.encode_create_txn(r.CreateTxn("/a", b"", acl, False, 1))
    acl.append(_DIGEST)  # a list may change under the same identity: never remembered
    second = txncodec.encode_create_txn(r.CreateTxn("/a", b"", acl, False, 1))
    assert first != second == r.CreateTxn.encode(r.CreateTxn("/a", b"", acl, False, 1))


def test_a_multi_decodes_its_creates_as_the_generic_codec_does():
    from jute.opcodes import MULTI_WRITE_OPS, MultiOp, decode_multi_request, encode_multi_request

    ops = [MultiOp(int(OpCode.create), r.CreateRequest(f"/m{i}", b"v", [_WORLD], i % 4))
           for i in range(5)]
    ops.insert(2, MultiOp(int(OpCode.setData), r.SetDataRequest("/m0", b"w", -1)))
    ops.append(MultiOp(int(OpCode.create2), r.CreateRequest("/c2", None, [_DIGEST], 0)))
    body = encode_multi_request(ops)
    fast = {int(OpCode.create): txncodec.decode_create_request_from,
            int(OpCode.create2): txncodec.decode_create_request_from}
    plain = decode_multi_request(body, 0, MULTI_WRITE_OPS)
    for _ in range(2):
        got = decode_multi_request(body, 0, MULTI_WRITE_OPS, fast)
        assert [(op.type, op.request._replace(acl=list(op.request.acl))
                 if op.type != OpCode.setData else op.request) for op in got] == \
            [(op.type, op.request) for op in plain]
    with pytest.raises(JuteDecodeError):
        decode_multi_request(body[:30], 0, MULTI_WRITE_OPS, fast)


@pytest.mark.parametrize("request_", [
    r.SetDataRequest("/s", b"v", 3),
    r.SetDataRequest("/\u00e9/x", b"", -1),
    r.SetDataRequest("/n", None, 0),
])
@pytest.mark.parametrize("trailer", [b"", b"\0extra"])
def test_a_set_data_request_decodes_as_the_generic_codec_does(request_, trailer):
    frame = b"\0\0\0\x07\0\0\0\x05" + r.SetDataRequest.encode(request_) + trailer
    got = txncodec.decode_set_data_request(frame, 8)
    assert type(got) is r.SetDataRequest and got == r.SetDataRequest.decode_from(frame, 8)[0]


@pytest.mark.parametrize("frame", [
    b"\0" * 8 + b"\0\0\0\x02/s\0\0\0\x01v\0\0",       # version cut short
    b"\0" * 8 + b"\0\0\0\x09/s",                       # path beyond the frame
    b"\0" * 8 + b"\0\0\0\x02\xff\xfe\0\0\0\0\0\0\0\0",  # path not UTF-8
])
def test_malformed_set_data_requests_raise_as_the_generic_codec_does(frame):
    with pytest.raises(JuteDecodeError):
        r.SetDataRequest.decode_from(frame, 8)
    with pytest.raises(JuteDecodeError):
        txncodec.decode_set_data_request(frame, 8)
