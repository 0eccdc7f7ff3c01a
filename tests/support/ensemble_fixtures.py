"""Fixtures and helpers for tests that run whole ensembles (zkpy or the reference ZooKeeper).

Import the fixtures into a test module (tests/compat/conftest.py is not this file's owner)::

    from tests.support.ensemble_fixtures import ensemble_factory  # noqa: F401

* ``ensemble_factory(kind, size=3, settings=None, start=True)`` returns the members (started and
  serving unless ``start=False``); every member it made is stopped (SIGCONT, then SIGKILL: the
  data is throw-away) when the test ends, whatever state the test left it in.
* ``module_ensemble_factory``: the same, for module-scoped fixtures that share one ensemble.

Helpers: ``mode(member)`` ('leader', 'follower', 'not-serving' or 'down'), ``wait_for``,
``leader_of(members)``, ``wait_serving(members)``, ``pause``/``resume`` (SIGSTOP/SIGCONT of the
member's process group), ``member_client(member)`` (a kazoo client bound to that member only) and
``tree_of(client)`` (every znode's data, for comparing members).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.servers import ServerProcess, ensemble, four_letter_word, start_all

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


class EnsembleManager:
    """Makes ensembles under one directory and stops every member it made."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.members: list[ServerProcess] = []
        self.count = 0

    def make(self, kind: str, size: int = 3, settings: dict | None = None,
             start: bool = True) -> list[ServerProcess]:
        self.count += 1
        members = ensemble(kind, self.workdir / f"ensemble-{self.count}", size, settings)
        self.members.extend(members)
        if start:
            start_all(members)
        return members

    def stop_all(self) -> None:
        for member in self.members:
            resume(member)
            member.kill()


@pytest.fixture
def ensemble_factory(tmp_path):
    manager = EnsembleManager(tmp_path)
    try:
        yield manager.make
    finally:
        manager.stop_all()


@pytest.fixture(scope="module")
def module_ensemble_factory(tmp_path_factory):
    manager = EnsembleManager(tmp_path_factory.mktemp("ensembles"))
    try:
        yield manager.make
    finally:
        manager.stop_all()


# -- helpers ------------------------------------------------------------------------------------

def mode(member: ServerProcess, timeout_s: float = 2.0) -> str:
    """What srvr says: 'leader', 'follower', 'standalone', 'not-serving', or 'down'."""
    if callable(getattr(member, "mode", None)):
        return member.mode()  # a member in a network namespace knows its own address
    if member.process is None or member.process.poll() is not None:
        return "down"
    try:
        text = four_letter_word(member.port, "srvr", timeout_s=timeout_s)
    except OSError:
        return "down"
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    if NOT_SERVING in text:
        return "not-serving"
    return "unknown"


def wait_for(predicate, what: str, timeout_s: float = 30.0, interval_s: float = 0.05):
    """Wait (a deadline, not a timing assertion) until ``predicate()`` is truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def leader_of(members: list[ServerProcess], timeout_s: float = 30.0) -> ServerProcess:
    return wait_for(lambda: next((m for m in members if mode(m) == "leader"), None),
                    "a leader", timeout_s)


def wait_serving(members: list[ServerProcess], timeout_s: float = 60.0) -> None:
    """Until every member is a leader or a follower, and exactly one leads."""
    def settled():
        modes = [mode(m) for m in members]
        return (all(x in ("leader", "follower") for x in modes) and modes.count("leader") == 1)
    try:
        wait_for(settled, "every member to serve", timeout_s, 0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}; modes now {[mode(m) for m in members]}\n"
                             + describe_logs(members)) from None


def describe_logs(members: list[ServerProcess], lines: int = 25) -> str:
    return "\n".join(f"--- {m.kind} member {m.myid} (port {m.port}) log tail:\n{m.log_tail(lines)}"
                     for m in members)


def _signal_group(member: ServerProcess, sig: int) -> bool:
    process = member.process
    if process is None or process.poll() is not None:
        return False
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return False
    return True


def pause(member: ServerProcess) -> bool:
    """SIGSTOP the member's whole process group (the JVM or the Python server)."""
    return _signal_group(member, signal.SIGSTOP)


def resume(member: ServerProcess) -> bool:
    return _signal_group(member, signal.SIGCONT)


def fast_retry(max_tries: int = -1, max_delay: float = 0.5):
    """A kazoo retry policy that keeps trying quickly (elections take a few seconds)."""
    from kazoo.retry import KazooRetry
    return KazooRetry(max_tries=max_tries, delay=0.05, backoff=1.5, max_delay=max_delay,
                      ignore_expire=False)


def make_client(hosts: str, timeout_s: float = 10.0, **kwargs):
    """A kazoo client (not started) that reconnects quickly."""
    from kazoo.client import KazooClient
    kwargs.setdefault("connection_retry", fast_retry())
    kwargs.setdefault("command_retry", fast_retry(max_tries=60))
    return KazooClient(hosts=hosts, timeout=timeout_s, **kwargs)


def member_client(member: ServerProcess, timeout_s: float = 10.0, start_timeout_s: float = 20.0):
    """A started kazoo client connected to ``member`` alone."""
    client = make_client(member.connect_string, timeout_s)
    client.start(start_timeout_s)
    return client


def tree_of(client, path: str = "/", skip=("/zookeeper",)) -> dict[str, bytes]:
    """{path: data} for every znode under ``path`` (``skip`` subtrees left out)."""
    out: dict[str, bytes] = {}
    stack = [path]
    while stack:
        node = stack.pop()
        if node in skip:
            continue
        data, _ = client.get(node)
        out[node] = data
        for child in client.get_children(node):
            stack.append(("" if node == "/" else node) + "/" + child)
    return out


def stop_clients(clients) -> None:
    for client in clients:
        try:
            client.stop()
            client.close()
        except Exception:  # noqa: BLE001 - best effort at the end of a test
            pass
