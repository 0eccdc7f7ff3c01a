"""Seeded protocol fuzzing of zkpy while a well-behaved client works.

Several connections send random and mutated frames (valid requests with bytes flipped, lengths
changed, frames truncated or spliced together, opcodes swapped, garbage, four-letter words
before a handshake) for a bounded time. Meanwhile a kazoo client, authenticated and working
under a node only it may change, keeps creating, reading, updating and deleting; every one of
its operations must succeed. At the end zkpy answers ruok, a fresh client works, the kazoo
client's data is what it last wrote, and zkpy logged no traceback or error.

Seeds: FUZZ_SEED=<int> runs that seed alone (for the whole time budget); otherwise a fixed
list. The seed is printed at the start and named in every failure, so
``FUZZ_SEED=<seed> pytest tests/scenario/test_fuzz.py`` replays a failing run's frames (thread
interleaving aside).
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time

import pytest

from jute import records as r
from jute.constants import CreateMode, OpCode, Xid
from jute.opcodes import encode_multi_request
from tests.support.rawclient import (
    OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, op_check, op_create, op_delete, op_get_data, op_set_data,
)
from tests.support.servers import four_letter_word

TOTAL_SECONDS = 15.0
FUZZERS = 4
SEEDS = [int(os.environ["FUZZ_SEED"])] if os.environ.get("FUZZ_SEED") else [20261126, 7, 4242]
SECONDS_PER_SEED = TOTAL_SECONDS / len(SEEDS)

_INT = struct.Struct(">i")
PATHS = ["/", "/f", "/f/a", "/f/b/c", "/guarded", "/guarded/anchor", "/zookeeper",
         "/zookeeper/config", "/zookeeper/quota", "/e", "/t"]
WORDS = ["ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi", "wchs", "wchc",
         "wchp", "dump", "dirs", "isro", "gtmk", "stmk"]
NETWORK_ERRORS = (OSError, TimeoutError)


# --- frames -------------------------------------------------------------------------------------

def frame(payload: bytes) -> bytes:
    return _INT.pack(len(payload)) + payload


def connect_payload(rng: random.Random) -> bytes:
    session_id, passwd = 0, bytes(16)
    if rng.random() < 0.1:  # try to resume a session that is not ours
        session_id, passwd = rng.getrandbits(63), rng.randbytes(16)
    last_zxid = rng.getrandbits(40) if rng.random() < 0.05 else 0  # ahead of us: refused
    timeout = rng.choice([1, 4000, 30000, -1, 2**31 - 1])
    return r.ConnectRequest.encode(
        r.ConnectRequest(0, last_zxid, timeout, session_id, passwd, rng.random() < 0.1))


def request_body(rng: random.Random) -> tuple[int, bytes]:
    """A valid request (opcode and encoded body) on one of PATHS."""
    path = rng.choice(PATHS)
    child = path.rstrip("/") + "/" + rng.choice(["x", "y", "seq-", "\u00e4"])
    data = rng.randbytes(rng.choice([0, 3, 100]))
    acl = rng.choice([OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, [r.ACL(31, r.Id("ip", "127.0.0.1"))],
                      [r.ACL(31, r.Id("digest", "fuzz:AAAA"))]])
    flags = rng.choice([0, 1, 2, 3, CreateMode.CONTAINER])
    choices = [
        (OpCode.create, r.CreateRequest(child, data, acl, flags)),
        (OpCode.create2, r.CreateRequest(child, data, acl, flags)),
        (OpCode.createContainer, r.CreateRequest(child, data, acl, CreateMode.CONTAINER)),
        (OpCode.createTTL, r.CreateTTLRequest(child, data, acl, CreateMode.PERSISTENT_WITH_TTL,
                                              rng.choice([1, 1000, -1]))),
        (OpCode.delete, r.DeleteRequest(path, rng.choice([-1, 0, 3]))),
        (OpCode.exists, r.ExistsRequest(path, rng.random() < 0.5)),
        (OpCode.getData, r.GetDataRequest(path, rng.random() < 0.5)),
        (OpCode.setData, r.SetDataRequest(path, data, rng.choice([-1, 0, 1]))),
        (OpCode.getACL, r.GetACLRequest(path)),
        (OpCode.setACL, r.SetACLRequest(child, acl, -1)),
        (OpCode.getChildren, r.GetChildrenRequest(path, rng.random() < 0.5)),
        (OpCode.getChildren2, r.GetChildren2Request(path, rng.random() < 0.5)),
        (OpCode.sync, r.SyncRequest(path)),
        (OpCode.check, r.CheckVersionRequest(path, rng.choice([-1, 0, 5]))),
        (OpCode.checkWatches, r.CheckWatchesRequest(path, rng.choice([1, 2, 3]))),
        (OpCode.removeWatches, r.RemoveWatchesRequest(path, rng.choice([1, 2, 3]))),
        (OpCode.setWatches, r.SetWatches(rng.choice([0, 10**6]), [path], [child], [path])),
        (OpCode.setWatches2, r.SetWatches2(0, [path], [child], [path], [path], [child])),
        (OpCode.getEphemerals, r.GetEphemeralsRequest(path)),
        (OpCode.getAllChildrenNumber, r.GetAllChildrenNumberRequest(path)),
        (OpCode.addWatch, r.AddWatchRequest(path, rng.choice([0, 1, 2]))),
        (OpCode.auth, r.AuthPacket(0, rng.choice(["digest", "ip", "x"]), b"u:" + data[:3])),
    ]
    op, record = rng.choice(choices)
    if rng.random() < 0.1:
        ops = [op_create(child, data), op_set_data(path, data), op_check(path, 0),
               op_delete(child), op_get_data(path)]
        op = rng.choice([OpCode.multi, OpCode.multiRead])
        return op, encode_multi_request(rng.sample(ops, rng.randint(0, len(ops))))
    if rng.random() < 0.05:
        return rng.choice([OpCode.ping, OpCode.whoAmI, OpCode.closeSession]), b""
    return op, type(record).encode(record)


def request_frame(rng: random.Random, xid: int) -> bytes:
    op, body = request_body(rng)
    if op == OpCode.auth:
        xid = Xid.AUTH
    elif op == OpCode.ping:
        xid = Xid.PING
    return frame(r.RequestHeader.encode(r.RequestHeader(xid, int(op))) + body)


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """One random mutation of a frame (``other``: a second frame to splice with)."""
    kind = rng.randrange(9)
    buf = bytearray(data)
    if kind == 0:  # flip a few bytes anywhere but the length prefix
        for _ in range(rng.randint(1, 4)):
            if len(buf) > 4:
                buf[rng.randrange(4, len(buf))] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if kind == 1:  # a different length prefix
        length = rng.choice([len(buf) - 4 + rng.randint(-6, 6), rng.randint(-2**31, 2**31 - 1),
                             0, -1, 0xFFFFF, 0x100000, rng.randint(0, 64)])
        return _INT.pack(length) + bytes(buf[4:])
    if kind == 2:  # truncated: the rest of the stream is read as this frame's remainder
        return bytes(buf[:rng.randrange(len(buf))])
    if kind == 3:  # spliced with another frame
        return bytes(buf[:rng.randrange(len(buf) + 1)]) + other[rng.randrange(len(other) + 1):]
    if kind == 4:  # another opcode in the header
        if len(buf) >= 12:
            op = rng.choice([rng.randint(-20, 120), rng.getrandbits(31), OpCode.createSession,
                             OpCode.deleteContainer, OpCode.reconfig, OpCode.sasl, 0, -1])
            buf[8:12] = _INT.pack(op)
        return bytes(buf)
    if kind == 5:  # bytes inserted into the body, length kept consistent
        cut = rng.randrange(4, len(buf) + 1)
        body = bytes(buf[4:cut]) + rng.randbytes(rng.randint(1, 16)) + bytes(buf[cut:])
        return frame(body)
    if kind == 6:  # a string length inside the body made huge or negative
        if len(buf) > 20:
            at = rng.randrange(12, len(buf) - 3)
            buf[at:at + 4] = _INT.pack(rng.choice([-1, -2, 2**31 - 1, 0x7FFF, len(buf)]))
        return bytes(buf)
    if kind == 7:  # garbage
        return rng.randbytes(rng.randint(1, 64))
    return data  # unchanged


# --- one fuzzing connection ---------------------------------------------------------------------

class Fuzzer(threading.Thread):
    def __init__(self, port: int, seed: int, index: int, deadline: float) -> None:
        super().__init__(daemon=True, name=f"fuzzer-{index}")
        self.port = port
        self.rng = random.Random(f"{seed}:{index}")
        self.deadline = deadline
        self.connections = 0
        self.frames = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while time.monotonic() < self.deadline:
                try:
                    self.one_connection()
                except NETWORK_ERRORS:
                    pass  # the server closed on us: that is its right
        except BaseException as error:  # a bug in the fuzzer itself: report it
            self.failure = error

    def one_connection(self) -> None:
        rng = self.rng
        self.connections += 1
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            roll = rng.random()
            if roll < 0.08:
                self.four_letter_word(sock)
                return
            connect = frame(connect_payload(rng))
            if roll < 0.2:
                sock.sendall(mutate(rng, connect, request_frame(rng, 1)))
                self.drain(sock, 0.05)
                return
            sock.sendall(connect)
            xid = 1
            for _ in range(rng.randint(1, 40)):
                if time.monotonic() > self.deadline:
                    return
                data = request_frame(rng, xid)
                if rng.random() < 0.5:
                    data = mutate(rng, data, request_frame(rng, xid + 1))
                sock.sendall(data)
                self.frames += 1
                xid += 1
                if not self.drain(sock, 0.0 if rng.random() < 0.8 else 0.02):
                    return

    def four_letter_word(self, sock: socket.socket) -> None:
        word = self.rng.choice(WORDS).encode()
        sock.sendall(word + (self.rng.randbytes(4) if self.rng.random() < 0.3 else b""))
        self.drain(sock, 1.0)

    @staticmethod
    def drain(sock: socket.socket, wait_s: float) -> bool:
        """Read whatever the server sent (within ``wait_s``); False once it closed."""
        sock.settimeout(wait_s if wait_s > 0 else 0.0001)
        try:
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    return False
                sock.settimeout(0.0001)
        except (socket.timeout, BlockingIOError):
            return True


# --- the test -----------------------------------------------------------------------------------

def _kazoo(server, **kwargs):
    from kazoo.client import KazooClient

    client = KazooClient(hosts=server.connect_string, timeout=10.0, **kwargs)
    client.start(timeout=15)
    return client


def _well_behaved_client_loop(client, deadline: float, rng: random.Random) -> tuple[int, dict]:
    """create/get/set/delete under /guarded until the deadline; returns (ops, expected data)."""
    expected: dict[str, bytes] = {}
    ops = 0
    i = 0
    while time.monotonic() < deadline:
        path = f"/guarded/n{i % 16}"
        value = f"{i}".encode() + rng.randbytes(rng.randint(0, 20))
        if path in expected:
            if rng.random() < 0.2:
                client.delete(path)
                del expected[path]
            else:
                client.set(path, value)
                expected[path] = value
        else:
            client.create(path, value)
            expected[path] = value
        if path in expected:
            data, stat = client.get(path)
            assert data == expected[path], (path, data, expected[path])
        assert sorted(client.get_children("/guarded")) == sorted(
            ["anchor"] + [p.rsplit("/", 1)[1] for p in expected])
        ops += 1
        i += 1
    return ops, expected


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_fuzzing_while_a_client_works(server_factory, seed):
    print(f"FUZZ_SEED={seed}")
    from kazoo.security import make_digest_acl

    server = server_factory("zkpy")
    acl = [make_digest_acl("fuzz", "secret", all=True)]
    client = _kazoo(server, auth_data=[("digest", "fuzz:secret")], default_acl=acl)
    fuzzers: list[Fuzzer] = []
    try:
        client.create("/guarded", b"root", acl=acl)
        client.create("/guarded/anchor", b"", acl=acl)
        deadline = time.monotonic() + SECONDS_PER_SEED
        fuzzers = [Fuzzer(server.port, seed, i, deadline) for i in range(FUZZERS)]
        for fuzzer in fuzzers:
            fuzzer.start()
        try:
            ops, expected = _well_behaved_client_loop(client, deadline, random.Random(seed))
        except Exception as error:
            raise AssertionError(f"FUZZ_SEED={seed}: the well-behaved client failed: {error!r}; "
                                 f"log:\n{server.log_tail()}") from error
        for fuzzer in fuzzers:
            fuzzer.join(30)
            assert not fuzzer.is_alive(), f"FUZZ_SEED={seed}: {fuzzer.name} hangs"
            assert fuzzer.failure is None, f"FUZZ_SEED={seed}: {fuzzer.name}: {fuzzer.failure!r}"
        assert ops > 0 and sum(f.frames for f in fuzzers) > 0, f"FUZZ_SEED={seed}: nothing ran"
        print(f"FUZZ_SEED={seed}: {ops} client ops, "
              f"{sum(f.connections for f in fuzzers)} fuzz connections, "
              f"{sum(f.frames for f in fuzzers)} fuzz frames")

        assert server.process.poll() is None, f"FUZZ_SEED={seed}: zkpy died:\n{server.log_tail()}"
        assert four_letter_word(server.port, "ruok", timeout_s=10) == "imok", f"FUZZ_SEED={seed}"
        for path, value in expected.items():
            assert client.get(path)[0] == value, f"FUZZ_SEED={seed}: {path}"
        assert client.get("/guarded")[0] == b"root", f"FUZZ_SEED={seed}"
        fresh = _kazoo(server)
        try:
            fresh.create("/after-fuzz", b"ok")
            assert fresh.get("/after-fuzz")[0] == b"ok"
            assert fresh.exists("/guarded/anchor"), f"FUZZ_SEED={seed}"
            fresh.delete("/after-fuzz")
        finally:
            fresh.stop()
            fresh.close()
        log = server.log_path.read_text(errors="replace")
        bad = [line for line in log.splitlines()
               if "Traceback" in line or "[error" in line or "[critical" in line
               or "Exception" in line]
        assert not bad, f"FUZZ_SEED={seed}: zkpy logged errors:\n" + "\n".join(bad[:20]) + \
            "\n" + server.log_tail(80)
    finally:
        for fuzzer in fuzzers:
            fuzzer.deadline = 0
        for fuzzer in fuzzers:
            fuzzer.join(10)
        client.stop()
        client.close()
