"""JAAS login configuration files (``-Djava.security.auth.login.config=jaas.conf``).

The syntax is Java's (sun.security.provider.ConfigFile)::

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_alice="secret";
    };

sections of login modules, each ``ClassName Flag name=value ... ;``, with ``//`` and ``/* */``
comments, double-quoted or bare values and ``${system.property}`` expansion in values.
"""

from __future__ import annotations

import re
from typing import NamedTuple

FLAGS = ("required", "requisite", "sufficient", "optional")


class JaasError(ValueError):
    """The file cannot be read or is not a JAAS configuration; the message says where."""


class LoginModule(NamedTuple):
    class_name: str
    flag: str
    options: dict


_TOKEN = re.compile(r"""
      (?P<space>\s+)
    | (?P<comment>//[^\n]*|/\*.*?\*/)
    | "(?P<quoted>(?:[^"\\]|\\.)*)"
    | (?P<word>[A-Za-z0-9_$.\-*]+)
    | (?P<punct>[{};=])
""", re.VERBOSE | re.DOTALL)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text, flags=re.DOTALL)


def _tokens(text: str, source: str):
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise JaasError(f"{source}, line {line}: unexpected {text[position]!r}")
        position = match.end()
        kind = match.lastgroup
        if kind in ("space", "comment"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        if kind == "quoted":
            yield "value", _unquote(match.group("quoted")), line
        else:
            yield kind, match.group(kind), line


def _expand(value: str, properties: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}]*)\}", lambda m: properties.get(m.group(1), ""), value)


def parse(text: str, source: str = "jaas.conf",
          properties: dict[str, str] | None = None) -> dict[str, list[LoginModule]]:
    """Every section of a JAAS file: name -> its login modules, in order."""
    properties = properties or {}
    tokens = list(_tokens(text, source))
    sections: dict[str, list[LoginModule]] = {}
    index = 0

    def expect(kinds, what):
        nonlocal index
        if index >= len(tokens):
            raise JaasError(f"{source}: ends where {what} was expected")
        kind, value, line = tokens[index]
        if kind not in kinds:
            raise JaasError(f"{source}, line {line}: expected {what}, found {value!r}")
        index += 1
        return value, line

    def peek(value):
        return index < len(tokens) and tokens[index][1] == value and tokens[index][0] == "punct"

    def require(value):
        nonlocal index
        if not peek(value):
            if index >= len(tokens):
                raise JaasError(f"{source}: ends where {value!r} was expected")
            raise JaasError(f"{source}, line {tokens[index][2]}: expected {value!r}, "
                            f"found {tokens[index][1]!r}")
        index += 1

    while index < len(tokens):
        name, _ = expect(("word", "value"), "a section name")
        require("{")
        modules: list[LoginModule] = []
        while not peek("}"):
            class_name, line = expect(("word",), "a login module class")
            flag, line = expect(("word",), "a flag (required, requisite, sufficient, optional)")
            if flag.lower() not in FLAGS:
                raise JaasError(f"{source}, line {line}: {flag!r} is not a login module flag")
            options: dict[str, str] = {}
            while not peek(";"):
                key, _ = expect(("word", "value"), "an option name or ';'")
                require("=")
                value, _ = expect(("word", "value"), "an option value")
                options[key] = _expand(value, properties)
            require(";")
            modules.append(LoginModule(class_name, flag.lower(), options))
        require("}")
        require(";")
        sections.setdefault(name, []).extend(modules)
    return sections


def load(path: str, properties: dict[str, str] | None = None) -> dict[str, list[LoginModule]]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise JaasError(f"cannot read the JAAS configuration {path}: {error.strerror}") from None
    return parse(text, path, properties)
