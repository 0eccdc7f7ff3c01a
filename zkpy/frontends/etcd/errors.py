"""The etcd API's errors: a gRPC status code (grpc.StatusCode's number; this layer imports no
grpc) and etcd's own message, which clients match on."""

from __future__ import annotations


class EtcdError(Exception):
    """An etcd error: the gRPC status code and etcd's message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
