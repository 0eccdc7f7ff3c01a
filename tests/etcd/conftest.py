"""The etcd API suite: the same etcdctl sequences and client calls against Debian's etcd 3.4
and zkpy's etcd listener, outputs compared after ids and revisions are renamed.

``etcd_pair`` starts one reference etcd and one zkpy for the module; each test works under its
own key prefix, so the tests of a module do not see one another's keys.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.etcdservers import EtcdServer

_prefixes = itertools.count(1)


@pytest.fixture(scope="module")
def etcd_pair(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("etcd-pair")
    servers = {}
    try:
        for kind in ("etcd", "zkpy"):
            servers[kind] = EtcdServer(kind, workdir / kind).start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def prefix():
    """A key prefix of this test's own."""
    return f"/t{next(_prefixes)}"
