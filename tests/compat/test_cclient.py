"""The ZooKeeper C client's shell (cli_mt, libzookeeper-mt 3.8.0) against the reference and zkpy.

cli_mt reads commands on stdin and answers asynchronously on stderr, from its completion thread.
To get one deterministic chunk of output per command, every command is followed by ``sync /``,
whose completion (``[/]: rc = 0`` then ``\\tname = /``) comes after the command's own results
and any watch events they triggered (one session: the server answers in order), and the driver
waits for that marker before sending the next command. The output is normalised (times, zxids,
session ids) and the ``zookeeper`` variant checks it against expectations, while the ``zkpy``
variant starts both servers and requires the same transcript from each.

Notes on cli_mt 3.8.0: ``create [+[e|s|c|t=ttl]] <path>`` always stores the data "new";
``exists`` is synchronous and prints nothing unless it fails (``Error -101 for /x``);
``get``/``ls``/``exists`` leave a watch, whose events are printed as
``Watcher CHANGED_EVENT state = CONNECTED_STATE for path /x``.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")
MARKER_COMMAND = "sync /"
MARKER = "[/]: rc = 0\n\tname = /\n"
WAIT_S = 30.0

SCRIPT = [
    "create /c",
    "create /c/child",
    "create +e /c/eph",
    "create +s /c/seq-",
    "create +s /c/seq-",
    "create +es /c/eseq-",
    "create +c /c/cont",
    "create /c/cont/x",
    "create +t=100000 /c/ttl",
    "create +e /c/eph/x",
    "create /c",
    "create /nope/x",
    "create2 /c/two",
    "create2 +s /c/s2-",
    "create bad",
    "ls /",
    "ls /c",
    "ls2 /c",
    "ls /nope",
    "get /c",
    "get /nope",
    "set /c hello",
    "get /c",
    "set /c again",
    "set /nope x",
    "exists /c",
    "exists /nope",
    "create /nope",
    "wexists /c/child",
    "delete /c/child",
    "ls /c/cont",
    "delete /c/cont/x",
    "sync /c",
    "delete /c",
    "delete /c/missing",
    "get /zookeeper",
    "ls /zookeeper",
    "config",
    "addauth digest user:pass",
    "get /c/two",
]

# Expected (normalised) output of some commands on the reference, as (command, occurrence, lines).
REFERENCE_EXPECTATIONS = [
    ("create /c", 0, ["Creating [/c] node (mode: 0)", "[/c]: rc = 0", "\tname = /c"]),
    ("create +s /c/seq-", 0, ["Creating [/c/seq-] node (mode: 2)", "[/c/seq-]: rc = 0",
                              "\tname = /c/seq-0000000002"]),
    ("create +es /c/eseq-", 0, ["Creating [/c/eseq-] node (mode: 3)", "[/c/eseq-]: rc = 0",
                                "\tname = /c/eseq-0000000004"]),
    ("create +c /c/cont", 0, ["Creating [/c/cont] node (mode: 4)", "[/c/cont]: rc = 0", "\tname = /c/cont"]),
    ("create +t=100000 /c/ttl", 0, ["Creating [/c/ttl] node (mode: 5)", "[/c/ttl]: rc = 0", "\tname = /c/ttl"]),
    # ZNOCHILDRENFOREPHEMERALS
    ("create +e /c/eph/x", 0, ["Creating [/c/eph/x] node (mode: 1)", "[/c/eph/x]: rc = -108"]),
    ("create /c", 1, ["Creating [/c] node (mode: 0)", "[/c]: rc = -110"]),
    ("create /nope/x", 0, ["Creating [/nope/x] node (mode: 0)", "[/nope/x]: rc = -101"]),
    ("create bad", 0, ["Path must start with /, found: bad"]),
    ("ls /", 0, ["/: rc = 0", "\tc", "\tzookeeper"]),
    ("ls /nope", 0, ["/nope: rc = -101"]),
    ("get /nope", 0, ["/nope: rc = -101", "", "Stat:", "null"]),
    ("set /nope x", 0, ["/nope: rc = -101 Stat:", "null"]),
    ("exists /c", 0, []),
    ("exists /nope", 0, ["Error -101 for /nope"]),
    ("create /nope", 0, ["Creating [/nope] node (mode: 0)",
                         "Watcher CREATED_EVENT state = CONNECTED_STATE for path /nope",
                         "Watcher CHILD_EVENT state = CONNECTED_STATE for path /",
                         "[/nope]: rc = 0", "\tname = /nope"]),
    # One transaction, two watches: the node's own watch fires before its parent's child watch.
    ("delete /c/child", 0, ["Watcher DELETED_EVENT state = CONNECTED_STATE for path /c/child",
                            "Watcher CHILD_EVENT state = CONNECTED_STATE for path /c",
                            "/c/child: rc = 0"]),
    ("set /c hello", 0, ["Watcher CHANGED_EVENT state = CONNECTED_STATE for path /c", "/c: rc = 0 Stat:",
                         "\tctime = <time>", "\tczxid=<zxid3>", "\tmtime=<time>", "\tmzxid=<zxid4>",
                         "\tversion=1\taversion=0", "\tephemeralOwner = 0"]),
    ("get /c", 1, ["/c: rc = 0", " value_len = 5", "hello", "Stat:", "\tctime = <time>", "\tczxid=<zxid3>",
                   "\tmtime=<time>", "\tmzxid=<zxid4>", "\tversion=1\taversion=0", "\tephemeralOwner = 0"]),
    ("create2 +s /c/s2-", 0, ["Creating [/c/s2-] node (mode: 2)", "[/c/s2-]: rc = 0", "\tname = /c/s2-0000000008",
                              "\tctime = <time>", "\tczxid=<zxid2>", "\tmtime=<time>", "\tmzxid=<zxid2>",
                              "\tversion=0\taversion=0", "\tephemeralOwner = 0"]),
    # /zookeeper/config: empty, zxid 0, aversion -1.
    ("config", 0, ["/zookeeper/config: rc = 0", " value_len = 0", "", "Stat:",
                   "\tctime = Thu Jan  1 00:00:00 1970", "\tczxid=0", "\tmtime=Thu Jan  1 00:00:00 1970",
                   "\tmzxid=0", "\tversion=0\taversion=ffffffff", "\tephemeralOwner = 0"]),
    ("sync /c", 0, ["[/c]: rc = 0", "\tname = /c"]),
    ("delete /c", 0, ["/c: rc = -111"]),
    ("delete /c/missing", 0, ["/c/missing: rc = -101"]),
    ("ls /zookeeper", 0, ["/zookeeper: rc = 0", "\tconfig", "\tquota"]),
    ("addauth digest user:pass", 0, []),
]

pytestmark = pytest.mark.compat


def require_cli_mt() -> None:
    if not CLI_MT.exists():
        raise RuntimeError(f"{CLI_MT} is missing: run `make reference` "
                           "(apt-get install -y zookeeper-bin)")


class CliSession:
    """A running cli_mt whose stderr is collected by a thread."""

    def __init__(self, connect_string: str) -> None:
        require_cli_mt()
        env = dict(os.environ, TZ="UTC")  # dates are printed with ctime_r, in local time
        self.process = subprocess.Popen([str(CLI_MT), "-h", connect_string], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.output = bytearray()
        self.stdout = bytearray()
        self.lock = threading.Lock()
        self.readers = [threading.Thread(target=self._read, args=(self.process.stderr, self.output), daemon=True),
                        threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self, stream, sink: bytearray) -> None:
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                return
            with self.lock:
                sink.extend(chunk)

    def text(self) -> str:
        with self.lock:
            return self.output.decode(errors="replace")

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition(self.text()):
            if self.process.poll() is not None:
                raise AssertionError(f"cli_mt exited ({self.process.returncode}) while waiting for "
                                     f"{what}; output:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}; output:\n{self.text()}")
            time.sleep(0.01)

    def send(self, line: str) -> None:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.send("quit")
                self.process.stdin.close()
                self.process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self.readers:
                reader.join(timeout=5)


def run_script(connect_string: str, commands: list[str]) -> str:
    """Run ``commands`` through cli_mt, one at a time, each followed by the marker; return stderr."""
    session = CliSession(connect_string)
    try:
        session.wait_for(lambda text: "Got a new session id" in text, "the session to be established")
        session.send(MARKER_COMMAND)
        session.wait_for(lambda text: text.count(MARKER) >= 1, "the first marker")
        for count, command in enumerate(commands, start=2):
            session.send(command)
            session.send(MARKER_COMMAND)
            session.wait_for(lambda text, n=count: text.count(MARKER) >= n,
                             f"the marker after {command!r}")
    finally:
        session.close()
    return session.text()


class Normaliser:
    def __init__(self) -> None:
        self.zxids: dict[str, str] = {}
        self.sessions: dict[str, str] = {}

    def zxid(self, value: str) -> str:
        if int(value, 16) == 0:
            return "0"
        return self.zxids.setdefault(value, f"<zxid{len(self.zxids) + 1}>")

    def owner(self, value: str) -> str:
        number = int(value, 16)
        if number == 0 or number == 0x8000000000000000 or number >> 56 == 0xFF:
            return value
        return self.sessions.setdefault(value, f"<session{len(self.sessions) + 1}>")

    def line(self, text: str) -> str | None:
        if re.fullmatch(r"time = -?\d+ msec", text):
            return None
        # The C library's own log lines: keep level, function and message, drop time/pid/thread/port.
        match = re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+:\d+\(0x[0-9a-f]+\):(ZOO_\w+)@(\w+)@\d+: (.*)", text)
        if match:
            message = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", match.group(3))
            return f"{match.group(1)}@{match.group(2)}: {message}"
        match = re.fullmatch(r"\t(czxid|mzxid)=([0-9a-f]+)", text)
        if match:
            return f"\t{match.group(1)}={self.zxid(match.group(2))}"
        match = re.fullmatch(r"\t(ctime = |mtime=)(.*)", text)
        if match:
            return text if "1970" in match.group(2) else f"\t{match.group(1)}<time>"
        match = re.fullmatch(r"\tephemeralOwner = ([0-9a-f]+)", text)
        if match:
            return f"\tephemeralOwner = {self.owner(match.group(1))}"
        return text


def transcript(raw: str, commands: list[str]) -> list[tuple[str, list[str]]]:
    chunks = raw.split(MARKER)
    # chunks[0]: connection messages; chunks[i]: output of commands[i-1]; last: "Quitting..." etc.
    normaliser = Normaliser()
    result = []
    for index, command in enumerate(commands, start=1):
        lines = chunks[index].split("\n") if index < len(chunks) else ["<missing>"]
        if lines and lines[-1] == "":
            lines = lines[:-1]
        lines = sort_children(command, lines)
        normalised = [normaliser.line(line) for line in lines]
        result.append((command, [line for line in normalised if line is not None]))
    return result


def sort_children(command: str, lines: list[str]) -> list[str]:
    """ls/ls2 print children in the server's order; sort the tab-indented block after 'rc = 0'."""
    if not (command.startswith("ls ") or command.startswith("ls2 ")):
        return lines
    out = list(lines)
    for i, line in enumerate(out):
        if re.fullmatch(r"/\S*: rc = 0", line):
            j = i + 1
            while j < len(out) and out[j].startswith("\t"):
                j += 1
            out[i + 1:j] = sorted(out[i + 1:j])
            break
    return out


def render(result: list[tuple[str, list[str]]]) -> list[str]:
    out = []
    for command, lines in result:
        out.append(f"> {command}")
        out.extend(f"    {line!r}" for line in lines)
    return out


def test_cclient_transcript(server_kind, server_factory):
    reference = server_factory("zookeeper")
    ref = transcript(run_script(reference.connect_string, SCRIPT), SCRIPT)
    problems = []
    for command, occurrence, expected in REFERENCE_EXPECTATIONS:
        index = [i for i, c in enumerate(SCRIPT) if c == command][occurrence]
        if ref[index][1] != expected:
            problems.append(f"{command!r}: expected {expected!r}, got {ref[index][1]!r}")
    assert not problems, ("the reference's cli_mt transcript is not as expected (harness broken?):\n"
                          + "\n".join(problems) + "\n\n" + "\n".join(render(ref)))
    if server_kind == "zookeeper":
        return
    server = server_factory(server_kind)
    raw = run_script(server.connect_string, SCRIPT)
    got = transcript(raw, SCRIPT)
    if render(got) != render(ref):
        diff = "\n".join(difflib.unified_diff(render(ref), render(got), "zookeeper", server_kind,
                                              lineterm="", n=2))
        pytest.fail(f"cli_mt transcript differs from the reference's:\n{diff}\n\n--- raw {server_kind} "
                    f"output:\n{raw}\n--- {server_kind} log (tail):\n{server.log_tail()}")
