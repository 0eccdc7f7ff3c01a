"""etcd's authentication as etcd 3.4 has it: users with passwords and roles, roles with key
permissions, simple tokens; all state but the tokens replicated in the tree.

The users and roles are znodes under ``<root>/auth`` (``users/<escaped name>``,
``roles/<escaped name>``, JSON data; ``enabled``; the version of ``<root>/auth`` itself is the
auth revision), written by the front end's multis like every etcd write, with an ACL only the
front end's requests carry the id of, so a ZooKeeper client without it (a super user aside)
can neither read a password hash nor grant itself a role. Passwords are kept as PBKDF2-SHA256
hashes with a per-user salt (etcd keeps bcrypt hashes). Simple tokens, as etcd's, are
``<16 letters>.<index>`` and live on the member that issued them, for ``TOKEN_TTL_MS`` after
their last use.

A user may do what the union of its roles' permissions covers: a read or write of the range
[key, range_end) is allowed only if the permissions of that type cover all of it. The user and
role named ``root`` may do everything, auth administration included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import string
from typing import NamedTuple

from zkpy.frontends.etcd.errors import FAILED_PRECONDITION, INVALID_ARGUMENT
from zkpy.frontends.etcd.keys import ALL_FROM

ROOT = "root"
TOKEN_TTL_MS = 300_000  # etcd's --auth-token-ttl default
PBKDF2_ITERATIONS = 20_000
READ, WRITE, READWRITE = 0, 1, 2

PERMISSION_DENIED = 7  # grpc.StatusCode values beside errors.py's
UNAUTHENTICATED = 16

USER_EMPTY = (INVALID_ARGUMENT, "etcdserver: user name is empty")
USER_EXISTS = (FAILED_PRECONDITION, "etcdserver: user name already exists")
USER_NOT_FOUND = (FAILED_PRECONDITION, "etcdserver: user name not found")
ROLE_EMPTY = (INVALID_ARGUMENT, "etcdserver: role name is empty")
ROLE_EXISTS = (FAILED_PRECONDITION, "etcdserver: role name already exists")
ROLE_NOT_FOUND = (FAILED_PRECONDITION, "etcdserver: role name not found")
ROLE_NOT_GRANTED = (FAILED_PRECONDITION, "etcdserver: role is not granted to the user")
PERMISSION_NOT_GRANTED = (FAILED_PRECONDITION,
                          "etcdserver: permission is not granted to the role")
ROOT_USER_MISSING = (FAILED_PRECONDITION, "etcdserver: root user does not exist")
ROOT_ROLE_MISSING = (FAILED_PRECONDITION, "etcdserver: root user does not have root role")
AUTH_FAILED = (INVALID_ARGUMENT,
               "etcdserver: authentication failed, invalid user ID or password")
AUTH_NOT_ENABLED = (FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
PERMISSION_DENIED_ERR = (PERMISSION_DENIED, "etcdserver: permission denied")
INVALID_TOKEN = (UNAUTHENTICATED, "etcdserver: invalid auth token")
INVALID_MANAGEMENT = (FAILED_PRECONDITION, "etcdserver: invalid auth management")


class Permission(NamedTuple):
    type: int
    key: bytes
    range_end: bytes


class User(NamedTuple):
    name: str
    password: str  # "pbkdf2$<iterations>$<salt b64>$<hash b64>", "" with no_password
    roles: tuple
    no_password: bool


class AuthState(NamedTuple):
    enabled: bool
    revision: int
    users: dict
    roles: dict  # name -> tuple of Permission


EMPTY = AuthState(False, 0, {}, {})


# -- the znodes ---------------------------------------------------------------------------------

def user_data(user: User) -> bytes:
    return json.dumps({"password": user.password, "roles": list(user.roles),
                       "no_password": user.no_password}, sort_keys=True).encode()


def role_data(permissions) -> bytes:
    return json.dumps({"permissions": [
        {"type": p.type, "key": base64.b64encode(p.key).decode(),
         "range_end": base64.b64encode(p.range_end).decode()} for p in permissions]},
        sort_keys=True).encode()


def parse_user(name: str, data: bytes) -> User | None:
    try:
        fields = json.loads(data)
        return User(name, fields.get("password", ""), tuple(fields.get("roles", ())),
                    bool(fields.get("no_password")))
    except (ValueError, TypeError, AttributeError):
        return None


def parse_role(data: bytes) -> tuple | None:
    try:
        fields = json.loads(data)
        return tuple(Permission(int(p["type"]), base64.b64decode(p["key"]),
                                base64.b64decode(p["range_end"]))
                     for p in fields.get("permissions", ()))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


# -- passwords and tokens -----------------------------------------------------------------------

def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return (f"pbkdf2${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def password_matches(stored: str, password: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2":
        return False
    expected = hash_password(password, base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(expected.encode(), stored.encode()) and bool(digest)


class Tokens:
    """This member's simple tokens: token -> (user, last use)."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[str, int]] = {}
        self._index = 0

    def issue(self, user: str, now_ms: int) -> str:
        self._index += 1
        letters = "".join(secrets.choice(string.ascii_letters) for _ in range(16))
        token = f"{letters}.{self._index}"
        self.tokens[token] = (user, now_ms)
        return token

    def user_of(self, token: str, now_ms: int) -> str | None:
        entry = self.tokens.get(token)
        if entry is None:
            return None
        user, used_ms = entry
        if now_ms - used_ms > TOKEN_TTL_MS:
            del self.tokens[token]
            return None
        self.tokens[token] = (user, now_ms)
        return user

    def forget_user(self, user: str) -> None:
        for token in [t for t, (u, _) in self.tokens.items() if u == user]:
            del self.tokens[token]

    def clear(self) -> None:
        self.tokens.clear()


# -- permissions --------------------------------------------------------------------------------

def is_root(state: AuthState, user: str) -> bool:
    entry = state.users.get(user)
    return entry is not None and ROOT in entry.roles


def permitted(state: AuthState, user: str, key: bytes, range_end: bytes, write: bool) -> bool:
    """Whether ``user``'s roles cover every key of [key, range_end) for a read or a write."""
    entry = state.users.get(user)
    if entry is None:
        return False
    if ROOT in entry.roles:
        return True
    wanted = (WRITE, READWRITE) if write else (READ, READWRITE)
    intervals = []
    for role in entry.roles:
        for permission in state.roles.get(role, ()):
            if permission.type in wanted:
                intervals.append(_interval(permission.key, permission.range_end))
    return _covered(_interval(key, range_end), intervals)


_INFINITY = None  # an interval's open end (range_end b"\\x00")


def _interval(key: bytes, range_end: bytes) -> tuple:
    if not range_end:
        return (key, key + b"\x00")
    if range_end == ALL_FROM:
        return (key, _INFINITY)
    return (key, range_end)


def _covered(wanted: tuple, intervals: list) -> bool:
    start, end = wanted
    if end is not _INFINITY and start >= end:
        return True  # an empty range
    position = start
    for low, high in sorted(intervals, key=lambda i: i[0]):
        if low > position:
            break
        if high is _INFINITY:
            return True
        if high > position:
            position = high
        if end is not _INFINITY and position >= end:
            return True
    return False
