"""The etcd keyspace's revisions, kept by each member from the change feed: etcd's MVCC view.

The znode tree holds only each key's latest state. etcd clients also read the past: a Range at
an older revision, a Watch from one. Every member keeps, for each key, the versions the change
feed showed it (a put's record, or a tombstone) in revision order, until a replicated Compact
drops those below the compaction revision. Revisions are zxids: monotonic across the ensemble
and the same on every member, with gaps where ZooKeeper clients wrote (etcd clients only need
them to grow). A member that starts, or installs a leader's snapshot, knows only the state it
loaded: the revisions before it count as compacted (``compact_revision``), so a client asking
for them gets etcd's compacted answer and re-lists, never a wrong one.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Iterator, NamedTuple

from sortedcontainers import SortedList

from zkpy.frontends.etcd.keys import ALL_FROM


class KeyValue(NamedTuple):
    """mvccpb.KeyValue's fields; version counts the puts since the key was created (1 first)."""
    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes
    lease: int


class Event(NamedTuple):
    """One change at ``revision``: ``kv`` is None for a delete; ``prev`` the key's previous
    record, if the history still has it."""
    revision: int
    key: bytes
    kv: KeyValue | None
    prev: KeyValue | None


class MvccIndex:
    """Keys (sorted bytewise) and their versions since ``compact_revision``.

    Ordering duty of the caller: ``put`` and ``delete`` come in revision order, all changes
    of one revision before the next, as the change feed delivers them."""

    def __init__(self, revision: int = 0) -> None:
        self.keys: SortedList = SortedList()
        self.versions: dict[bytes, list[tuple[int, KeyValue | None]]] = {}
        self.revision = revision  # the last revision seen (a change's, or the load's)
        self.compact_revision = revision
        self.live_count = 0
        self.version_count = 0  # versions held, the latest of each key included

    # -- changes ------------------------------------------------------------------------------

    def put(self, kv: KeyValue) -> Event:
        prev = self.latest(kv.key)
        self._add(kv.key, kv.mod_revision, kv)
        if prev is None:
            self.live_count += 1
        return Event(kv.mod_revision, kv.key, kv, prev)

    def delete(self, key: bytes, revision: int) -> Event | None:
        prev = self.latest(key)
        if prev is None:
            return None
        self._add(key, revision, None)
        self.live_count -= 1
        return Event(revision, key, None, prev)

    def _add(self, key: bytes, revision: int, kv: KeyValue | None) -> None:
        versions = self.versions.get(key)
        if versions is None:
            self.versions[key] = [(revision, kv)]
            self.keys.add(key)
            self.version_count += 1
        elif versions[-1][0] == revision:
            versions[-1] = (revision, kv)  # the same txn changed it twice: its last state
        else:
            versions.append((revision, kv))
            self.version_count += 1
        if revision > self.revision:
            self.revision = revision

    def advance(self, revision: int) -> None:
        """A txn that changed no etcd key still moves the store's revision."""
        if revision > self.revision:
            self.revision = revision

    # -- reads --------------------------------------------------------------------------------

    def latest(self, key: bytes) -> KeyValue | None:
        versions = self.versions.get(key)
        return versions[-1][1] if versions else None

    def at(self, key: bytes, revision: int) -> KeyValue | None:
        """The key's record as of ``revision`` (0: the latest)."""
        versions = self.versions.get(key)
        if not versions:
            return None
        if not revision or revision >= versions[-1][0]:
            return versions[-1][1]
        i = bisect_right(versions, revision, key=_revision_of)
        return versions[i - 1][1] if i else None

    def keys_in(self, start: bytes, range_end: bytes) -> Iterator[bytes]:
        """Every key with a history in etcd's range (start, range_end), in byte order."""
        if not range_end:
            if start in self.versions:
                yield start
            return
        if range_end == ALL_FROM:
            yield from self.keys.irange(start, None)
        elif start < range_end:
            yield from self.keys.irange(start, range_end, inclusive=(True, False))

    def range(self, start: bytes, range_end: bytes, revision: int = 0) -> Iterator[KeyValue]:
        """The live records in the range as of ``revision``, in key order."""
        for key in self.keys_in(start, range_end):
            kv = self.at(key, revision)
            if kv is not None:
                yield kv

    def events_since(self, start_revision: int, start: bytes, range_end: bytes) -> list[Event]:
        """Every change in the range from ``start_revision`` on (the caller has checked it
        is above ``compact_revision``), in revision order, keys in byte order within one."""
        events = []
        for key in self.keys_in(start, range_end):
            versions = self.versions[key]
            i = bisect_right(versions, start_revision - 1, key=_revision_of)
            prev = versions[i - 1][1] if i else None
            for revision, kv in versions[i:]:
                events.append(Event(revision, key, kv, prev))
                prev = kv
        events.sort(key=_revision_of)
        return events

    # -- compaction ---------------------------------------------------------------------------

    def compact(self, revision: int) -> None:
        """Forget every version superseded at or before ``revision``; a key whose last
        version by then is a tombstone goes altogether."""
        if revision <= self.compact_revision:
            return
        self.compact_revision = revision
        for key in list(self.keys):
            versions = self.versions[key]
            i = bisect_right(versions, revision, key=_revision_of)
            if i == 0:
                continue
            keep = versions[i - 1:] if versions[i - 1][1] is not None else versions[i:]
            self.version_count -= len(versions) - len(keep)
            if keep:
                self.versions[key] = keep
            else:
                del self.versions[key]
                self.keys.remove(key)

    def bound(self, max_versions: int) -> int | None:
        """Compact this member's history (not the ensemble's) so that it holds at most half of
        ``max_versions`` once it holds more: the oldest superseded versions go first. Returns
        the new compaction revision, or None if nothing had to go."""
        if self.version_count <= max_versions:
            return None
        superseded = sorted(revision for versions in self.versions.values()
                            for revision, _ in versions[:-1])
        excess = self.version_count - max_versions // 2
        if not superseded:
            return None
        revision = superseded[min(excess, len(superseded)) - 1]
        self.compact(revision)
        return revision


def _revision_of(entry) -> int:
    return entry[0]
