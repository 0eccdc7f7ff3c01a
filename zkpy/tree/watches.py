"""Watch registrations and what a change fires.

Semantics are ZooKeeper 3.8's WatchManager:
* a standard data watch (getData/exists) fires once on NodeCreated, NodeDataChanged or
  NodeDeleted of its path; a standard child watch fires once on NodeChildrenChanged of its path
  or NodeDeleted of the node itself;
* a persistent watch (addWatch mode 0) is both, on its path, and stays;
* a persistent-recursive watch (mode 1) fires for its path and every descendant on
  NodeCreated, NodeDataChanged and NodeDeleted (never NodeChildrenChanged), and stays;
* one change notifies a session at most once per kind of table, and a deletion notifies a
  session at most once in all.

Watchers are session ids; the runtime maps them to connections. The manager is pure: ``trigger``
returns the (session_id, event_type, path) notifications to send, in a deterministic order.
"""

from __future__ import annotations

from jute import EventType

from zkpy.tree import paths

CREATED = int(EventType.NodeCreated)
DELETED = int(EventType.NodeDeleted)
DATA_CHANGED = int(EventType.NodeDataChanged)
CHILDREN_CHANGED = int(EventType.NodeChildrenChanged)

STANDARD = 0
PERSISTENT = 1
PERSISTENT_RECURSIVE = 2


class WatchTable:
    """path -> {session_id: mode} plus the reverse index used to drop a session's watches."""

    __slots__ = ("by_path", "by_session", "recursive_count")

    def __init__(self) -> None:
        self.by_path: dict[str, dict[int, int]] = {}
        self.by_session: dict[int, set[str]] = {}
        self.recursive_count = 0

    def add(self, path: str, session_id: int, mode: int) -> None:
        watchers = self.by_path.get(path)
        if watchers is None:
            watchers = self.by_path[path] = {}
        # One mode per session and path: a later registration replaces the earlier one, so a
        # one-shot getData on a persistently watched path turns it one-shot (ZooKeeper 3.8's
        # WatcherModeManager does the same).
        previous = watchers.get(session_id)
        if previous == PERSISTENT_RECURSIVE:
            self.recursive_count -= 1
        if mode == PERSISTENT_RECURSIVE:
            self.recursive_count += 1
        watchers[session_id] = mode
        self.by_session.setdefault(session_id, set()).add(path)

    def remove(self, path: str, session_id: int) -> bool:
        watchers = self.by_path.get(path)
        if not watchers or session_id not in watchers:
            return False
        mode = watchers.pop(session_id)
        if mode == PERSISTENT_RECURSIVE:
            self.recursive_count -= 1
        if not watchers:
            del self.by_path[path]
        owned = self.by_session.get(session_id)
        if owned is not None:
            owned.discard(path)
            if not owned:
                del self.by_session[session_id]
        return True

    def has(self, path: str, session_id: int) -> bool:
        watchers = self.by_path.get(path)
        return bool(watchers) and session_id in watchers

    def remove_session(self, session_id: int) -> None:
        for path in list(self.by_session.get(session_id, ())):
            self.remove(path, session_id)

    def collect(self, path: str, event_type: int, suppress: set[int] | None) -> list[int]:
        """Sessions to notify for ``event_type`` on ``path``; fires one-shot watches."""
        fired: list[int] = []
        watchers = self.by_path.get(path)
        if watchers:
            for session_id, mode in list(watchers.items()):
                if mode == PERSISTENT_RECURSIVE and event_type == CHILDREN_CHANGED:
                    continue
                if mode == STANDARD:
                    # A one-shot watch is used up even when its session was already told by
                    # the other table (the suppressed case of a deletion).
                    self.remove(path, session_id)
                if suppress is None or session_id not in suppress:
                    fired.append(session_id)
        if self.recursive_count and event_type != CHILDREN_CHANGED:
            ancestor = paths.parent_of(path)
            while ancestor:
                above = self.by_path.get(ancestor)
                if above:
                    for session_id, mode in above.items():
                        if mode == PERSISTENT_RECURSIVE and session_id not in fired and (
                                suppress is None or session_id not in suppress):
                            fired.append(session_id)
                ancestor = paths.parent_of(ancestor)
        return fired

    def count(self) -> int:
        return sum(len(w) for w in self.by_path.values())


class WatchManager:
    """The data and child watch tables of one server."""

    def __init__(self) -> None:
        self.data = WatchTable()
        self.child = WatchTable()

    def add_data_watch(self, path: str, session_id: int) -> None:
        self.data.add(path, session_id, STANDARD)

    def add_child_watch(self, path: str, session_id: int) -> None:
        self.child.add(path, session_id, STANDARD)

    def add_persistent(self, path: str, session_id: int, recursive: bool) -> None:
        mode = PERSISTENT_RECURSIVE if recursive else PERSISTENT
        self.data.add(path, session_id, mode)
        self.child.add(path, session_id, mode)

    def remove_session(self, session_id: int) -> None:
        self.data.remove_session(session_id)
        self.child.remove_session(session_id)

    def trigger(self, changes) -> list[tuple]:
        """Notifications for a sequence of (event_type, path, acl) changes, in order, as
        (session_id, event_type, path, acl): the caller delivers only to sessions with READ
        on ``acl`` (ZooKeeper's fix for CVE-2024-23944); the watch is used up either way."""
        out: list[tuple] = []
        for event_type, path, acl in changes:
            if event_type == CHILDREN_CHANGED:
                for session_id in self.child.collect(path, event_type, None):
                    out.append((session_id, event_type, path, acl))
            elif event_type == DELETED:
                notified = self.data.collect(path, event_type, None)
                notified_set = set(notified)
                notified.extend(self.child.collect(path, event_type, notified_set))
                for session_id in notified:
                    out.append((session_id, event_type, path, acl))
            else:
                for session_id in self.data.collect(path, event_type, None):
                    out.append((session_id, event_type, path, acl))
        return out

    def watch_count(self) -> int:
        return self.data.count() + self.child.count()

    def session_watch_count(self, session_id: int) -> int:
        """Paths the session watches, per table (a persistent watch counts in both)."""
        return (len(self.data.by_session.get(session_id, ()))
                + len(self.child.by_session.get(session_id, ())))
