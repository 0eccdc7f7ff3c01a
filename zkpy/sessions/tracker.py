"""Sessions and their expiry, driven by an explicit clock.

Expiry works as ZooKeeper's ExpiryQueue does: a session's deadline is rounded up to the next
multiple of the tick, so all sessions due in one tick sit in one bucket and ``expire(now_ms)``
looks only at buckets whose time has come. ``touch`` moves a session to its new bucket; a
session that is closing is never touched again. The tracker never reads a clock: every method
that needs the time takes ``now_ms``.
"""

from __future__ import annotations

import hashlib


class Session:
    __slots__ = ("session_id", "timeout_ms", "expires_at_ms", "closing", "read_only")

    def __init__(self, session_id: int, timeout_ms: int, read_only: bool = False) -> None:
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.expires_at_ms = 0
        self.closing = False
        self.read_only = read_only


# The secret that asks for ZooKeeper's own passwords: every member of an ensemble, Java or
# zkpy, must derive the same password for a session, or a client moving between them fails.
JAVA_SESSION_SECRET = b""


def session_password(session_id: int, secret: bytes) -> bytes:
    """The 16-byte password of a session: derived, so it survives restarts unstored. With
    ``JAVA_SESSION_SECRET`` it is ZooKeeper's (``java_session_password``)."""
    if not secret:
        return java_session_password(session_id)
    return hashlib.sha256(secret + session_id.to_bytes(8, "big", signed=True)).digest()[:16]


_JAVA_RANDOM_MULTIPLIER = 0x5DEECE66D
_JAVA_RANDOM_ADDEND = 0xB
_JAVA_RANDOM_MASK = (1 << 48) - 1
_ZK_SUPER_SECRET = 0xB3415C00  # ZooKeeperServer.superSecret


def java_session_password(session_id: int) -> bytes:
    """The 16-byte password ZooKeeper gives a session (ZooKeeperServer.generatePasswd):
    ``new java.util.Random(sessionId ^ 0xB3415C00).nextBytes(new byte[16])``.

    java.util.Random: the seed is scrambled as ``(seed ^ 0x5DEECE66D) & (2**48 - 1)``; each
    ``nextInt()`` steps the 48-bit LCG ``seed = seed * 0x5DEECE66D + 0xB`` and takes its top 32
    bits; nextBytes fills the array four bytes per nextInt, lowest byte first. ``session_id``
    is a signed Java long (an unsigned 64-bit value gives the same result)."""
    seed = ((session_id ^ _ZK_SUPER_SECRET) ^ _JAVA_RANDOM_MULTIPLIER) & _JAVA_RANDOM_MASK
    out = bytearray()
    for _ in range(4):  # 16 bytes: four nextInt() calls, each used whole
        seed = (seed * _JAVA_RANDOM_MULTIPLIER + _JAVA_RANDOM_ADDEND) & _JAVA_RANDOM_MASK
        out += (seed >> 16).to_bytes(4, "little")
    return bytes(out)


def first_session_id(server_id: int, now_ms: int) -> int:
    """ZooKeeper's initializeNextSessionId: server id in the top byte, time below it."""
    value = ((now_ms << 24) & 0xFFFFFFFFFFFFFFFF) >> 8
    value |= (server_id & 0xFF) << 56
    return value - (1 << 64) if value >= (1 << 63) else value


class SessionTracker:
    """Live sessions, their deadlines in tick buckets, and the next session id."""

    def __init__(self, tick_ms: int, server_id: int, now_ms: int) -> None:
        self.tick_ms = tick_ms
        self.sessions: dict[int, Session] = {}
        self._buckets: dict[int, set[int]] = {}
        self._next_session_id = first_session_id(server_id, now_ms)

    def _bucket_time(self, time_ms: int) -> int:
        return (time_ms // self.tick_ms + 1) * self.tick_ms

    def next_session_id(self) -> int:
        session_id = self._next_session_id
        self._next_session_id += 1
        while self._next_session_id in self.sessions or self._next_session_id == 0:
            self._next_session_id += 1
        return session_id

    def add(self, session_id: int, timeout_ms: int, now_ms: int) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = Session(session_id, timeout_ms)
        session.timeout_ms = timeout_ms
        self._move(session, now_ms)
        return session

    def get(self, session_id: int) -> Session | None:
        return self.sessions.get(session_id)

    def touch(self, session_id: int, now_ms: int) -> bool:
        """Extend a live session's deadline; False if it is unknown or closing."""
        session = self.sessions.get(session_id)
        if session is None or session.closing:
            return False
        self._move(session, now_ms)
        return True

    def _move(self, session: Session, now_ms: int) -> None:
        new_time = self._bucket_time(now_ms + session.timeout_ms)
        old_time = session.expires_at_ms
        if new_time == old_time:
            return
        if old_time:
            bucket = self._buckets.get(old_time)
            if bucket is not None:
                bucket.discard(session.session_id)
                if not bucket:
                    del self._buckets[old_time]
        self._buckets.setdefault(new_time, set()).add(session.session_id)
        session.expires_at_ms = new_time

    def set_closing(self, session_id: int) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            session.closing = True

    def remove(self, session_id: int) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        bucket = self._buckets.get(session.expires_at_ms)
        if bucket is not None:
            bucket.discard(session_id)
            if not bucket:
                del self._buckets[session.expires_at_ms]

    def expire(self, now_ms: int) -> list[int]:
        """Sessions whose deadline has passed, in id order; each is marked closing."""
        due = sorted(t for t in self._buckets if t <= now_ms)
        expired: list[int] = []
        for bucket_time in due:
            for session_id in sorted(self._buckets.pop(bucket_time)):
                session = self.sessions.get(session_id)
                if session is not None and not session.closing:
                    session.closing = True
                    expired.append(session_id)
        return expired

    def next_expiry_ms(self) -> int | None:
        return min(self._buckets) if self._buckets else None
