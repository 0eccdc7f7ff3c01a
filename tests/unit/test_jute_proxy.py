"""The recording proxy (tests/support/recording_proxy.py) against a loopback echo server: bytes
pass unchanged, frames are split by their length prefix however the bytes arrive, and
drop_connections() cuts the client off."""

from __future__ import annotations

import socket
import threading

import pytest

import jute
from tests.support.recording_proxy import RecordingProxy


@pytest.fixture
def echo_port():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def serve(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield port
    listener.close()


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_frames_are_forwarded_and_recorded(echo_port) -> None:
    payloads = [b"", b"a", bytes(range(256)) * 40, b"xyz"]
    stream = b"".join(jute.frame(p) for p in payloads)
    with RecordingProxy(echo_port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            # Odd-sized writes, so frames straddle the reads.
            for start in range(0, len(stream), 7):
                sock.sendall(stream[start:start + 7])
            assert recv_exactly(sock, len(stream)) == stream
            frames = proxy.wait_for(
                lambda fs: sum(f.direction == "reply" for f in fs) == len(payloads), timeout_s=10)
    requests = [f.payload for f in frames if f.direction == "request"]
    replies = [f.payload for f in frames if f.direction == "reply"]
    assert requests == payloads and replies == payloads
    assert {f.connection for f in frames} == {1}
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)


def test_drop_connections_cuts_the_client_off(echo_port) -> None:
    with RecordingProxy(echo_port) as proxy:
        first = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        first.sendall(jute.frame(b"one"))
        assert recv_exactly(first, 7) == jute.frame(b"one")
        proxy.drop_connections()
        assert first.recv(10) == b""
        first.close()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as second:
            second.sendall(jute.frame(b"two"))
            assert recv_exactly(second, 7) == jute.frame(b"two")
        frames = proxy.wait_for(lambda fs: len(fs) == 4, timeout_s=10)
    assert [(f.connection, f.direction, f.payload) for f in frames if f.direction == "request"] == [
        (1, "request", b"one"), (2, "request", b"two")]
