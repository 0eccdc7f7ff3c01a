"""aetcd (a maintained asyncio etcd v3 client) against the reference etcd and zkpy: the same
calls on both (tests/etcd/aetcd_scenarios.py, in a child process), their observations compared
with revisions and lease ids renamed in order of appearance.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.servers import REPO_ROOT


def observe(endpoint: str, name: str, prefix: str, *args) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-m", "tests.etcd.aetcd_scenarios", name, endpoint,
                           prefix, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"scenario {name} failed on {endpoint}:\n{done.stderr[-3000:]}")
    return done.stdout.splitlines()


def both(etcd_pair, prefix: str, name: str, *args) -> list[str]:
    results = {kind: observe(server.endpoint, name, prefix, *args)
               for kind, server in etcd_pair.items()}
    assert results["zkpy"] == results["etcd"]
    return results["zkpy"]


@pytest.mark.parametrize("name", ["kv_calls", "transactions", "leases_and_lock", "watch_calls"])
def test_calls_agree(etcd_pair, prefix, name):
    assert both(etcd_pair, prefix, name)


@pytest.mark.parametrize("size_bytes", [512 * 1024, 2 * 1024 * 1024])
def test_request_size_limit(etcd_pair, prefix, size_bytes):
    both(etcd_pair, prefix, "request_size_limit", size_bytes)


def test_a_txn_over_jute_maxbuffer_is_too_large(etcd_pair, prefix):
    """zkpy's own bound: a txn travels between members as one ZooKeeper packet, so it must fit
    jute.maxbuffer (1 MiB by default), below etcd's 1.5 MiB; over it, etcd's too-large error."""
    rows = observe(etcd_pair["zkpy"].endpoint, "put_over_jute_maxbuffer", prefix)
    assert rows == ["('refused', 'InvalidArgumentError', True)"]
