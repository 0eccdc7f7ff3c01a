"""Path rules, as ZooKeeper's PathUtils applies them to writes."""

from __future__ import annotations

import re

# Paths made only of allowed characters with no empty, "." or ".." element: the common case,
# checked in C; anything else goes through the character-by-character rules below.
_PLAIN_PATH = re.compile(
    "(?:/(?!\\.\\.?(?:/|$))[^/\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\uffff]+)+")
SPECIAL_PATHS = frozenset(("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"))


def _bad_char(ch: str) -> bool:
    code = ord(ch)
    return (0 < code <= 0x1F or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xF8FF or 0xFFF0 <= code <= 0xFFFF)


def path_error(path: str | None, sequential: bool = False) -> str | None:
    """Why ``path`` is not a valid znode path, or None if it is.

    A sequential create may end in '/' (the server appends the counter).
    """
    if path is not None and _PLAIN_PATH.fullmatch(path) is not None:
        return None
    return path_error_by_rules(path, sequential)


def path_error_by_rules(path: str | None, sequential: bool = False) -> str | None:
    """``path_error`` without the fast path: ZooKeeper's rules, one character at a time."""
    if path is None:
        return "path cannot be null"
    if not path:
        return "path length must be > 0"
    if path[0] != "/":
        return "path must start with / character"
    if len(path) == 1:
        return None
    if path[-1] == "/" and not sequential:
        return "path must not end with / character"
    previous = "/"
    for index in range(1, len(path)):
        ch = path[index]
        if ch == "\0":
            return f"null character not allowed @{index}"
        if ch == "/" and previous == "/":
            return f"empty node name specified @{index}"
        if ch == "." and previous == "." and path[index - 2] == "/" and (
                index + 1 == len(path) or path[index + 1] == "/"):
            return f"relative paths not allowed @{index}"
        if ch == "." and previous == "/" and (index + 1 == len(path) or path[index + 1] == "/"):
            return f"relative paths not allowed @{index}"
        if _bad_char(ch):
            return f"invalid character @{index}"
        previous = ch
    return None


def parent_of(path: str) -> str:
    """The parent path ('/' for top-level nodes; '' for '/')."""
    cut = path.rfind("/")
    if cut <= 0:
        return "/" if cut == 0 and len(path) > 1 else ""
    return path[:cut]


def name_of(path: str) -> str:
    return path[path.rfind("/") + 1:]


def join(parent: str, name: str) -> str:
    return parent + name if parent == "/" else parent + "/" + name


def is_ancestor_or_self(ancestor: str, path: str) -> bool:
    if ancestor == "/" or ancestor == path:
        return True
    return path.startswith(ancestor) and path[len(ancestor):len(ancestor) + 1] == "/"
