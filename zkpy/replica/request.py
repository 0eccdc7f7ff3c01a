"""The request as it travels through the pipeline: the protocol-neutral command."""

from __future__ import annotations

from jute import Err

# The front-end tag of a command: which protocol's front end made it, so a leader knows how to
# prepare a command a follower forwarded (today every command is a ZooKeeper operation).
ZOOKEEPER = "zookeeper"
# etcd's v3 API: its commands are ZooKeeper operations too (multis, sessions, syncs), made by
# the etcd front end, so every leader, a Java one included, prepares them alike.
ETCD = "etcd"


class Request:
    """One client request (or an internal one: session expiry, container reaping).

    ``body`` is the decoded record (a list of MultiOp for multi/multiRead, the timeout for
    createSession). ``auth_info`` is the connection's ids at the time the request arrived, so
    later addauth calls do not change how an earlier request is judged. ``frontend`` tags the
    front end that made it; ``connection_id`` is that front end's, meaningless to the others.
    """

    __slots__ = ("session_id", "xid", "type", "body", "auth_info", "txn", "hdr", "err",
                 "result", "connection_id", "received_ms", "frontend")

    def __init__(self, session_id: int, xid: int, type_: int, body, auth_info: tuple = (),
                 connection_id: int = 0, received_ms: int = 0,
                 frontend: str = ZOOKEEPER) -> None:
        self.session_id = session_id
        self.xid = xid
        self.type = type_
        self.body = body
        self.auth_info = auth_info
        self.connection_id = connection_id
        self.txn = None
        self.hdr = None
        self.received_ms = received_ms
        self.frontend = frontend
        self.err = 0
        self.result = None

    def __repr__(self) -> str:
        return f"Request(session=0x{self.session_id & 0xFFFFFFFFFFFFFFFF:x}, xid={self.xid}, type={self.type})"


class KeeperError(Exception):
    """A request fails with ZooKeeper error ``code`` (a jute.Err value)."""

    def __init__(self, code: Err, path: str | None = None) -> None:
        super().__init__(f"{Err(code).name}{' ' + path if path else ''}")
        self.code = int(code)
        self.path = path
