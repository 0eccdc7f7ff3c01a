"""Prometheus metrics (metricsProvider.className=...PrometheusMetricsProvider) over real HTTP.

The reference's Prometheus provider is not packaged by Debian, so names are checked against
ZooKeeper's documented metric names (the mntr keys without zk_, plus its summaries).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import REPO_ROOT, ServerProcess, four_letter_word, free_port

PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
ZOOKEEPER_GAUGES = ("znode_count", "watch_count", "num_alive_connections", "outstanding_requests",
                    "ephemerals_count", "packets_received", "packets_sent", "avg_latency",
                    "min_latency", "max_latency", "uptime", "approximate_data_size",
                    "global_sessions", "local_sessions", "open_file_descriptor_count",
                    "max_file_descriptor_count", "quorum_size")


def metrics_settings(port: int) -> dict:
    return {"metricsProvider.className": PROMETHEUS, "metricsProvider.httpPort": str(port),
            "metricsProvider.httpHost": "127.0.0.1"}


def scrape(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(found: dict, name: str, suffix: str = "", labels: dict | None = None) -> float:
    for s in found[name].samples:
        if s.name == name + suffix and (labels is None or s.labels == labels):
            return s.value
    raise AssertionError(f"no sample {name}{suffix} {labels or ''}")


def mntr(port: int) -> dict:
    rows = {}
    for line in four_letter_word(port, "mntr").splitlines():
        key, _, value = line.partition("\t")
        rows[key] = value
    return rows


def test_metrics_have_zookeepers_names_and_follow_the_server(server_factory):
    port = free_port()
    server = server_factory("zkpy", settings=metrics_settings(port))
    status, content_type, text = scrape(port)
    assert status == 200
    assert content_type.startswith("text/plain")
    found = families(text)
    for name in ZOOKEEPER_GAUGES:
        assert name in found, name
        assert found[name].type == "gauge", name
    assert found["fsynctime"].type == "summary"
    assert found["snapshottime"].type == "summary"
    assert sample(found, "quorum_size") == 1
    assert "process_cpu_seconds" in found  # exportJvmInfo's stand-in: the process's metrics

    client = KazooClient(server.connect_string, timeout=10)
    client.start(timeout=10)
    try:
        for index in range(5):
            client.create(f"/metrics/n{index}", b"x" * 10, makepath=True)
        client.create("/metrics/eph", b"", ephemeral=True)
        client.get("/metrics/n0", watch=lambda event: None)
        found = families(scrape(port)[2])
        rows = mntr(server.port)
        # The same figures as the 4lw, read at scrape time.
        for name in ("znode_count", "ephemerals_count", "watch_count", "global_sessions"):
            assert sample(found, name) == float(rows[f"zk_{name}"]), name
        assert sample(found, "ephemerals_count") == 1
        assert sample(found, "num_alive_connections") >= 1
        assert sample(found, "packets_received") >= 7
        # Every write was synced: one fsync per group commit, at least one commit.
        assert sample(found, "fsynctime", "_count") >= 1
        assert sample(found, "fsynctime", "_sum") > 0
        assert sample(found, "fsynctime", "", {"quantile": "0.5"}) > 0
        # The txns in those syncs (6 creates, the parents' and the session's).
        assert found["sync_processor_batch_size"].type == "summary"
        assert sample(found, "sync_processor_batch_size", "_sum") >= 7
        assert sample(found, "sync_processor_batch_size", "_count") == sample(
            found, "fsynctime", "_count")
    finally:
        client.stop()
        client.close()


def wait_for(condition, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_mntr_reports_the_snapshots_and_log_syncs_the_server_does(server_factory):
    """The summaries move when the work happens: a standalone server with snapCount=50 takes
    snapshots during 200 writes (its forked child writes them), and syncs the log for each."""
    server = server_factory("zkpy", settings={"snapCount": "50"})
    before = mntr(server.port)
    assert before["zk_cnt_snapshottime"] == "0"
    client = KazooClient(server.connect_string, timeout=10)
    client.start(timeout=10)
    try:
        for index in range(200):
            client.create(f"/snap/n{index}", b"x" * 10, makepath=True)
    finally:
        client.stop()
        client.close()

    def rows_once_a_snapshot_is_reported():
        rows = mntr(server.port)
        return rows if int(rows["zk_cnt_snapshottime"]) >= 1 else None

    after = wait_for(rows_once_a_snapshot_is_reported)
    assert after, "no snapshot reported after 200 writes with snapCount=50"
    snapshots = int(after["zk_cnt_snapshottime"])
    assert 1 <= snapshots <= 4  # one per 50 txns, fewer when one is still being written
    # The snapshots counted are the ones the server took and logged. The client has closed, so
    # once every snapshot started has been taken no further one begins and the counts hold.
    def snapshots_settled():
        text = server.log_path.read_text()
        taken = text.count("snapshot taken")
        return (text.count("snapshot started") == taken
                and taken == int(mntr(server.port)["zk_cnt_snapshottime"]))

    assert wait_for(snapshots_settled)
    assert int(after["zk_sum_snapshottime"]) >= 1  # milliseconds: a fork, a file and an fsync
    assert float(after["zk_avg_snapshottime"]) > 0
    assert int(after["zk_min_snapshottime"]) <= int(after["zk_max_snapshottime"])
    # Every write was synced: at least one batch, at most one per txn (the session's create,
    # the 200 creates and the parent's, and the session's close).
    syncs = int(after["zk_cnt_fsynctime"]) - int(before["zk_cnt_fsynctime"])
    logged = (int(after["zk_sum_sync_processor_batch_size"])
              - int(before["zk_sum_sync_processor_batch_size"]))
    assert logged >= 202
    assert 1 <= syncs <= logged
    assert int(after["zk_cnt_sync_processor_batch_size"]) == int(after["zk_cnt_fsynctime"])
    assert float(after["zk_avg_fsynctime"]) > 0
    assert int(after["zk_max_sync_processor_batch_size"]) >= 1
    # srst starts them over, as ZooKeeper's resets its metrics.
    assert four_letter_word(server.port, "srst") == "Server stats reset.\n"
    reset = mntr(server.port)
    for name in ("fsynctime", "snapshottime", "sync_processor_batch_size"):
        assert reset[f"zk_cnt_{name}"] == "0", name
        assert reset[f"zk_sum_{name}"] == "0", name


def test_metrics_endpoint_serves_only_metrics(server_factory):
    port = free_port()
    server_factory("zkpy", settings=metrics_settings(port))
    assert scrape(port, "/")[0] == 404
    assert scrape(port, "/commands")[0] == 404
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    # OpenMetrics, for scrapers that ask for it.
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().decode().rstrip().endswith("# EOF")


def test_no_metrics_port_without_the_prometheus_provider(server_factory):
    port = free_port()
    server_factory("zkpy", settings={"metricsProvider.httpPort": str(port)})
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_admin_server_and_metrics_together(server_factory):
    metrics_port, admin_port = free_port(), free_port()
    settings = metrics_settings(metrics_port)
    settings.update({"admin.enableServer": "true", "admin.serverPort": str(admin_port),
                     "admin.serverAddress": "127.0.0.1"})
    server_factory("zkpy", settings=settings)
    assert scrape(metrics_port)[0] == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/commands/ruok", timeout=10) as response:
        assert response.status == 200


def test_an_unknown_provider_class_is_a_configuration_error(tmp_path):
    config = tmp_path / "zoo.cfg"
    config.write_text(f"dataDir={tmp_path / 'data'}\nclientPort={free_port()}\n"
                      "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                      "metricsProvider.className=com.example.NoSuchProvider\n")
    result = subprocess.run([sys.executable, "-m", "zkpy", str(config)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "metricsProvider.className" in result.stderr


def test_a_taken_metrics_port_stops_the_server(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        server = ServerProcess("zkpy", tmp_path / "taken", metrics_settings(port))
        try:
            with pytest.raises(RuntimeError, match="exited with 4"):
                server.start(timeout_s=20)
        finally:
            server.stop()
    assert "Unable to start Prometheus metrics endpoint" in server.log_path.read_text()
