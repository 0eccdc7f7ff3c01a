"""Fixtures shared by every test directory."""

from __future__ import annotations

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
