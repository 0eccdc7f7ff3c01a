"""Prometheus metrics, as ZooKeeper's PrometheusMetricsProvider exports them.

Enabled by ``metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider``;
served at ``GET /metrics`` on ``metricsProvider.httpHost``:``metricsProvider.httpPort`` (default
0.0.0.0:7000) by the same small asyncio HTTP server as the AdminServer.

Values are read when Prometheus scrapes (a custom collector over the ``Server``), so serving
requests costs nothing more. Names are ZooKeeper's: every numeric ``mntr`` row without its
``zk_`` prefix (``znode_count``, ``watch_count``, ``num_alive_connections``,
``outstanding_requests``, ``ephemerals_count``, ``packets_received``, ``packets_sent``,
``avg_latency``, ``min_latency``, ``max_latency``, ``uptime``, ``approximate_data_size``,
``global_sessions``, ``open_file_descriptor_count``, ...), all gauges as ZooKeeper registers
them (ZooKeeper's few counters among them are gauges here, so no ``_total`` suffix changes their
names); ``quorum_size`` (1 for a standalone server); and the summaries ``fsynctime`` and
``snapshottime`` in milliseconds (``{quantile="0.5"}``, ``_count``, ``_sum``), timed around the
log's sync and the snapshot writes, once per group commit, not per request.
``metricsProvider.exportJvmInfo`` (default true) adds the Python process's ``process_*``,
``python_info`` and ``python_gc_*`` metrics, in the place of ZooKeeper's JVM ones.
"""

from __future__ import annotations

import functools
import time
from collections import deque

import structlog
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from zkpy import status as cluster
from zkpy.runtime import fourletter
from zkpy.runtime.admin import HttpRequest, HttpResponse, HttpServer, text_response

log = structlog.get_logger("zkpy.metrics")

SUMMARY_WINDOW = 1024
SUMMARY_PREFIXES = frozenset(("avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999"))


class DurationSummary:
    """A BASIC ZooKeeper summary: count, sum and the median of the last ``SUMMARY_WINDOW``."""

    def __init__(self, window: int = SUMMARY_WINDOW) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.count = 0
        self.total_ms = 0.0

    def observe(self, duration_ms: float) -> None:
        self.samples.append(duration_ms)
        self.count += 1
        self.total_ms += duration_ms

    def median(self) -> float:
        samples = sorted(self.samples)
        return samples[len(samples) // 2] if samples else 0.0


def _timed(function, summary: DurationSummary):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            summary.observe((time.perf_counter() - started) * 1000.0)
    return timed


class ServerCollector(Collector):
    """Reads a ``Server`` at scrape time."""

    STRING_ROWS = frozenset(("version", "server_state"))

    def __init__(self, server, fsync: DurationSummary, snapshot: DurationSummary) -> None:
        self.server = server
        self.fsync = fsync
        self.snapshot = snapshot

    def collect(self):
        server = self.server
        rows = cluster.parse_mntr(fourletter.COMMANDS["mntr"](server))
        own = {"fsynctime", "snapshottime"}
        # mntr flattens ZooKeeper's summaries into avg_/min_/max_/cnt_/sum_/pNN_ rows; Prometheus
        # gets them back as summaries, as ZooKeeper's provider exports them.
        summaries = {name[4:] for name in rows if name.startswith("cnt_")}
        for name, value in rows.items():
            if name in self.STRING_ROWS or not isinstance(value, (int, float)):
                continue
            prefix, _, base = name.partition("_")
            if base in summaries and prefix in SUMMARY_PREFIXES:
                continue
            yield GaugeMetricFamily(name, name, value=value)
        for base in sorted(summaries - own):
            family = SummaryMetricFamily(base, base, count_value=rows.get(f"cnt_{base}", 0),
                                         sum_value=rows.get(f"sum_{base}", 0))
            for prefix, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"),
                                     ("p999", "0.999")):
                value = rows.get(f"{prefix}_{base}")
                if isinstance(value, (int, float)):
                    family.add_sample(base, {"quantile": quantile}, value)
            yield family
        if "quorum_size" not in rows:
            voters = sum(1 for s in server.config.servers if s.role != "observer")
            yield GaugeMetricFamily("quorum_size", "quorum_size", value=voters or 1)
        for name, summary in (("fsynctime", self.fsync), ("snapshottime", self.snapshot)):
            family = SummaryMetricFamily(name, name, count_value=summary.count,
                                         sum_value=summary.total_ms)
            family.add_sample(name, {"quantile": "0.5"}, summary.median())
            yield family


class MetricsEndpoint:
    """``GET /metrics`` on its own port."""

    def __init__(self, server) -> None:
        self.server = server
        config = server.config
        self.fsync = DurationSummary()
        self.snapshot = DurationSummary()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(server, self.fsync, self.snapshot))
        if config.metrics_export_jvm_info:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.http = HttpServer("metrics", config.metrics_http_host, config.metrics_http_port,
                               self.handle)
        self._wrapped: list[str] = []

    async def start(self) -> None:
        await self.http.start()
        txn_log = self.server.txn_log
        # Instance attributes shadow the methods: the runtime looks them up on every batch.
        for name, summary in (("append", self.fsync), ("write_snapshot", self.snapshot)):
            setattr(txn_log, name, _timed(getattr(txn_log, name), summary))
            self._wrapped.append(name)
        log.info("Prometheus metrics served", address=self.http.host, port=self.http.port,
                 path="/metrics")

    async def close(self) -> None:
        txn_log = self.server.txn_log
        for name in self._wrapped:
            txn_log.__dict__.pop(name, None)
        self._wrapped.clear()
        await self.http.close()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path != "/metrics":
            return text_response(404, f"not found: {request.path} (metrics are at /metrics)\n")
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return HttpResponse(200, encoder(self.registry), content_type)
