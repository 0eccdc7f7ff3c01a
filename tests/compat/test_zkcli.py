"""zkCli.sh (ZooKeeper 3.8.0's Java shell) scripted against the reference ZooKeeper and zkpy.

One zkCli.sh session reads the script below on stdin (no terminal, so JLine is off and there is
no prompt). A ``version`` command, which the shell answers by itself, is sent before every
scripted command: its output line splits the transcript into one chunk per command. The raw
output is normalised (zxids and session ids become symbols in order of first appearance, times
become <time>, SLF4J noise goes) and watch notifications, which the shell prints from its event
thread at any moment, are taken out and compared as a sorted list.

The ``zookeeper`` variant checks the reference's transcript against the expectations below (so
the harness itself is known to work); the ``zkpy`` variant starts both servers and requires
zkpy's transcript to equal the reference's, produced in the same run.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
MARKER = re.compile(r"^ZooKeeper CLI version: .*$", re.MULTILINE)
CLIENT_JVMFLAGS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx256m"
# Base64(SHA1("user:pass")): the id that `addauth digest user:pass` authenticates as.
USER_DIGEST = "user:smGaoVKd/cQkjm7b88GyorAUz20="

# One command per line; PORT is replaced by the server's port (for `connect`).
SCRIPT = f"""
create /t hello
create -e /t/eph e
create -s /t/seq- s
create -s /t/seq- s
create -e -s /t/es- x
create -c /t/cont
create /t/cont/child c
create -t 100000 /t/ttl ttl
create /t hello
create /missing/child x
create -e /t/eph/child x
create /t/noData
create bad-path x
create -t 100 -e /t/bad x
ls /t
ls -s /t
ls -R /t
ls /
ls /zookeeper
ls /nope
get /t
get -s /t
get /t/noData
set /t v1
set -v 1 /t v2
set -v 99 /t v3
set -s /t v4
get -s /t
stat /t
stat /t/eph
stat /t/ttl
stat /t/cont
stat /nope
get /nope
getAllChildrenNumber /t
getAllChildrenNumber /
getEphemerals
getEphemerals /t/e
getAcl /t
getAcl -s /t
getAcl /nope
create /t/ro r
setAcl /t/ro world:anyone:r
getAcl /t/ro
set /t/ro x
get /t/ro
addauth digest user:pass
create /t/auth a
setAcl /t/auth auth:user:pass:cdrwa
getAcl /t/auth
setAcl -s -v 1 /t/auth digest:{USER_DIGEST}:cdra
setAcl -v 7 /t/auth world:anyone:r
getAcl -s /t/auth
create /t/dig d
setAcl /t/dig digest:other:xyz=:r
get /t/dig
create /t/ipacl i
setAcl /t/ipacl ip:127.0.0.1:r
get /t/ipacl
whoami
get -w /t/cont/child
set /t/cont/child c2
ls -w /t/cont
create /t/cont/child2 x
stat -w /t/nothere
create /t/nothere x
addWatch /t/rec
create /t/rec r
create /t/rec/x r
set /t/rec/x r2
delete /t/rec/x
sync /t
delete /t/seq-0000000000
delete /t
delete -v 5 /t/ttl
delete -v 0 /t/ttl
delete /t/cont
deleteall /t/cont
ls /t/cont
config
config -s
getAcl /zookeeper/config
get -s /zookeeper
connect 127.0.0.1:PORT
whoami
get /t/auth
getEphemerals
ls /t
addauth digest user:pass
deleteall /t
delete /t/dig
deleteall /t
ls /
quit
""".strip().splitlines()

# What the reference prints for some commands (normalised), as (command, occurrence, lines):
# checked on the zookeeper variant so that a broken harness (no connection, lost output,
# misaligned chunks) cannot pass silently. They also document what zkpy has to print.
STAT_T = ["cZxid = <zxid1>", "ctime = <time>", "mZxid = <zxid3>", "mtime = <time>", "pZxid = <zxid2>",
          "cversion = 7", "dataVersion = 3", "aclVersion = 0", "ephemeralOwner = 0x0",
          "dataLength = 2", "numChildren = 7"]
REFERENCE_EXPECTATIONS = [
    ("create /t hello", 0, ["Created /t"]),
    ("create -s /t/seq- s", 0, ["Created /t/seq-0000000001"]),
    ("create -e -s /t/es- x", 0, ["Created /t/es-0000000003"]),
    ("create -t 100000 /t/ttl ttl", 0, ["Created /t/ttl"]),
    ("create /t hello", 1, ["Node already exists: /t"]),
    ("create /missing/child x", 0, ["Node does not exist: /missing/child"]),
    ("create -e /t/eph/child x", 0, ["Ephemerals cannot have children: /t/eph/child"]),
    ("create bad-path x", 0, ["Path must start with / character"]),
    ("create -t 100 -e /t/bad x", 0, ["TTLs cannot be used with Ephemeral znodes"]),
    ("ls /t", 0, ["[cont, eph, es-0000000003, noData, seq-0000000001, seq-0000000002, ttl]"]),
    ("ls -R /t", 0, ["/t", "/t/cont", "/t/cont/child", "/t/eph", "/t/es-0000000003", "/t/noData",
                     "/t/seq-0000000001", "/t/seq-0000000002", "/t/ttl"]),
    ("ls /", 0, ["[t, zookeeper]"]),
    ("ls /zookeeper", 0, ["[config, quota]"]),
    ("ls /nope", 0, ["Node does not exist: /nope"]),
    ("get /t", 0, ["hello"]),
    ("get /t/noData", 0, ["null"]),
    ("set /t v1", 0, []),
    ("set -v 1 /t v2", 0, []),
    ("set -v 99 /t v3", 0, ["version No is not valid : /t"]),
    ("set -s /t v4", 0, STAT_T),
    ("get -s /t", 1, ["v4"] + STAT_T),
    ("stat /t", 0, STAT_T),
    # TTL and container nodes show ephemeralOwner 0 (their marker is hidden from clients).
    ("stat /t/ttl", 0, ["cZxid = <zxid5>", "ctime = <time>", "mZxid = <zxid5>", "mtime = <time>",
                        "pZxid = <zxid5>", "cversion = 0", "dataVersion = 0", "aclVersion = 0",
                        "ephemeralOwner = 0x0", "dataLength = 3", "numChildren = 0"]),
    ("stat /t/cont", 0, ["cZxid = <zxid6>", "ctime = <time>", "mZxid = <zxid6>", "mtime = <time>",
                         "pZxid = <zxid7>", "cversion = 1", "dataVersion = 0", "aclVersion = 0",
                         "ephemeralOwner = 0x0", "dataLength = 0", "numChildren = 1"]),
    ("stat /nope", 0, ["Node does not exist: /nope"]),
    ("getAllChildrenNumber /t", 0, ["8"]),
    # Counts /zookeeper, /zookeeper/config and /zookeeper/quota too.
    ("getAllChildrenNumber /", 0, ["12"]),
    ("getEphemerals", 0, ["[/t/eph, /t/es-0000000003]"]),
    ("getEphemerals /t/e", 0, ["[/t/eph, /t/es-0000000003]"]),
    ("getAcl /t", 0, ["'world,'anyone", ": cdrwa"]),
    ("getAcl /nope", 0, ["Node does not exist: /nope"]),
    ("setAcl /t/ro world:anyone:r", 0, []),
    ("getAcl /t/ro", 0, ["'world,'anyone", ": r"]),
    ("set /t/ro x", 0, ["Insufficient permission : /t/ro"]),
    ("get /t/ro", 0, ["r"]),
    ("addauth digest user:pass", 0, []),
    ("getAcl /t/auth", 0, [f"'digest,'{USER_DIGEST}", ": cdrwa"]),
    ("setAcl -v 7 /t/auth world:anyone:r", 0, ["version No is not valid : /t/auth"]),
    ("getAcl -s /t/auth", 0, [f"'digest,'{USER_DIGEST}", ": cdra", "cZxid = <zxid8>", "ctime = <time>",
                              "mZxid = <zxid8>", "mtime = <time>", "pZxid = <zxid8>", "cversion = 0",
                              "dataVersion = 0", "aclVersion = 2", "ephemeralOwner = 0x0",
                              "dataLength = 1", "numChildren = 0"]),
    ("get /t/dig", 0, ["Insufficient permission : /t/dig"]),
    ("get /t/ipacl", 0, ["i"]),
    ("whoami", 0, ["Auth scheme: User", "ip: 127.0.0.1", "digest: user"]),
    ("addWatch /t/rec", 0, []),
    ("sync /t", 0, ["Sync is OK"]),
    ("delete /t/seq-0000000000", 0, ["Node does not exist: /t/seq-0000000000"]),
    ("delete /t", 0, ["Node not empty: /t"]),
    ("delete -v 5 /t/ttl", 0, ["version No is not valid : /t/ttl"]),
    ("delete -v 0 /t/ttl", 0, []),
    ("delete /t/cont", 0, ["Node not empty: /t/cont"]),
    ("deleteall /t/cont", 0, []),
    ("ls /t/cont", 0, ["Node does not exist: /t/cont"]),
    # A standalone server's /zookeeper/config is empty, read-only, created at zxid 0, aclVersion -1.
    ("config", 0, [""]),
    ("config -s", 0, ["", "cZxid = 0x0", "ctime = Thu Jan 01 00:00:00 UTC 1970", "mZxid = 0x0",
                      "mtime = Thu Jan 01 00:00:00 UTC 1970", "pZxid = 0x0", "cversion = 0",
                      "dataVersion = 0", "aclVersion = -1", "ephemeralOwner = 0x0", "dataLength = 0",
                      "numChildren = 0"]),
    ("getAcl /zookeeper/config", 0, ["'world,'anyone", ": r"]),
    # /zookeeper itself: zxid 0, cversion -2, two children.
    ("get -s /zookeeper", 0, ["", "cZxid = 0x0", "ctime = Thu Jan 01 00:00:00 UTC 1970", "mZxid = 0x0",
                              "mtime = Thu Jan 01 00:00:00 UTC 1970", "pZxid = 0x0", "cversion = -2",
                              "dataVersion = 0", "aclVersion = 0", "ephemeralOwner = 0x0",
                              "dataLength = 0", "numChildren = 2"]),
    ("connect 127.0.0.1:PORT", 0, []),
    ("whoami", 1, ["Auth scheme: User", "ip: 127.0.0.1"]),
    ("get /t/auth", 0, ["Insufficient permission : /t/auth"]),
    ("getEphemerals", 1, ["[]"]),
    ("ls /t", 1, ["[auth, dig, ipacl, noData, nothere, rec, ro, seq-0000000001, seq-0000000002]"]),
    ("deleteall /t", 0, ["Insufficient permission : /t/dig"]),
    ("delete /t/dig", 0, []),
    ("deleteall /t", 1, []),
    ("ls /", 1, ["[zookeeper]"]),
]
REFERENCE_EVENTS = sorted([
    "NodeDataChanged /t/cont/child",
    "NodeChildrenChanged /t/cont",
    "NodeCreated /t/nothere",
    "NodeCreated /t/rec",
    "NodeCreated /t/rec/x",
    "NodeDataChanged /t/rec/x",
    "NodeDeleted /t/rec/x",
])

pytestmark = pytest.mark.compat


def require_zkcli() -> None:
    if not ZKCLI.exists() or shutil.which("java") is None:
        raise RuntimeError(f"{ZKCLI} (or java) is missing: run `make reference` "
                           "(apt-get install -y zookeeper zookeeper-bin)")


def zkcli(args: list[str], stdin: str | None, timeout_s: float) -> tuple[int, str]:
    """Run zkCli.sh in its own process group (the script starts java as a child, not by exec,
    so a timeout must kill the group); stdout and stderr merged, in order."""
    require_zkcli()
    env = dict(os.environ, TZ="UTC", CLIENT_JVMFLAGS=CLIENT_JVMFLAGS)
    process = subprocess.Popen([str(ZKCLI), *args], stdin=subprocess.PIPE if stdin is not None
                               else subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        output, _ = process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"zkCli.sh {' '.join(args)} did not finish within {timeout_s}s; "
                             f"output so far:\n{output}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, output


def run_zkcli(port: int, commands: list[str], timeout_s: float = 150.0) -> str:
    """Run one zkCli.sh session with ``commands`` on stdin, a ``version`` marker before each."""
    stdin = "".join(f"version\n{command.replace('PORT', str(port))}\n" for command in commands)
    return zkcli(["-server", f"127.0.0.1:{port}"], stdin, timeout_s)[1]


class Normaliser:
    """Replaces run-specific values by stable symbols, in order of first appearance."""

    def __init__(self) -> None:
        self.zxids: dict[str, str] = {}
        self.sessions: dict[str, str] = {}

    def zxid(self, value: str) -> str:
        if int(value, 16) == 0:
            return "0x0"
        return self.zxids.setdefault(value, f"<zxid{len(self.zxids) + 1}>")

    def owner(self, value: str) -> str:
        number = int(value, 16)
        # 0: not ephemeral; 0x8000...: container; 0xff......: TTL (the TTL is in the low bits).
        if number == 0 or number == 0x8000000000000000 or number >> 56 == 0xFF:
            return "0x" + value.lower()
        return self.sessions.setdefault(value, f"<session{len(self.sessions) + 1}>")

    def line(self, text: str) -> str:
        match = re.fullmatch(r"(cZxid|mZxid|pZxid) = 0x([0-9a-fA-F]+)", text)
        if match:
            return f"{match.group(1)} = {self.zxid(match.group(2))}"
        match = re.fullmatch(r"(ctime|mtime) = (.*)", text)
        if match:
            return text if "1970" in match.group(2) else f"{match.group(1)} = <time>"
        match = re.fullmatch(r"ephemeralOwner = 0x([0-9a-fA-F]+)", text)
        if match:
            return f"ephemeralOwner = {self.owner(match.group(1))}"
        return text


def split_transcript(raw: str, commands: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Return ([(command, normalised output lines)], sorted watch events) from zkCli's output."""
    # Watch notifications come from the event thread: "\nWATCHER::\n" then "\nWatchedEvent ...\n",
    # each one println, so each arrives whole but may fall between any two lines of a command.
    text = raw.replace("\r\n", "\n")
    events = re.findall(r"\nWatchedEvent state:(\S+) type:(\S+) path:(\S+)\n", text)
    text = text.replace("\nWATCHER::\n", "")
    text = re.sub(r"\nWatchedEvent [^\n]*\n", "", text)
    lines = [line for line in text.split("\n") if not line.startswith("SLF4J:")]
    chunks: list[list[str]] = [[]]
    for line in lines:
        if MARKER.fullmatch(line):
            chunks.append([])
        else:
            chunks[-1].append(line)
    chunks = chunks[1:]  # what precedes the first marker is the start-up banner
    normaliser = Normaliser()
    transcript = []
    for index, command in enumerate(commands):
        output = chunks[index] if index < len(chunks) else ["<no output: zkCli.sh stopped before this>"]
        if index == len(commands) - 1 or index == len(chunks) - 1:
            while output and output[-1] == "":
                output = output[:-1]  # the stream's final newline
        output = [normaliser.line(line) for line in output]
        if command.startswith("ls -R"):
            output = sorted(output)  # the tree walk lists children in the server's order
        if command.startswith("getEphemerals"):
            output = [sort_list_line(line) for line in output]
        transcript.append((command, output))
    watch_events = sorted(f"{kind} {path}" for state, kind, path in events if kind != "None")
    return transcript, watch_events


def sort_list_line(line: str) -> str:
    """'[b, a]' -> '[a, b]' (getEphemerals prints the server's set in its own order)."""
    if line.startswith("[") and line.endswith("]") and len(line) > 2:
        return "[" + ", ".join(sorted(line[1:-1].split(", "))) + "]"
    return line


def render(transcript: list[tuple[str, list[str]]], events: list[str]) -> list[str]:
    out = []
    for index, (command, output) in enumerate(transcript):
        out.append(f"[{index}] > {command}")
        out.extend(f"    {line}" for line in output)
    out.append("watch events:")
    out.extend(f"    {event}" for event in events)
    return out


def zkcli_transcript(server) -> tuple[list[tuple[str, list[str]]], list[str], str]:
    raw = run_zkcli(server.port, SCRIPT)
    transcript, events = split_transcript(raw, SCRIPT)
    return transcript, events, raw


def test_zkcli_transcript(server_kind, server_factory):
    reference = server_factory("zookeeper")
    ref_transcript, ref_events, ref_raw = zkcli_transcript(reference)
    rendered_ref = render(ref_transcript, ref_events)
    markers = len(MARKER.findall(ref_raw))
    assert markers == len(SCRIPT), (f"expected {len(SCRIPT)} markers in the reference's output, "
                                    f"got {markers}:\n{ref_raw}")
    problems = []
    for command, occurrence, expected in REFERENCE_EXPECTATIONS:
        index = [i for i, c in enumerate(SCRIPT) if c == command][occurrence]
        output = ref_transcript[index][1]
        if output != expected:
            problems.append(f"[{index}] {command}: expected {expected!r}, got {output!r}")
    if ref_events != REFERENCE_EVENTS:
        problems.append(f"watch events: expected {REFERENCE_EVENTS}, got {ref_events}")
    assert not problems, ("the reference's zkCli transcript is not as expected (harness broken?):\n"
                          + "\n".join(problems) + "\n\n" + "\n".join(rendered_ref))
    if server_kind == "zookeeper":
        return
    server = server_factory(server_kind)
    transcript, events, raw = zkcli_transcript(server)
    rendered = render(transcript, events)
    if rendered != rendered_ref:
        diff = "\n".join(difflib.unified_diff(rendered_ref, rendered, "zookeeper", server_kind,
                                              lineterm="", n=2))
        pytest.fail(f"zkCli transcript differs from the reference's:\n{diff}\n\n"
                    f"--- raw {server_kind} output:\n{raw}\n--- {server_kind} log (tail):\n"
                    f"{server.log_tail()}")


def test_zkcli_single_command_invocation(server_kind, server_factory):
    """`zkCli.sh -server HOST:PORT cmd args` runs one command and exits (no stdin session)."""
    server = server_factory(server_kind)
    returncode, output = zkcli(["-server", server.connect_string, "ls", "/zookeeper"], None, 120)
    lines = [line for line in output.splitlines()
             if line and not line.startswith(("SLF4J:", "WATCHER::", "WatchedEvent", "Connecting to"))]
    assert returncode == 0, output
    assert lines == ["[config, quota]"], output + "\n" + server.log_tail()
