"""etcd keys as znodes: every key is one child of the keyspace znode, its name the key escaped.

etcd keys are arbitrary bytes and ordered bytewise; znode names are Unicode strings without
'/', control characters or the names '.' and '..'. A key becomes a single child name (never a
path of several znodes: 'a//b', 'a/' and 'a' must stay three keys): the printable ASCII bytes
other than '%' and '/' stand for themselves, every other byte is '%XX' (upper-case hex), and a
name of only dots has its dots escaped too. So `/myapp/config` is the znode
`<root>/kv/%2Fmyapp%2Fconfig`, readable in zkCli. The escaping does not keep the byte order,
which is why ranges are answered from the front end's sorted index, never from the children.
"""

from __future__ import annotations

_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("%"), ord("/")}
_ESCAPES = tuple(chr(b) if b in _PLAIN else f"%{b:02X}" for b in range(256))

# RangeRequest.range_end of one zero byte: every key from ``key`` on.
ALL_FROM = b"\x00"


def znode_name(key: bytes) -> str:
    """The child name of ``key`` (non-empty bytes)."""
    name = "".join([_ESCAPES[b] for b in key])
    if name.strip(".") == "":
        return name.replace(".", "%2E")
    return name


def key_of(name: str) -> bytes | None:
    """The key a child name stands for; None for a name this escaping never makes (a znode
    some ZooKeeper client created there), which is then no etcd key."""
    out = bytearray()
    i, end = 0, len(name)
    while i < end:
        ch = name[i]
        if ch == "%":
            digits = name[i + 1:i + 3]
            if len(digits) != 2 or not _is_upper_hex(digits):
                return None
            out.append(int(digits, 16))
            i += 3
            continue
        code = ord(ch)
        if code not in _PLAIN:
            return None
        out.append(code)
        i += 1
    key = bytes(out)
    return key if key and znode_name(key) == name else None


def _is_upper_hex(digits: str) -> bool:
    return all(c in "0123456789ABCDEF" for c in digits)


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes [prefix, end) every key starting with ``prefix`` (etcd's
    GetPrefixRangeEnd): the last byte below 0xff plus one; all keys for an all-0xff prefix."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[:i + 1])
    return ALL_FROM


def in_range(key: bytes, start: bytes, range_end: bytes) -> bool:
    """Whether ``key`` is in etcd's range (start, range_end): one key for an empty range_end,
    every key >= start for b'\\x00', [start, range_end) otherwise."""
    if not range_end:
        return key == start
    if range_end == ALL_FROM:
        return key >= start
    return start <= key < range_end
