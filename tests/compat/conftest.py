"""The compatibility suite: the same scenarios against the reference ZooKeeper and zkpy.

* Every test here is marked ``compat``.
* Results are collected into a matrix (test name without the server parameter × server kind,
  pass/fail) printed at the end of the session and written to ``--compat-report=PATH`` (or the
  ``COMPAT_REPORT`` environment variable). Tests that start both servers and compare them
  (cross-server and random lockstep tests), and any test not parametrised by ``server_kind``,
  appear in the ``both`` column.
* Fixtures: ``raw_factory`` (raw-protocol clients), ``kazoo_factory`` (started KazooClients),
  ``server_pair`` (the reference and the server under comparison, for cross-server tests;
  ``COMPAT_PEER=zookeeper`` compares the reference with itself, to validate the tests).

Note: pytest only knows ``--compat-report`` once this conftest is loaded, i.e. when tests/compat
(or a file in it) is named on the command line, as ``make compat`` does; otherwise use
``COMPAT_REPORT=PATH``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import pytest

from tests.support.rawclient import RawClient, expire_session
from tests.support.servers import ENSEMBLE_KINDS, KINDS

COMPAT_DIR = Path(__file__).resolve().parent
CROSS = "both"
_RESULTS: "OrderedDict[str, dict[str, str]]" = OrderedDict()
_RANK = {"pass": 0, "skip": 1, "fail": 2}


def pytest_addoption(parser):
    group = parser.getgroup("compat")
    group.addoption("--compat-report", action="store", default=None, metavar="PATH",
                    help="write the compatibility matrix (test x server kind) to PATH")


def _in_compat(item) -> bool:
    try:
        return Path(str(item.path)).resolve().is_relative_to(COMPAT_DIR)
    except (AttributeError, ValueError):
        return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _in_compat(item):
            item.add_marker(pytest.mark.compat)


def _row_and_column(item) -> tuple[str, str]:
    callspec = getattr(item, "callspec", None)
    name = getattr(item, "originalname", None) or item.name.split("[")[0]
    module = Path(str(item.path)).stem
    if callspec is None:
        return f"{module}::{name}", CROSS
    kind = callspec.params.get("server_kind")
    parts = callspec.id.split("-") if callspec.id else []
    if kind is not None and kind in parts:
        parts.remove(kind)
    row = f"{module}::{name}" + (f"[{'-'.join(parts)}]" if parts else "")
    return row, (kind if kind is not None else CROSS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not _in_compat(item):
        return
    row, column = _row_and_column(item)
    if report.passed:
        result = "pass" if report.when == "call" else None
    elif report.skipped:
        result = "skip"
    else:
        result = "fail"
    if result is None:
        return
    cells = _RESULTS.setdefault(row, {})
    previous = cells.get(column)
    if previous is None or _RANK[result] > _RANK[previous]:
        cells[column] = result


def render_matrix() -> str:
    seen = {column for cells in _RESULTS.values() for column in cells}
    columns = [kind for kind in ENSEMBLE_KINDS if kind in KINDS or kind in seen]
    if any(CROSS in cells for cells in _RESULTS.values()):
        columns.append(CROSS)
    width = max([len(row) for row in _RESULTS] + [len("test")])
    lines = ["test".ljust(width) + "  " + "  ".join(c.ljust(9) for c in columns)]
    totals = {c: {"pass": 0, "fail": 0, "skip": 0} for c in columns}
    for row in sorted(_RESULTS):
        cells = _RESULTS[row]
        rendered = []
        for column in columns:
            value = cells.get(column, "-")
            if value in ("pass", "fail", "skip"):
                totals[column][value] += 1
            rendered.append(value.ljust(9))
        lines.append(row.ljust(width) + "  " + "  ".join(rendered))
    lines.append("")
    for column in columns:
        t = totals[column]
        lines.append(f"{column}: {t['pass']} pass, {t['fail']} fail"
                     + (f", {t['skip']} skip" if t["skip"] else ""))
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _RESULTS:
        return
    text = render_matrix()
    terminalreporter.section("compatibility matrix")
    terminalreporter.write(text)
    path = config.getoption("--compat-report", default=None) or os.environ.get("COMPAT_REPORT")
    if path:
        Path(path).write_text(text)
        terminalreporter.write_line(f"compatibility matrix written to {path}")


# --- fixtures --------------------------------------------------------------------------------

_OWN_MODULE_PREFIXES = ("test_raw_", "test_kazoo_", "test_scenarios", "test_random_ops")


@pytest.fixture
def server_factory(server_factory, request):
    """The shared ``server_factory``; for this suite's own modules the servers are SIGKILLed
    at the end of the test (their data is throw-away), which saves a graceful JVM shutdown per
    test. Other modules keep the graceful stop."""
    started = []

    def start(kind, settings=None, jvm_properties=None):
        server = server_factory(kind, settings, jvm_properties)
        started.append(server)
        return server

    yield start
    if request.module.__name__.rpartition(".")[2].startswith(_OWN_MODULE_PREFIXES):
        for server in started:
            server.kill()

@pytest.fixture
def raw_factory():
    """``raw_factory(server, **kwargs)`` opens a RawClient session; all are dropped at the end."""
    clients: list[RawClient] = []

    def make(server, **kwargs) -> RawClient:
        client = RawClient("127.0.0.1", server.port, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.disconnect()


@pytest.fixture
def kazoo_factory():
    """``kazoo_factory(server, **kwargs)`` returns a started KazooClient; all stopped at the end."""
    from kazoo.client import KazooClient

    clients = []

    def make(server, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        client = KazooClient(hosts=server.connect_string, **kwargs)
        clients.append(client)
        client.start(timeout=15)
        return client

    yield make
    for client in clients:
        try:
            client.stop()
            client.close()
        except Exception:  # a test may have stopped it already
            pass


def peer_kind() -> str:
    kind = os.environ.get("COMPAT_PEER", "zkpy")
    if kind not in KINDS:
        raise RuntimeError(f"COMPAT_PEER={kind!r} is not one of {KINDS}")
    return kind


@pytest.fixture
def server_pair(server_factory):
    """Start the reference and the server under comparison (zkpy unless COMPAT_PEER says)."""

    def start(settings=None, jvm_properties=None):
        reference = server_factory("zookeeper", settings, jvm_properties)
        peer = server_factory(peer_kind(), settings, jvm_properties)
        return reference, peer

    return start


def wait_until(predicate, timeout_s: float = 15.0, interval_s: float = 0.02, message: str = ""):
    """Wait (with a deadline) until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


class Recorder:
    """Thread-safe list with waiting, for callbacks from client threads."""

    def __init__(self) -> None:
        self.items: list = []
        self.cond = threading.Condition()

    def append(self, item) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout_s: float = 15.0, message: str = ""):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate(self.items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(message or f"not satisfied: {self.items!r}")
                self.cond.wait(remaining)
            return list(self.items)

    def snapshot(self) -> list:
        with self.cond:
            return list(self.items)


@pytest.fixture(name="wait_until")
def wait_until_fixture():
    return wait_until


@pytest.fixture(name="recorder")
def recorder_fixture():
    """``recorder()`` makes a thread-safe list with waiting."""
    return Recorder


@pytest.fixture(name="expire")
def expire_fixture():
    """``expire(server, session_id, passwd)``: end a session from another connection."""
    return expire_session
