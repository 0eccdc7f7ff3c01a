"""Ensemble membership as ZooKeeper writes it in /zookeeper/config, and reconfig planning.

The text is one ``server.N=host:quorumPort:electionPort:role;clientHost:clientPort`` line per
member and a ``version=<hex zxid>`` line (the zxid of the reconfig that made it; 0 for the
configuration the ensemble started with). Pure functions: the leader plans a reconfig here,
every member parses the committed text here.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from jute import Err


class Member(NamedTuple):
    server_id: int
    host: str
    quorum_port: int
    election_port: int
    role: str
    client_host: str | None
    client_port: int | None


class Membership(NamedTuple):
    members: dict  # server_id -> Member
    version: int

    @property
    def voters(self) -> frozenset:
        return frozenset(s for s, m in self.members.items() if m.role == "participant")

    @property
    def observers(self) -> frozenset:
        return frozenset(s for s, m in self.members.items() if m.role == "observer")


class ReconfigError(Exception):
    def __init__(self, code: Err, reason: str) -> None:
        super().__init__(reason)
        self.code = int(code)


_LINE = re.compile(
    r"^server\.(?P<id>\d+)=(?P<host>\[[^\]]+\]|[^:;]+):(?P<qport>\d+):(?P<eport>\d+)"
    r"(?::(?P<role>participant|observer))?(?:;(?:(?P<chost>[^:;]+):)?(?P<cport>\d+))?$")


def parse_member(text: str) -> Member:
    match = _LINE.match(text.strip())
    if match is None:
        raise ReconfigError(Err.BADARGUMENTS, f"not a server line: {text!r}")
    cport = match["cport"]
    return Member(int(match["id"]), match["host"].strip("[]"), int(match["qport"]),
                  int(match["eport"]), match["role"] or "participant", match["chost"],
                  int(cport) if cport else None)


def format_member(member: Member) -> str:
    line = (f"server.{member.server_id}={member.host}:{member.quorum_port}:"
            f"{member.election_port}:{member.role}")
    if member.client_port is not None:
        line += f";{member.client_host or '0.0.0.0'}:{member.client_port}"
    return line


def format_membership(membership: Membership) -> str:
    lines = [format_member(m) for _, m in sorted(membership.members.items())]
    lines.append(f"version={membership.version:x}")
    return "\n".join(lines)


def parse_membership(text: str) -> Membership | None:
    """The membership in /zookeeper/config's text, or None if it holds none."""
    members = {}
    version = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("server."):
            member = parse_member(line)
            members[member.server_id] = member
        elif line.startswith("version="):
            version = int(line.split("=", 1)[1], 16)
    if not members or version is None:
        return None
    return Membership(members, version)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def plan(current: Membership, joining: str | None, leaving: str | None,
         new_members: str | None, zxid: int) -> Membership:
    """The membership a reconfig asks for: incremental (joining/leaving) or a new list."""
    if new_members and (joining or leaving):
        raise ReconfigError(Err.BADARGUMENTS, "both a member list and incremental changes")
    if new_members:
        members = {m.server_id: m for m in map(parse_member, _split(new_members))}
    else:
        members = dict(current.members)
        for part in _split(leaving):
            try:
                members.pop(int(part))
            except (ValueError, KeyError):
                raise ReconfigError(Err.BADARGUMENTS, f"cannot remove {part!r}") from None
        for member in map(parse_member, _split(joining)):
            members[member.server_id] = member
    result = Membership(members, zxid)
    if not result.voters:
        raise ReconfigError(Err.BADARGUMENTS, "no voting member would remain")
    return result
