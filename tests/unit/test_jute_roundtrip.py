"""Property tests: every Jute record round-trips, and the generated codec agrees with construct.

For every record in ``jute.records.ALL_RECORDS`` (values drawn by walking its construct
declaration, see test_jute_strategies.py):

* ``decode(encode(x)) == x``, also at an offset inside a larger buffer;
* ``encode(x)`` is exactly what construct's interpreter builds from the same value as dicts;
* construct's interpreter and its compiled parser read the bytes back to the same value.

Multi requests and responses round-trip through ``jute.opcodes`` too. Hypothesis prints the
falsifying example and a reproduction blob on failure.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jute import records as r
from jute.constants import OpCode
from jute.opcodes import (
    MultiOp, decode_multi_request, decode_multi_response, encode_multi_request,
    encode_multi_response,
)
from tests.unit.test_jute_strategies import (
    FAST, MULTI_REQUESTS, MULTI_RESPONSES, field_kind, fields_of, record_strategy, to_plain,
)

RECORDS = list(r.ALL_RECORDS)
IDS = [rec.__name__ for rec in RECORDS]


def has_trailing(rec: type) -> bool:
    return any(field_kind(sub) == "trailing" for _, sub in fields_of(rec))


@functools.cache
def compiled(rec: type):
    return rec.construct.compile()


@pytest.mark.parametrize("rec", RECORDS, ids=IDS)
def test_roundtrip(rec: type) -> None:
    @FAST
    @given(value=record_strategy(rec), prefix=st.binary(max_size=8), suffix=st.binary(max_size=8))
    def check(value, prefix, suffix):
        data = rec.encode(value)
        assert isinstance(data, bytes)
        decoded = rec.decode(data)
        assert decoded == value
        assert type(decoded) is rec
        # decode_from reads exactly the record, wherever it starts.
        if has_trailing(rec):
            suffix = b""  # bytes after a trailing field would be read as that field
        assert rec.decode_from(prefix + data + suffix, len(prefix)) == (value, len(prefix) + len(data))

    check()


@pytest.mark.parametrize("rec", RECORDS, ids=IDS)
def test_agrees_with_construct(rec: type) -> None:
    parser = compiled(rec)

    @FAST
    @given(value=record_strategy(rec))
    def check(value):
        data = rec.encode(value)
        plain = to_plain(value)
        assert rec.construct.build(plain) == data
        assert to_plain(rec.construct.parse(data)) == plain
        assert to_plain(parser.parse(data)) == plain

    check()


@FAST
@given(ops=MULTI_REQUESTS)
def test_multi_request_roundtrip(ops: list[MultiOp]) -> None:
    data = encode_multi_request(ops)
    assert decode_multi_request(data) == ops
    # The body is what it says: (MultiHeader(type, False, -1), request)*, then the end marker.
    expected = b"".join(
        r.MultiHeader.encode(r.MultiHeader(op.type, False, -1)) + type(op.request).encode(op.request)
        for op in ops) + r.MultiHeader.encode(r.MultiHeader(-1, True, -1))
    assert data == expected
    # Inside a request frame, after the header.
    header = r.RequestHeader.encode(r.RequestHeader(7, OpCode.multi))
    assert decode_multi_request(header + data, 8) == ops


@FAST
@given(results=MULTI_RESPONSES)
def test_multi_response_roundtrip(results) -> None:
    data = encode_multi_response(results)
    assert decode_multi_response(data) == results
    assert data.endswith(r.MultiHeader.encode(r.MultiHeader(-1, True, -1)))
    header = r.ReplyHeader.encode(r.ReplyHeader(7, 1234, 0))
    assert decode_multi_response(header + data, 16) == results


def test_known_encodings() -> None:
    """A few encodings written out by hand from zookeeper.jute, as an anchor."""
    assert r.RequestHeader.encode(r.RequestHeader(1, OpCode.create)) == bytes.fromhex("0000000100000001")
    assert r.ReplyHeader.encode(r.ReplyHeader(-1, -1, 0)) == bytes.fromhex("ffffffff" + "ff" * 8 + "00000000")
    assert r.GetDataRequest.encode(r.GetDataRequest("/a", True)) == bytes.fromhex("000000022f6101")
    assert r.SetDataRequest.encode(r.SetDataRequest("/a", None, -1)) == bytes.fromhex(
        "000000022f61ffffffffffffffff")
    assert r.GetChildrenResponse.encode(r.GetChildrenResponse(None)) == bytes.fromhex("ffffffff")
    assert r.GetChildrenResponse.encode(r.GetChildrenResponse([])) == bytes.fromhex("00000000")
    assert r.CreateRequest.encode(r.CreateRequest("/é", b"\x00", [r.ACL(31, r.Id("world", "anyone"))], 3)) \
        == bytes.fromhex("000000032fc3a9" "0000000100" "00000001" "0000001f" "00000005776f726c64"
                         "00000006616e796f6e65" "00000003")
    assert len(r.Stat.encode(r.Stat(*[0] * 11))) == 68
    assert r.ConnectRequest.encode(r.ConnectRequest(0, 0, 30000, 0, bytes(16), None)) == bytes.fromhex(
        "00000000" "0000000000000000" "00007530" "0000000000000000" "00000010" + "00" * 16)
    assert r.ConnectRequest.encode(r.ConnectRequest(0, 0, 30000, 0, bytes(16), True)).endswith(b"\x01")
    assert r.MultiHeader.encode(r.MultiHeader(-1, True, -1)) == bytes.fromhex("ffffffff01ffffffff")
