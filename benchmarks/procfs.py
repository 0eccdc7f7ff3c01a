"""CPU time and resident memory of a server, read from /proc.

A server is measured with its whole process group: the servers are started as group leaders,
and zkpy's snapshot child (a forked process) works for the server too. All threads are
included (the JVM's above all).
"""

from __future__ import annotations

import os

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _group_stat_fields(pid: int) -> dict[int, list[str]]:
    """The /proc/<n>/stat fields after the command name, of ``pid`` and of every process whose
    process group is ``pid``."""
    try:
        entries = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return {}
    members = {}
    for name in entries:
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            if int(name) == pid or int(fields[2]) == pid:
                members[int(name)] = fields
        except (OSError, ValueError, IndexError):
            continue  # the process exited while we looked
    return members


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of the process and its process group; None if ``pid`` is not running."""
    if pid is None:
        return None
    members = _group_stat_fields(pid)
    if pid not in members:
        return None
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in members.values())
    return ticks / _TICKS_PER_S


def rss_bytes(pid: int | None) -> int | None:
    """VmRSS of the process and the rest of its process group; None if none could be read."""
    if pid is None:
        return None
    total, found = 0, False
    for member in _group_stat_fields(pid):
        try:
            with open(f"/proc/{member}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        found = True
                        break
        except (OSError, ValueError):
            continue
    return total if found else None
