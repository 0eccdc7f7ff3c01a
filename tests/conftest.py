"""Fixtures shared by every test directory, and the suite's watchdogs.

The watchdogs exist because CI shows only the tail of the output: a run that hangs (a test
stuck where pytest-timeout's alarm cannot reach it, or an interpreter that cannot exit after
the last test, with some client still reconnecting to a stopped server) must end with the stack
of every thread printed, not with CI's own kill and no clue. ``ZKPY_TEST_BUDGET_S`` bounds the
whole session (default 70 minutes: CI's 90 also hold the install and the failover rounds);
after the last report the process gets ``EXIT_GRACE_S`` to exit before the stacks are dumped
and it leaves with the session's status.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading

import pytest

from tests.support.servers import KINDS, ServerProcess


@pytest.fixture
def server_factory(tmp_path):
    """Start servers on free ports; every one is stopped when the test ends.

    ``server_factory(kind, settings=None, jvm_properties=None)`` returns a started
    ``ServerProcess``.
    """
    started: list[ServerProcess] = []

    def start(kind: str, settings: dict | None = None, jvm_properties: dict | None = None):
        server = ServerProcess(kind, tmp_path / f"{kind}-{len(started)}", settings, jvm_properties)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=KINDS)
def server_kind(request) -> str:
    """Parametrises a test over the reference ZooKeeper and zkpy."""
    return request.param


EXIT_GRACE_S = 60


def pytest_sessionstart(session):
    budget_s = float(os.environ.get("ZKPY_TEST_BUDGET_S", "4200"))
    # C-level: fires even if the GIL is never released; exits with status 1.
    faulthandler.dump_traceback_later(budget_s, exit=True)


def pytest_unconfigure(config):
    faulthandler.cancel_dump_traceback_later()
    status = getattr(config, "_zkpy_exit_status", 0)

    def force_exit() -> None:
        sys.__stderr__.write(f"\nthe test process did not exit {EXIT_GRACE_S}s after the last "
                             "test; the stacks of its threads:\n")
        faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
        sys.__stderr__.flush()
        os._exit(status)

    timer = threading.Timer(EXIT_GRACE_S, force_exit)
    timer.daemon = True
    timer.start()
    # The backstop, should the timer's thread never get the GIL.
    faulthandler.dump_traceback_later(EXIT_GRACE_S * 2, exit=True)


def pytest_sessionfinish(session, exitstatus):
    session.config._zkpy_exit_status = int(exitstatus)
