"""Quorum arithmetic for a fixed set of voting members (majority quorums)."""

from __future__ import annotations


class Majority:
    __slots__ = ("voters", "size")

    def __init__(self, voters) -> None:
        self.voters = frozenset(voters)
        self.size = len(self.voters) // 2 + 1

    def reached(self, members) -> bool:
        """True when ``members`` contains a majority of the voters."""
        return len(self.voters.intersection(members)) >= self.size
