"""The etcd API's errors: a gRPC status code (grpc.StatusCode's number; this layer imports no
grpc) and etcd's own message, which clients match on."""

from __future__ import annotations


class EtcdError(Exception):
    """An etcd error: the gRPC status code and etcd's message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# gRPC status codes etcd answers with (grpc.StatusCode values).
INVALID_ARGUMENT = 3
NOT_FOUND = 5
FAILED_PRECONDITION = 9
OUT_OF_RANGE = 11
UNAVAILABLE = 14


def err(code: int, message: str) -> EtcdError:
    return EtcdError(code, message)


EMPTY_KEY = (INVALID_ARGUMENT, "etcdserver: key is not provided")
KEY_NOT_FOUND = (INVALID_ARGUMENT, "etcdserver: key not found")
TOO_MANY_OPS = (INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
DUPLICATE_KEY = (INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
COMPACTED = (OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = (OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
LEASE_NOT_FOUND = (NOT_FOUND, "etcdserver: requested lease not found")
LEASE_EXISTS = (FAILED_PRECONDITION, "etcdserver: lease already exists")
LEASE_TTL_TOO_LARGE = (OUT_OF_RANGE, "etcdserver: too large lease TTL")
NO_LEADER = (UNAVAILABLE, "etcdserver: no leader")
LEADER_CHANGED = (UNAVAILABLE, "etcdserver: leader changed")
REQUEST_TOO_LARGE = (INVALID_ARGUMENT, "etcdserver: request is too large")
MIXED_LEASES = (INVALID_ARGUMENT,
                "zkpy: the keys one txn attaches to leases must all share one lease")
