"""What the benchmarks ask of the servers under test, through four-letter words and logs.

``tests.support.servers`` starts and stops the servers (the same harness the tests use, so both
kinds run with the same settings); this module reads ``srvr`` and ``mntr``, finds an ensemble's
leader and keeps the end of the members' logs for a report.
"""

from __future__ import annotations

import time
from typing import Any

from tests.support.servers import ServerProcess, four_letter_word


def parse_srvr(text: str) -> dict[str, Any]:
    """``srvr``'s mode (None while not serving), node count and version line."""
    info: dict[str, Any] = {"mode": None, "nodes": None, "version": None}
    for line in text.splitlines():
        if line.startswith("Mode:"):
            info["mode"] = line.split(":", 1)[1].strip()
        elif line.startswith("Node count:"):
            info["nodes"] = int(line.split(":", 1)[1])
        elif "version" in line.lower() and info["version"] is None:
            info["version"] = line.split(":", 1)[1].strip()
    return info


def srvr(port: int, timeout_s: float = 2.0) -> dict[str, Any]:
    return parse_srvr(four_letter_word(port, "srvr", timeout_s=timeout_s))


def server_version(port: int) -> str | None:
    try:
        return srvr(port)["version"]
    except OSError:
        return None


def mntr(port: int, timeout_s: float = 5.0) -> dict[str, str]:
    stats = {}
    for line in four_letter_word(port, "mntr", timeout_s=timeout_s).splitlines():
        key, _, value = line.partition("\t")
        stats[key.strip()] = value.strip()
    return stats


def find_leader(members: list[ServerProcess], timeout_s: float = 30.0) -> ServerProcess:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for member in members:
            try:
                if srvr(member.port, timeout_s=1.0)["mode"] == "leader":
                    return member
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"no member reported Mode: leader within {timeout_s:g} s")


def member_modes(members: list[ServerProcess]) -> dict[str, str]:
    """myid -> 'leader' / 'follower' / 'not serving' / 'down' / 'no answer (...)', from srvr."""
    modes = {}
    for member in members:
        mode = "down"
        if member.process is not None and member.process.poll() is None:
            try:
                mode = srvr(member.port)["mode"] or "not serving"
            except OSError as exc:
                mode = f"no answer ({exc})"
        modes[str(member.myid)] = mode
    return modes


def log_excerpt(members: list[ServerProcess], lines: int = 12) -> dict[str, str]:
    """The last lines of each member's log, without traceback bodies."""
    excerpt = {}
    for member in members:
        try:
            text = member.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        kept = [line for line in text if line.strip() and not line.startswith((" ", "\t"))
                and not line.startswith(("Traceback", "asyncio.", "handle:", "Exception in"))]
        excerpt[f"member{member.myid} (port {member.port})"] = "\n".join(kept[-lines:])
    return excerpt


def stop_all(members) -> None:
    """Stop every member; one that fails to stop must not keep the others running."""
    for member in members:
        try:
            member.stop()
        except Exception:  # noqa: BLE001
            pass
