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
