"""etcd's permission rule: a read or write of [key, range_end) is allowed only if the user's
permissions of that type cover all of it (checked against a brute-force reading of every key
of a small alphabet), and the root role may do everything."""

from __future__ import annotations

import itertools
import random

import pytest

from zkpy.frontends.etcd import auth as a
from zkpy.frontends.etcd.keys import ALL_FROM, in_range, prefix_end

ALPHABET = b"abc"
KEYS = [bytes(k) for n in range(1, 4) for k in itertools.product(ALPHABET, repeat=n)]


def random_range(rng: random.Random) -> tuple[bytes, bytes]:
    key = rng.choice(KEYS)
    kind = rng.randrange(4)
    if kind == 0:
        return key, b""
    if kind == 1:
        return key, prefix_end(key)
    if kind == 2:
        return key, ALL_FROM
    return key, rng.choice(KEYS)


def _end_of(permission):
    """The first key after a permission's range (None: it has no end)."""
    if not permission.range_end:
        return permission.key + b"\x00"
    return None if permission.range_end == ALL_FROM else permission.range_end


def covered_by_brute_force(key, range_end, permissions) -> bool:
    """Every gap in a union of ranges starts at the wanted range's start or where one of the
    ranges ends: probing those points (and the alphabet's keys) decides coverage."""
    probes = [key] + [k for k in KEYS if in_range(k, key, range_end)]
    probes += [end for end in map(_end_of, permissions)
               if end is not None and in_range(end, key, range_end)]
    return all(any(in_range(k, p.key, p.range_end) for p in permissions) for k in probes)


@pytest.mark.parametrize("seed", range(8))
def test_coverage_matches_brute_force(seed):
    rng = random.Random(seed)
    try:
        for _ in range(300):
            permissions = [a.Permission(a.READWRITE, *random_range(rng))
                           for _ in range(rng.randrange(0, 4))]
            state = a.AuthState(True, 1, {"u": a.User("u", "", ("r",), True)},
                                {"r": tuple(permissions)})
            key, range_end = random_range(rng)
            if range_end not in (b"", ALL_FROM) and range_end <= key:
                continue  # an empty range: etcd answers it with nothing
            expected = covered_by_brute_force(key, range_end, permissions)
            assert a.permitted(state, "u", key, range_end, write=True) == expected, \
                (key, range_end, permissions)
    except AssertionError:
        print(f"seed {seed}")
        raise


def test_types_and_root():
    state = a.AuthState(True, 1, {
        "reader": a.User("reader", "", ("ro",), True),
        "boss": a.User("boss", "", ("root",), True),
    }, {"ro": (a.Permission(a.READ, b"/app/", prefix_end(b"/app/")),)})
    assert a.permitted(state, "reader", b"/app/x", b"", write=False)
    assert not a.permitted(state, "reader", b"/app/x", b"", write=True)
    assert not a.permitted(state, "reader", b"/other", b"", write=False)
    assert a.permitted(state, "boss", b"", ALL_FROM, write=True)
    assert not a.permitted(state, "nobody", b"/app/x", b"", write=False)


def test_passwords_and_tokens():
    stored = a.hash_password("s3cret")
    assert a.password_matches(stored, "s3cret") and not a.password_matches(stored, "other")
    assert a.hash_password("s3cret") != stored  # salted
    tokens = a.Tokens()
    token = tokens.issue("alice", 1_000)
    assert tokens.user_of(token, 2_000) == "alice"
    assert tokens.user_of(token, 2_000 + a.TOKEN_TTL_MS + 1) is None
    assert tokens.user_of("nonsense.1", 2_000) is None
