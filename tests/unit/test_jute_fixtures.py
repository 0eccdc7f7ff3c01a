"""Byte-exact checks against frames recorded from the reference ZooKeeper 3.8 and its clients.

tests/fixtures/jute/frames.json holds every frame of real sessions of the Java client (zkCli.sh)
and kazoo against the reference server (see tests/fixtures/jute/README.md). Each frame is decoded
with the record the opcode calls for and re-encoded; the bytes must come back identical. No
server is needed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import pytest

import jute
from jute import records as r
from jute.constants import Err, EventType, KeeperState, OpCode
from jute.opcodes import (
    decode_multi_request, decode_multi_response, encode_multi_request, encode_multi_response,
)

FRAMES_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "jute" / "frames.json"
NO_BODY_REQUESTS = {OpCode.ping, OpCode.closeSession, OpCode.whoAmI}
MULTI_OPCODES = {OpCode.multi, OpCode.multiRead}


class Frame(NamedTuple):
    index: int
    source: str
    connection: int
    direction: str
    payload: bytes
    note: str
    first: bool  # the first frame of its connection in its direction (the handshake)
    opcode: int | None  # for a reply: the opcode of the request with the same xid


def load_frames() -> list[Frame]:
    raw = json.loads(FRAMES_PATH.read_text())
    seen: set[tuple[int, str]] = set()
    # xid -> opcode per connection, from every request of the connection (xids are unique per
    # connection except the reserved negative ones, whose replies do not need the opcode).
    opcodes: dict[int, dict[int, int]] = defaultdict(dict)
    for item in raw:
        key = (item["connection"], item["direction"])
        if item["direction"] == "request" and key in seen:
            header, _ = r.RequestHeader.decode_from(bytes.fromhex(item["hex"]), 0)
            if header.xid >= 0:
                opcodes[item["connection"]][header.xid] = header.type
        seen.add(key)
    seen.clear()
    frames = []
    for index, item in enumerate(raw):
        key = (item["connection"], item["direction"])
        payload = bytes.fromhex(item["hex"])
        opcode = None
        if item["direction"] == "reply" and key in seen:
            xid = r.ReplyHeader.decode_from(payload, 0)[0].xid
            opcode = opcodes[item["connection"]].get(xid)
        frames.append(Frame(index, item["source"], item["connection"], item["direction"], payload,
                            item["note"], key not in seen, opcode))
        seen.add(key)
    return frames


FRAMES = load_frames()
REQUESTS = [f for f in FRAMES if f.direction == "request"]
REPLIES = [f for f in FRAMES if f.direction == "reply"]


def frame_id(frame: Frame) -> str:
    return f"{frame.index:03d}-{frame.source}-c{frame.connection}-{frame.direction}"


class Decoded(NamedTuple):
    header: tuple | None
    body: object  # a record, a list of multi ops/results, or None
    kind: str  # the record (or multi) the body was read as


def decode_request(frame: Frame) -> Decoded:
    payload = frame.payload
    if frame.first:
        return Decoded(None, r.ConnectRequest.decode(payload), "ConnectRequest")
    header, off = r.RequestHeader.decode_from(payload, 0)
    if header.type in NO_BODY_REQUESTS:
        assert off == len(payload), f"{OpCode(header.type).name} request has a body"
        return Decoded(header, None, "")
    if header.type in MULTI_OPCODES:
        ops = decode_multi_request(payload, off)
        return Decoded(header, ops, "multi")
    record = jute.REQUEST_RECORDS[header.type]
    return Decoded(header, record.decode(payload[off:]), record.__name__)


def encode_request(decoded: Decoded) -> bytes:
    if decoded.header is None:
        return r.ConnectRequest.encode(decoded.body)
    head = r.RequestHeader.encode(decoded.header)
    if decoded.kind == "":
        return head
    if decoded.kind == "multi":
        return head + encode_multi_request(decoded.body)
    return head + jute.REQUEST_RECORDS[decoded.header.type].encode(decoded.body)


def decode_reply(frame: Frame) -> Decoded:
    payload = frame.payload
    if frame.first:
        return Decoded(None, r.ConnectResponse.decode(payload), "ConnectResponse")
    header, off = r.ReplyHeader.decode_from(payload, 0)
    rest = payload[off:]
    if header.xid == jute.Xid.NOTIFICATION:
        return Decoded(header, r.WatcherEvent.decode(rest), "WatcherEvent")
    if header.err != 0 or header.xid in (jute.Xid.PING, jute.Xid.AUTH, jute.Xid.SET_WATCHES):
        assert rest == b"", f"reply xid={header.xid} err={header.err} has a body"
        return Decoded(header, None, "")
    assert frame.opcode is not None, f"no request with xid {header.xid}"
    if frame.opcode in MULTI_OPCODES:
        return Decoded(header, decode_multi_response(rest), "multi")
    record = jute.RESPONSE_RECORDS[frame.opcode]
    if record is None:
        assert rest == b"", f"{OpCode(frame.opcode).name} reply has a body"
        return Decoded(header, None, "")
    return Decoded(header, record.decode(rest), record.__name__)


def encode_reply(decoded: Decoded) -> bytes:
    if decoded.header is None:
        return r.ConnectResponse.encode(decoded.body)
    head = r.ReplyHeader.encode(decoded.header)
    if decoded.kind == "":
        return head
    if decoded.kind == "multi":
        return head + encode_multi_response(decoded.body)
    return head + getattr(r, decoded.kind).encode(decoded.body)


# ---------------------------------------------------------------------------------------------
# byte-exact round trips


@pytest.mark.parametrize("frame", REQUESTS, ids=frame_id)
def test_request_roundtrip(frame: Frame) -> None:
    decoded = decode_request(frame)
    assert encode_request(decoded) == frame.payload, frame.note


@pytest.mark.parametrize("frame", REPLIES, ids=frame_id)
def test_reply_roundtrip(frame: Frame) -> None:
    decoded = decode_reply(frame)
    assert encode_reply(decoded) == frame.payload, frame.note


def test_whole_streams_reframe() -> None:
    """Each direction of each connection, framed again and fed byte by byte, splits the same."""
    streams: dict[tuple[int, str], list[bytes]] = defaultdict(list)
    for frame in FRAMES:
        streams[(frame.connection, frame.direction)].append(frame.payload)
    for payloads in streams.values():
        data = b"".join(jute.frame(p) for p in payloads)
        decoder = jute.FrameDecoder()
        out = []
        for i in range(len(data)):
            out.extend(decoder.feed(data[i:i + 1]))
        assert out == payloads
        assert decoder.pending_bytes == 0


# ---------------------------------------------------------------------------------------------
# the fixtures are varied enough, and what they show about the protocol


def _request_opcodes(source: str | None = None) -> set[int]:
    return {decode_request(f).header.type for f in REQUESTS
            if not f.first and (source is None or f.source == source)}


def test_fixtures_cover_the_session() -> None:
    assert {f.source for f in FRAMES} == {"zkCli", "java", "kazoo"}
    wanted = {
        OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL, OpCode.delete,
        OpCode.exists, OpCode.getData, OpCode.setData, OpCode.getACL, OpCode.setACL,
        OpCode.getChildren, OpCode.getChildren2, OpCode.sync, OpCode.ping, OpCode.multi,
        OpCode.auth, OpCode.setWatches, OpCode.setWatches2, OpCode.getEphemerals,
        OpCode.getAllChildrenNumber, OpCode.addWatch, OpCode.removeWatches, OpCode.whoAmI,
        OpCode.closeSession, OpCode.reconfig, OpCode.multiRead, OpCode.checkWatches,
    }
    assert wanted - _request_opcodes() == set()
    assert {OpCode.ping, OpCode.closeSession, OpCode.multi} <= _request_opcodes("kazoo")
    assert {OpCode.ping, OpCode.closeSession} <= _request_opcodes("zkCli")
    errors = {decode_reply(f).header.err for f in REPLIES if not f.first}
    assert {Err.NONODE, Err.NODEEXISTS, Err.BADVERSION, Err.NOAUTH, Err.NOTEMPTY,
            Err.NOWATCHER, Err.AUTHFAILED} <= errors
    events = {decode_reply(f).body.type for f in REPLIES
              if not f.first and decode_reply(f).kind == "WatcherEvent"}
    assert {EventType.NodeCreated, EventType.NodeDeleted, EventType.NodeDataChanged,
            EventType.NodeChildrenChanged} <= events


def test_connect_handshakes() -> None:
    for frame in FRAMES:
        if not frame.first:
            continue
        if frame.direction == "request":
            request = r.ConnectRequest.decode(frame.payload)
            assert request.protocol_version == 0
            assert request.read_only is False  # both clients send the trailing flag
            assert len(request.passwd) == 16 or (request.session_id == 0 and request.passwd == bytes(16))
        else:
            response = r.ConnectResponse.decode(frame.payload)
            assert response.session_id != 0 and len(response.passwd) == 16
            assert response.read_only is False  # the server sends it too
    # A reconnect carries the session being resumed.
    assert any(r.ConnectRequest.decode(f.payload).session_id != 0
               for f in REQUESTS if f.first)


def _multi_results(opcode: int) -> list[list]:
    return [decode_reply(f).body for f in REPLIES
            if f.opcode == opcode and decode_reply(f).header.err == 0]


def test_multi_failure_reply_shape() -> None:
    """A failed multi answers every op with (error, code) then ErrorResponse(code): OK for the
    ops before the one that failed, its own code for it, RUNTIMEINCONSISTENCY after it."""
    failed = [results for results in _multi_results(OpCode.multi)
              if any(res.type == OpCode.error for res in results)]
    assert len(failed) >= 2, "the fixtures hold failed multis (kazoo and java)"
    for results in failed:
        assert all(res.type == OpCode.error for res in results)
        assert all(res.response == r.ErrorResponse(res.err) for res in results)
        codes = [res.err for res in results]
        culprit = next(i for i, code in enumerate(codes) if code not in (0, Err.RUNTIMEINCONSISTENCY))
        assert codes[:culprit] == [0] * culprit
        assert codes[culprit + 1:] == [Err.RUNTIMEINCONSISTENCY] * (len(codes) - culprit - 1)
    assert {Err.BADVERSION, Err.NONODE} <= {res.err for results in failed for res in results}


def test_multi_success_result_types() -> None:
    """create answers create (CreateResponse); createTTL/createContainer answer create2."""
    seen = {res.type for results in _multi_results(OpCode.multi) for res in results}
    assert {OpCode.create, OpCode.create2, OpCode.setData, OpCode.check, OpCode.delete} <= seen


def test_multi_read_keeps_going_after_an_error() -> None:
    results = [res.type for results in _multi_results(OpCode.multiRead) for res in results]
    assert results.count(OpCode.error) == 1
    assert {OpCode.getData, OpCode.getChildren} <= set(results)
    for reply in _multi_results(OpCode.multiRead):
        for res in reply:
            if res.type == OpCode.error:
                assert res.err == Err.NONODE and res.response == r.ErrorResponse(Err.NONODE)


def test_watch_notifications_have_no_zxid() -> None:
    for frame in REPLIES:
        if frame.first:
            continue
        decoded = decode_reply(frame)
        if decoded.kind == "WatcherEvent":
            assert decoded.header == r.ReplyHeader(-1, -1, 0)
            assert decoded.body.state == KeeperState.SyncConnected
            assert decoded.body.path.startswith("/")
