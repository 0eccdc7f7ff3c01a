"""Seeded random operations against the reference ZooKeeper and zkpy in lockstep.

Several sessions issue thousands of random operations over a small path space (creates of
every mode, deletes and setData with right and wrong versions, reads with and without
watches, multi and multiRead, ACL changes, persistent watches, watch removal, session
close-and-reopen...). Each step runs on both servers; every normalised reply is compared,
then every session does a read round trip and the notifications it got are compared. At the
end the whole tree (data, Stat, ACL, children) is compared.

A mismatch fails with the seed, the first differing step and the steps before it. Seeds come
from ``COMPAT_SEED`` (comma-separated) or the default list; ``COMPAT_STEPS`` sets the number
of steps per seed. Re-run one seed with e.g. ``COMPAT_SEED=202 pytest -k random``;
``COMPAT_PEER=zookeeper`` runs the reference against itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random

import pytest

from jute import records as r
from jute.constants import AddWatchMode, CreateMode, Perms, WatcherType
from tests.support.normalize import Lockstep, Mismatch
from tests.support.rawclient import (
    CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, op_check, op_create, op_delete,
    op_get_children, op_get_data, op_set_data,
)

DEFAULT_SEEDS = (101, 202, 303)
DEFAULT_STEPS = 1200
SESSIONS = ("s0", "s1", "s2")
AUTHED = "s0"  # this session adds digest auth user:pw
NAMES = ("a", "b")


def seeds() -> list[int]:
    value = os.environ.get("COMPAT_SEED")
    if value:
        return [int(part) for part in value.replace(" ", "").split(",") if part]
    return list(DEFAULT_SEEDS)


def steps() -> int:
    return int(os.environ.get("COMPAT_STEPS", DEFAULT_STEPS))


def _all_paths() -> list[str]:
    paths = []
    for a in NAMES:
        paths.append(f"/{a}")
        for b in NAMES:
            paths.append(f"/{a}/{b}")
            for c in NAMES:
                paths.append(f"/{a}/{b}/{c}")
    return paths


PATHS = _all_paths()
USER_DIGEST = "user:" + base64.b64encode(hashlib.sha1(b"user:pw").digest()).decode()


class RandomDriver:
    def __init__(self, lockstep: Lockstep, rng: random.Random) -> None:
        self.ls = lockstep
        self.rng = rng
        self.sequential: list[str] = []  # names created by sequential creates (reference's)
        self.generation = {name: 0 for name in SESSIONS}

    # --- choices -------------------------------------------------------------------------------

    def path(self) -> str:
        if self.sequential and self.rng.random() < 0.15:
            return self.rng.choice(self.sequential)
        if self.rng.random() < 0.03:
            return self.rng.choice(["/", "/zookeeper", "/nonexistent/x", "/a/b/a/b"])
        depth = self.rng.choices((1, 2, 3), weights=(4, 4, 2))[0]
        return self.rng.choice([p for p in PATHS if p.count("/") == depth])

    def delete_path(self) -> str:
        if self.sequential and self.rng.random() < 0.3:
            return self.rng.choice(self.sequential)
        depth = self.rng.choices((1, 2, 3), weights=(1, 3, 4))[0]
        return self.rng.choice([p for p in PATHS if p.count("/") == depth])

    def parent(self) -> str:
        return self.rng.choice(["/"] + [p for p in PATHS if p.count("/") < 3])

    def data(self) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 6)))

    def version(self) -> int:
        return -1 if self.rng.random() < 0.6 else self.rng.randint(0, 3)

    def acl(self) -> list:
        roll = self.rng.random()
        if roll < 0.85:
            return OPEN_ACL_UNSAFE
        if roll < 0.90:
            return READ_ACL_UNSAFE
        if roll < 0.95:
            return CREATOR_ALL_ACL
        return [r.ACL(int(Perms.READ | Perms.WRITE), r.Id("digest", USER_DIGEST)),
                r.ACL(int(Perms.ALL), r.Id("world", "anyone"))]

    def flags(self) -> int:
        return self.rng.choice([0, 0, 0, CreateMode.EPHEMERAL, CreateMode.PERSISTENT_SEQUENTIAL,
                                CreateMode.EPHEMERAL_SEQUENTIAL])

    def create_args(self) -> tuple:
        flags = self.flags()
        if flags in (CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL):
            parent = self.parent()
            path = (parent.rstrip("/") + "/" + self.rng.choice(["q-", "n-", ""]))
        else:
            path = self.path()
        return path, self.data(), self.acl(), flags

    def multi_ops(self) -> list:
        ops = []
        for _ in range(self.rng.randint(1, 4)):
            kind = self.rng.choice(["create", "create", "delete", "set", "check"])
            if kind == "create":
                path, data, acl, flags = self.create_args()
                ops.append(op_create(path, data, acl, flags))
            elif kind == "delete":
                ops.append(op_delete(self.path(), self.version()))
            elif kind == "set":
                ops.append(op_set_data(self.path(), self.data(), self.version()))
            else:
                ops.append(op_check(self.path(), self.rng.randint(-1, 2)))
        return ops

    # --- steps ---------------------------------------------------------------------------------

    def open(self, name: str) -> None:
        self.ls.open(name)
        if name == AUTHED:
            self.ls.call(name, "add_auth", "digest", "user:pw")

    def step(self) -> None:
        rng = self.rng
        name = rng.choice(SESSIONS)
        ops = [
            (20, lambda: self.note(self.ls.call(name, "create", *self.create_args()))),
            (14, lambda: self.ls.call(name, "delete", self.delete_path(),
                                      -1 if rng.random() < 0.7 else self.version())),
            (12, lambda: self.ls.call(name, "set_data", self.path(), self.data(), self.version())),
            (8, lambda: self.ls.call(name, "get_data", self.path(), rng.random() < 0.5)),
            (8, lambda: self.ls.call(name, "exists", self.path(), rng.random() < 0.5)),
            (5, lambda: self.ls.call(name, "get_children", self.path(), rng.random() < 0.5)),
            (3, lambda: self.ls.call(name, "get_children2", self.path(), rng.random() < 0.5)),
            (2, lambda: self.ls.call(name, "get_acl", self.path())),
            (2, lambda: self.ls.call(name, "set_acl", self.path(), self.acl(), self.version())),
            (6, lambda: self.note_multi(self.ls.call(name, "multi", self.multi_ops()))),
            (2, lambda: self.ls.call(name, "multi_read", [
                rng.choice([op_get_data, op_get_children])(self.path())
                for _ in range(rng.randint(1, 3))])),
            (3, lambda: self.ls.call(name, "add_watch", self.path(),
                                     rng.choice([AddWatchMode.PERSISTENT,
                                                 AddWatchMode.PERSISTENT_RECURSIVE]))),
            (2, lambda: self.ls.call(name, "remove_watches", self.path(),
                                     rng.choice(list(WatcherType)))),
            (2, lambda: self.ls.call(name, "check_watches", self.path(),
                                     rng.choice(list(WatcherType)))),
            (1, lambda: self.ls.call(name, "sync", self.path())),
            (1, lambda: self.ls.call(name, "get_all_children_number", self.path())),
            (1, lambda: self.ls.call(name, "get_ephemerals", rng.choice(["/", "/a", "/b/"]))),
            (1, lambda: self.ls.call(name, "who_am_i")),
            (1, lambda: self.reopen(name)),
        ]
        total = sum(weight for weight, _ in ops)
        pick = rng.uniform(0, total)
        for weight, action in ops:
            pick -= weight
            if pick <= 0:
                break
        closing = action is ops[-1][1]
        action()
        # Every session reads once: the notifications this step caused have arrived.
        self.ls.all_events(ordered=not closing)

    def reopen(self, name: str) -> None:
        self.ls.close(name)
        self.generation[name] += 1
        self.open(name)

    def note(self, replies) -> None:
        reply = replies[0]
        if not isinstance(reply, str) and reply.err == 0 and reply.response is not None:
            path = reply.response.path
            if path[-10:].isdigit() and path not in self.sequential:
                self.sequential.append(path)

    def note_multi(self, replies) -> None:
        reply = replies[0]
        if isinstance(reply, str) or not reply.response:
            return
        for result in reply.response:
            response = result.response
            if response is not None and hasattr(response, "path") and response.path[-10:].isdigit():
                self.sequential.append(response.path)

    # --- final state ---------------------------------------------------------------------------

    def compare_trees(self) -> None:
        """Walk the whole tree on both servers with one fresh session and compare it."""
        self.open("walker")
        self.ls.call("walker", "add_auth", "digest", "user:pw")
        pending = ["/"]
        while pending:
            path = pending.pop()
            self.ls.call("walker", "get_data", path)
            self.ls.call("walker", "get_acl", path)
            replies = self.ls.call("walker", "get_children2", path)
            reply = replies[0]
            if not isinstance(reply, str) and reply.err == 0:
                for child in sorted(reply.response.children):
                    pending.append(path.rstrip("/") + "/" + child)


@pytest.mark.parametrize("seed", seeds())
def test_random_ops_lockstep(server_pair, seed):
    print(f"random ops: seed={seed} steps={steps()} (re-run: COMPAT_SEED={seed})")
    reference, peer = server_pair()
    ls = Lockstep([reference, peer], labels=("zookeeper", peer.kind),
                  context=f"seed={seed} (re-run with COMPAT_SEED={seed}): ")
    driver = RandomDriver(ls, random.Random(seed))
    try:
        for name in SESSIONS:
            driver.open(name)
        for index in range(steps()):
            ls.where = f"random op {index} of {steps()}"
            driver.step()
        ls.where = "final tree comparison"
        driver.compare_trees()
    except Mismatch:
        raise
    except Exception as exc:
        raise AssertionError(f"seed={seed} (re-run with COMPAT_SEED={seed}): step {ls.step}: "
                             f"{type(exc).__name__}: {exc}") from exc
    finally:
        ls.disconnect_all()
