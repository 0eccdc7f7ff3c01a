"""SessionTracker and WatchManager on their own: explicit clock, no sockets."""

from __future__ import annotations

from jute import EventType
from zkpy.sessions.tracker import SessionTracker, first_session_id, session_password
from zkpy.tree.watches import WatchManager

CREATED, DELETED, CHANGED, CHILDREN = (int(EventType.NodeCreated), int(EventType.NodeDeleted),
                                       int(EventType.NodeDataChanged), int(EventType.NodeChildrenChanged))
OPEN = ()


def test_sessions_expire_in_tick_buckets():
    tracker = SessionTracker(tick_ms=1000, server_id=1, now_ms=10_000)
    tracker.add(1, 3000, now_ms=10_000)
    tracker.add(2, 3000, now_ms=10_400)  # same bucket: deadlines round up to the next tick
    assert tracker.get(1).expires_at_ms == tracker.get(2).expires_at_ms == 14_000
    assert tracker.expire(13_999) == []
    assert tracker.expire(14_000) == [1, 2]
    assert tracker.get(1).closing and not tracker.touch(1, 14_000)


def test_touch_moves_the_deadline_and_closing_sessions_stay_closing():
    tracker = SessionTracker(tick_ms=1000, server_id=0, now_ms=0)
    tracker.add(7, 2000, now_ms=0)
    assert tracker.touch(7, 1500)
    assert tracker.expire(3000) == []
    assert tracker.expire(4000) == [7]
    tracker.remove(7)
    assert tracker.get(7) is None and not tracker.touch(7, 4000)


def test_session_ids_and_passwords():
    assert first_session_id(3, 1_000) >> 56 == 3
    tracker = SessionTracker(tick_ms=1000, server_id=2, now_ms=123_456)
    first, second = tracker.next_session_id(), tracker.next_session_id()
    assert second == first + 1 and first >> 56 == 2
    assert session_password(first, b"s") == session_password(first, b"s")
    assert session_password(first, b"s") != session_password(second, b"s")
    assert len(session_password(first, b"s")) == 16


def test_one_shot_watches_fire_once_and_deletion_notifies_once():
    watches = WatchManager()
    watches.add_data_watch("/a", 1)
    watches.add_child_watch("/a", 1)
    watches.add_child_watch("/a", 2)
    fired = watches.trigger([(DELETED, "/a", OPEN), (CHILDREN, "/", OPEN)])
    assert [(s, e, p) for s, e, p, _ in fired] == [(1, DELETED, "/a"), (2, DELETED, "/a")]
    assert watches.watch_count() == 0
    assert watches.trigger([(CHANGED, "/a", OPEN)]) == []


def test_persistent_and_recursive_watches_stay():
    watches = WatchManager()
    watches.add_persistent("/p", 1, recursive=False)
    watches.add_persistent("/r", 2, recursive=True)
    changes = [(CREATED, "/p/x", OPEN), (CHILDREN, "/p", OPEN), (CHANGED, "/p", OPEN),
               (CREATED, "/r/x/y", OPEN), (CHILDREN, "/r/x", OPEN), (CHANGED, "/rx", OPEN)]
    fired = [(s, e, p) for s, e, p, _ in watches.trigger(changes)]
    assert fired == [(1, CHILDREN, "/p"), (1, CHANGED, "/p"), (2, CREATED, "/r/x/y")]
    assert watches.session_watch_count(1) == 2 and watches.session_watch_count(2) == 2
    watches.remove_session(1)
    assert watches.session_watch_count(1) == 0 and watches.watch_count() == 2
