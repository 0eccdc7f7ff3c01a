"""Prometheus metrics (metricsProvider.className=...PrometheusMetricsProvider) over real HTTP.

The reference's Prometheus provider is not packaged by Debian, so names are checked against
ZooKeeper's documented metric names (the mntr keys without zk_, plus its summaries).
"""

from __future__ import annotations

import socket
import subprocess
import sys
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
    finally:
        client.stop()
        client.close()


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
