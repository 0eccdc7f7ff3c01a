"""A watch of one etcd watch stream, as the front end keeps it."""

from __future__ import annotations

from zkpy.frontends.etcd.keys import in_range
from zkpy.frontends.etcd.mvcc import Event


class Watcher:
    """One watch of a stream: the range, its options, and the next revision it is owed."""

    __slots__ = ("stream_id", "watch_id", "key", "range_end", "prev_kv", "no_put",
                 "no_delete", "next_revision", "progress_notify", "last_sent_ms", "fragment")

    def __init__(self, stream_id, watch_id, key, range_end, prev_kv, no_put, no_delete,
                 next_revision, progress_notify=False, now_ms=0, fragment=False) -> None:
        self.progress_notify = progress_notify
        self.last_sent_ms = now_ms
        self.fragment = fragment
        self.stream_id = stream_id
        self.watch_id = watch_id
        self.key = key
        self.range_end = range_end
        self.prev_kv = prev_kv
        self.no_put = no_put
        self.no_delete = no_delete
        self.next_revision = next_revision

    def wants(self, event: Event) -> bool:
        if not in_range(event.key, self.key, self.range_end):
            return False
        return not (self.no_delete if event.kv is None else self.no_put)
