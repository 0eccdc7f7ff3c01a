"""Malformed input: the codec fails with JuteDecodeError, never anything else, and never
allocates on the word of a length it has not checked.

Covers truncation (every strict prefix of every record), negative lengths other than -1,
lengths and counts past the end, huge vector counts, invalid UTF-8, random garbage and
mutated valid encodings (with construct's interpreter and compiled parser as the oracle), the
FrameDecoder's limits and split feeds, and malformed multi bodies.
"""

from __future__ import annotations

import functools
import io
import struct
import tracemalloc

import construct as cs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jute
from jute import FrameDecoder, FrameTooLarge, JuteDecodeError
from jute import records as r
from jute.constants import OpCode
from jute.opcodes import (
    MULTI_OP_RECORDS, MultiOp, _RESULT_RECORDS, decode_multi_request, decode_multi_response,
    encode_multi_request, encode_multi_response,
)
from tests.unit.test_jute_strategies import (
    FAST, MULTI_REQUESTS, MULTI_RESPONSES, field_kind, fields_of, minimal_record, minimal_value,
    record_strategy, to_plain,
)

RECORDS = list(r.ALL_RECORDS)
IDS = [rec.__name__ for rec in RECORDS]
_I32 = struct.Struct(">i")
MIB = 1 << 20


def trailing_fields(rec: type) -> list[int]:
    return [i for i, (_, sub) in enumerate(fields_of(rec)) if field_kind(sub) == "trailing"]


def without_trailing(value):
    """The value with its trailing fields (if any) dropped, as an older peer would send it."""
    rec = type(value)
    return value._replace(**{rec._fields[i]: None for i in trailing_fields(rec)})


@functools.cache
def compiled(rec: type):
    return rec.construct.compile()


def construct_parse(parser, data: bytes):
    """(plain value, end offset) from a construct parser, or None if it rejects the bytes."""
    stream = io.BytesIO(data)
    try:
        value = parser.parse_stream(stream)
    except (cs.ConstructError, struct.error):
        # construct's compiled parser reads fixed-width fields with struct directly, so its
        # short reads surface as struct.error; the interpreter raises StreamError.
        return None
    return to_plain(value), stream.tell()


def codec_parse(rec: type, data: bytes):
    try:
        value, end = rec.decode_from(data, 0)
    except JuteDecodeError:
        return None
    return to_plain(value), end


# ---------------------------------------------------------------------------------------------
# truncation


@pytest.mark.parametrize("rec", RECORDS, ids=IDS)
def test_every_strict_prefix_fails(rec: type) -> None:
    @FAST
    @given(value=record_strategy(rec))
    def check(value):
        data = rec.encode(value)
        for cut in range(len(data)):
            prefix = data[:cut]
            try:
                decoded = rec.decode(prefix)
            except JuteDecodeError:
                continue
            # Only a record whose last field is a Trailing can end early, and then the shorter
            # value is the same record without that field.
            assert trailing_fields(rec), f"{rec.__name__}: decode of {cut}/{len(data)} bytes succeeded"
            assert decoded == without_trailing(value) and rec.encode(decoded) == prefix
            # decode_from never reads past the bytes it was given.
        for cut in range(len(data)):
            try:
                _, end = rec.decode_from(data[:cut], 0)
            except JuteDecodeError:
                continue
            assert end <= cut

    check()


def test_truncated_multi_fails() -> None:
    @FAST
    @given(ops=MULTI_REQUESTS, results=MULTI_RESPONSES)
    def check(ops, results):
        for data, decode in ((encode_multi_request(ops), decode_multi_request),
                             (encode_multi_response(results), decode_multi_response)):
            for cut in range(len(data)):
                with pytest.raises(JuteDecodeError):
                    decode(data[:cut])

    check()


# ---------------------------------------------------------------------------------------------
# bad lengths, placed generically at every length-prefixed field of every record


def length_fields(rec: type) -> list[tuple[int, str]]:
    return [(i, field_kind(sub)) for i, (_, sub) in enumerate(fields_of(rec))
            if field_kind(sub) in ("ustring", "buffer", "vector")]


LENGTH_CASES = [(rec, index, kind) for rec in RECORDS for index, kind in length_fields(rec)]
LENGTH_IDS = [f"{rec.__name__}.{rec._fields[index]}" for rec, index, _ in LENGTH_CASES]


def bytes_before(rec: type, index: int) -> bytes:
    """The encoding of the fields before ``index``, each at its minimal value."""
    return b"".join(sub.build(to_plain(minimal_value(sub))) for _, sub in fields_of(rec)[:index])


def bytes_after(rec: type, index: int) -> bytes:
    return b"".join(sub.build(to_plain(minimal_value(sub))) for _, sub in fields_of(rec)[index + 1:])


@pytest.mark.parametrize("rec,index,kind", LENGTH_CASES, ids=LENGTH_IDS)
@pytest.mark.parametrize("length", [-2, -3, -100, -(2**31)])
def test_negative_length_other_than_null(rec, index, kind, length) -> None:
    # Enough bytes after the length that nothing else could be what fails.
    data = bytes_before(rec, index) + _I32.pack(length) + bytes(64) + bytes_after(rec, index)
    with pytest.raises(JuteDecodeError):
        rec.decode_from(data, 0)
    for parser in (rec.construct, compiled(rec)):
        assert construct_parse(parser, data) is None


@pytest.mark.parametrize("rec,index,kind", LENGTH_CASES, ids=LENGTH_IDS)
def test_null_is_minus_one(rec, index, kind) -> None:
    data = bytes_before(rec, index) + _I32.pack(-1) + bytes_after(rec, index)
    value = rec.decode(data)
    assert value[index] is None
    assert rec.encode(value) == data


@pytest.mark.parametrize("rec,index,kind", LENGTH_CASES, ids=LENGTH_IDS)
@pytest.mark.parametrize("overshoot", [1, 2, 1000, 2**31 - 1])
def test_length_past_the_end(rec, index, kind, overshoot) -> None:
    body = b"\x01" * 8  # the field's claimed bytes/elements, minus what is missing
    length = min(len(body) + overshoot, 2**31 - 1)
    data = bytes_before(rec, index) + _I32.pack(length) + body
    with pytest.raises(JuteDecodeError):
        rec.decode_from(data, 0)
    for parser in (rec.construct, compiled(rec)):
        assert construct_parse(parser, data) is None


VECTOR_CASES = [(rec, index) for rec, index, kind in LENGTH_CASES if kind == "vector"]


@pytest.mark.parametrize("rec,index", VECTOR_CASES,
                         ids=[f"{rec.__name__}.{rec._fields[i]}" for rec, i in VECTOR_CASES])
@pytest.mark.parametrize("count", [2**31 - 1, 2**24, 100_000])
def test_huge_vector_count_fails_fast(rec, index, count) -> None:
    """A count that could never fit is refused before any list of that size is built."""
    data = bytes_before(rec, index) + _I32.pack(count) + bytes(4096)
    tracemalloc.start()
    try:
        with pytest.raises(JuteDecodeError):
            rec.decode_from(data, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MIB, f"decoding allocated {peak} bytes"


@pytest.mark.parametrize("length", [2**31 - 1, 64 * MIB])
def test_huge_buffer_length_allocates_nothing(length) -> None:
    data = _I32.pack(length) + bytes(4096)
    tracemalloc.start()
    try:
        for rec in (r.GetSASLRequest, r.CreateResponse):
            with pytest.raises(JuteDecodeError):
                rec.decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MIB


def test_nested_bad_lengths() -> None:
    """Bad lengths deep inside nested records and vectors are caught as well."""
    acl = r.ACL(31, r.Id("world", "anyone"))
    good = r.GetACLResponse.encode(r.GetACLResponse([acl, acl], r.Stat(*[0] * 11)))
    # The second ACL's scheme length: 4 (count) + one ACL (4 + 4+5 + 4+6) + 4 (perms).
    at = 4 + 23 + 4
    assert good[at:at + 4] == _I32.pack(5)
    for bad in (-2, 6, 1000, 2**31 - 1):
        with pytest.raises(JuteDecodeError):
            r.GetACLResponse.decode(good[:at] + _I32.pack(bad) + good[at + 4:])
    # A MultiTxn whose inner Txn buffer lies about its length.
    txns = r.MultiTxn.encode(r.MultiTxn([r.Txn(1, b"abc")]))
    for bad in (-7, 4, 2**31 - 1):
        with pytest.raises(JuteDecodeError):
            r.MultiTxn.decode(txns[:8] + _I32.pack(bad) + txns[12:])
    # A nested vector count that is too large for the bytes left.
    with pytest.raises(JuteDecodeError):
        r.QuorumPacket.decode(_I32.pack(1) + bytes(8) + _I32.pack(-1) + _I32.pack(2**31 - 1))


# ---------------------------------------------------------------------------------------------
# invalid UTF-8


INVALID_UTF8 = [
    b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
    b"\xc0\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # a UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"/a\x80",  # truncated sequence at the end
]
USTRING_CASES = [(rec, index) for rec, index, kind in LENGTH_CASES if kind == "ustring"]


@pytest.mark.parametrize("rec,index", USTRING_CASES,
                         ids=[f"{rec.__name__}.{rec._fields[i]}" for rec, i in USTRING_CASES])
def test_invalid_utf8_is_refused(rec, index) -> None:
    for raw in INVALID_UTF8:
        data = bytes_before(rec, index) + _I32.pack(len(raw)) + raw + bytes_after(rec, index)
        with pytest.raises(JuteDecodeError):
            rec.decode(data)
        for parser in (rec.construct, compiled(rec)):
            assert construct_parse(parser, data) is None


def test_utf8_paths_that_are_valid() -> None:
    for path in ("/", "/é", "/日本語", "/\U0001f600", "/a\x00b", "/\u2028"):
        data = r.GetDataRequest.encode(r.GetDataRequest(path, False))
        assert r.GetDataRequest.decode(data).path == path
        assert data[:4] == _I32.pack(len(path.encode("utf-8")))


# ---------------------------------------------------------------------------------------------
# random garbage and mutations: only JuteDecodeError, and the same verdict as construct's


def assert_agrees_with_construct(rec: type, data: bytes) -> None:
    ours = codec_parse(rec, data)  # raises if the codec fails with anything else
    assert construct_parse(rec.construct, data) == ours
    # construct's compiled parser must read whatever is valid the same way. (It is not a full
    # oracle for invalid input: construct compiles Flag to ``io.read(1) != b"\x00"``, which reads
    # True at the end of the input instead of failing.)
    if ours is not None:
        assert construct_parse(compiled(rec), data) == ours
    if ours is not None:
        # What decoded re-encodes to something that decodes the same (booleans other than 0/1
        # are the one thing that does not re-encode byte for byte).
        value = rec.decode_from(data, 0)[0]
        assert rec.decode(rec.encode(value)) == value


@pytest.mark.parametrize("rec", RECORDS, ids=IDS)
def test_random_garbage(rec: type) -> None:
    @FAST
    @given(data=st.binary(max_size=96))
    def check(data):
        assert_agrees_with_construct(rec, data)

    check()


@st.composite
def mutated(draw, rec: type) -> bytes:
    data = bytearray(rec.encode(draw(record_strategy(rec))))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["flip", "set-length", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "set-length":
            data[at:at + 4] = _I32.pack(draw(st.sampled_from([-2, -1, 0, 1, 7, 255, 2**31 - 1])))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif at < len(data):
            del data[at:at + draw(st.integers(1, 4))]
    return bytes(data)


@pytest.mark.parametrize("rec", RECORDS, ids=IDS)
def test_mutated_encodings(rec: type) -> None:
    @FAST
    @given(data=mutated(rec))
    def check(data):
        assert_agrees_with_construct(rec, data)

    check()


@FAST
@given(data=st.binary(max_size=128))
def test_multi_garbage_only_raises_decode_error(data: bytes) -> None:
    for decode in (decode_multi_request, decode_multi_response):
        try:
            decode(data)
        except JuteDecodeError:
            pass


# ---------------------------------------------------------------------------------------------
# multi: unknown types


def _header(op_type: int, done: bool = False, err: int = -1) -> bytes:
    return r.MultiHeader.encode(r.MultiHeader(op_type, done, err))


UNKNOWN_MULTI_OPS = sorted(
    {int(op) for op in OpCode} - set(MULTI_OP_RECORDS) | {-1, 0, 10, 99, 2**31 - 1, -(2**31)})


@pytest.mark.parametrize("op_type", UNKNOWN_MULTI_OPS)
def test_unknown_multi_op_type(op_type: int) -> None:
    body = _header(op_type) + r.DeleteRequest.encode(r.DeleteRequest("/a", -1)) + _header(-1, True)
    with pytest.raises(JuteDecodeError):
        decode_multi_request(body)
    # ... also after valid ops.
    good = encode_multi_request([MultiOp(OpCode.delete, r.DeleteRequest("/x", 1))])
    with pytest.raises(JuteDecodeError):
        decode_multi_request(good[:-9] + body)


@pytest.mark.parametrize("op_type", sorted(
    {int(op) for op in OpCode} - set(_RESULT_RECORDS) | {99, -(2**31)}))
def test_unknown_multi_result_type(op_type: int) -> None:
    with pytest.raises(JuteDecodeError):
        decode_multi_response(_header(op_type, False, 0) + _header(-1, True))


def test_multi_end_marker_and_missing_end() -> None:
    assert decode_multi_request(_header(-1, True)) == []
    assert decode_multi_response(_header(-1, True)) == []
    with pytest.raises(JuteDecodeError):
        decode_multi_request(b"")
    one = encode_multi_request([MultiOp(OpCode.check, r.CheckVersionRequest("/a", 3))])
    with pytest.raises(JuteDecodeError):
        decode_multi_request(one[:-9])  # no end marker


def test_too_many_multi_ops_fails_fast(monkeypatch) -> None:
    monkeypatch.setattr(jute.opcodes, "MAX_MULTI_OPS", 10)
    op = _header(OpCode.check) + r.CheckVersionRequest.encode(r.CheckVersionRequest("/", 0))
    assert len(decode_multi_request(op * 10 + _header(-1, True))) == 10
    with pytest.raises(JuteDecodeError):
        decode_multi_request(op * 11 + _header(-1, True))


# ---------------------------------------------------------------------------------------------
# framing


def test_frame_decoder_limits() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    assert decoder.feed(jute.frame(bytes(100))) == [bytes(100)]
    assert decoder.feed(jute.frame(b"")) == [b""]
    for length in (101, 2**31 - 1, -1, -2, -(2**31)):
        decoder = FrameDecoder(max_frame_bytes=100)
        with pytest.raises(FrameTooLarge) as info:
            decoder.feed(_I32.pack(length))  # refused on the prefix alone, before any payload
        assert info.value.length == length and info.value.max_frame_bytes == 100
        assert decoder.pending_bytes == 0
    # A bad length after good frames in the same feed still raises.
    decoder = FrameDecoder(max_frame_bytes=100)
    with pytest.raises(FrameTooLarge):
        decoder.feed(jute.frame(b"ok") + _I32.pack(-5))


def test_frame_decoder_default_limit_is_jute_maxbuffer() -> None:
    decoder = FrameDecoder()
    assert decoder.max_frame_bytes == jute.MAX_BUFFER_BYTES_DEFAULT
    assert decoder.feed(_I32.pack(jute.MAX_BUFFER_BYTES_DEFAULT)) == []
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(_I32.pack(jute.MAX_BUFFER_BYTES_DEFAULT + 1))


def test_frame_decoder_bad_length_split_across_feeds() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    data = jute.frame(b"abc") + _I32.pack(-3)
    frames = []
    with pytest.raises(FrameTooLarge):
        for i in range(len(data)):
            frames.extend(decoder.feed(data[i:i + 1]))
    assert frames == [b"abc"]


def test_frame_decoder_holds_one_partial_frame_only() -> None:
    decoder = FrameDecoder(max_frame_bytes=1000)
    assert decoder.feed(jute.frame(bytes(500))[:300]) == []
    assert decoder.pending_bytes == 300
    assert decoder.feed(jute.frame(bytes(500))[300:]) == [bytes(500)]
    assert decoder.pending_bytes == 0


PAYLOADS = st.lists(st.binary(max_size=40), max_size=8)


@FAST
@given(payloads=PAYLOADS, cuts=st.lists(st.integers(0, 400), max_size=12))
def test_split_feeds_give_the_same_frames(payloads, cuts) -> None:
    stream = b"".join(jute.frame(p) for p in payloads)
    whole = FrameDecoder(max_frame_bytes=64)
    assert whole.feed(stream) == payloads
    # Cut anywhere.
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    split = FrameDecoder(max_frame_bytes=64)
    out = []
    for start, end in zip(points, points[1:]):
        out.extend(split.feed(stream[start:end]))
    assert out == payloads and split.pending_bytes == 0
    # Byte by byte.
    single = FrameDecoder(max_frame_bytes=64)
    out = []
    for i in range(len(stream)):
        out.extend(single.feed(stream[i:i + 1]))
    assert out == payloads and single.pending_bytes == 0


@FAST
@given(data=st.binary(max_size=200), limit=st.integers(0, 64))
def test_frame_decoder_garbage_only_raises_frame_too_large(data: bytes, limit: int) -> None:
    decoder = FrameDecoder(max_frame_bytes=limit)
    try:
        frames = decoder.feed(data)
    except FrameTooLarge:
        return
    assert all(len(f) <= limit for f in frames)
    assert sum(4 + len(f) for f in frames) + decoder.pending_bytes == len(data)
