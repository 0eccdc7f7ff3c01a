"""Messages between ensemble members. Immutable values; the transport adds the sender's id.

Txns travel as ``(TxnHeader, txn record)`` pairs. ``SyncSnap.payload`` is left None by the
peer and filled by the runtime with the serialised tree at send time (see ``ZabPeer``).
"""

from __future__ import annotations

from typing import NamedTuple

LOOKING = "looking"
FOLLOWING = "following"
LEADING = "leading"
OBSERVING = "observing"


class Vote(NamedTuple):
    round: int
    leader: int
    zxid: int
    epoch: int
    state: str


class FollowerInfo(NamedTuple):
    accepted_epoch: int
    last_zxid: int
    observer: bool = False


class LeaderInfo(NamedTuple):
    epoch: int


class AckEpoch(NamedTuple):
    current_epoch: int
    last_zxid: int


class SyncDiff(NamedTuple):
    txns: tuple


class SyncTrunc(NamedTuple):
    zxid: int


class SyncSnap(NamedTuple):
    zxid: int
    payload: object = None


class NewLeader(NamedTuple):
    epoch: int
    zxid: int


class Ack(NamedTuple):
    zxid: int


class UpToDate(NamedTuple):
    commit_zxid: int


class Proposal(NamedTuple):
    hdr: object
    txn: object


class ExpectedDigest(NamedTuple):
    """What a ZooKeeper leader says the tree digest is once txn ``zxid`` has applied (the
    TxnDigest after a PROPOSAL's or INFORM's txn). It comes just before that txn's Proposal
    or Inform; the member checks it, the ZAB peer never sees it."""
    zxid: int
    version: int
    tree_digest: int


class Commit(NamedTuple):
    zxid: int


class Inform(NamedTuple):
    """A committed txn, for observers (which see no proposals)."""
    hdr: object
    txn: object


class Ping(NamedTuple):
    commit_zxid: int


class PingReply(NamedTuple):
    touched_sessions: tuple


class Forward(NamedTuple):
    """A client write received by a follower, for the leader to prepare: the tag of the front
    end that made it and its command (``body`` is the decoded record, never wire bytes; each
    peer encoding encodes it its own way)."""
    frontend: str
    session_id: int
    xid: int
    type: int
    body: object
    auth_info: tuple


class Revalidate(NamedTuple):
    """Learner to leader: a client reconnected here with this session. It travels before any
    request of the session sent through this learner, so a ZooKeeper leader takes the learner
    as the session's owner first (LearnerHandler's REVALIDATE: a request of a session owned by
    another member fails with SESSIONMOVED)."""
    session_id: int
    timeout_ms: int


class SyncRequest(NamedTuple):
    session_id: int
    xid: int


class SyncReply(NamedTuple):
    session_id: int
    xid: int
