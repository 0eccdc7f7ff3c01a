"""Prometheus metrics, as ZooKeeper's PrometheusMetricsProvider exports them: ``GET /metrics``.

Enabled by ``metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider``;
served on ``metricsProvider.httpHost``:``metricsProvider.httpPort`` (default 0.0.0.0:7000) by
its own ``HttpEndpoint`` (``zkpy.runtime.http.endpoint``).

Values are read when Prometheus scrapes (a custom collector over the server), so serving
requests costs nothing more. Names are ZooKeeper's:

* gauges, one for every numeric row of the server's state that mntr prints
  (``fourletter.state_values`` and an ensemble member's rows: ``znode_count``, ``watch_count``,
  ``num_alive_connections``, ``outstanding_requests``, ``ephemerals_count``,
  ``packets_received``, ``packets_sent``, ``avg_latency``, ``min_latency``, ``max_latency``,
  ``uptime``, ``approximate_data_size``, ``global_sessions``, ``open_file_descriptor_count``,
  ...), all gauges as ZooKeeper registers them (its few counters among them are gauges here,
  so no ``_total`` suffix changes their names), and ``quorum_size`` (1 for a standalone
  server);
* summaries of the measured work (``zkpy.runtime.server_metrics``): ``fsynctime`` and
  ``snapshottime`` in milliseconds and ``sync_processor_batch_size`` in txns, each with
  ``{quantile="0.5"}`` over its recent observations, ``_count`` and ``_sum``.

``metricsProvider.exportJvmInfo`` (default true) adds the Python process's ``process_*``,
``python_info`` and ``python_gc_*`` metrics, in the place of ZooKeeper's JVM ones.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from zkpy.runtime import fourletter
from zkpy.runtime.http.endpoint import HttpEndpoint, Routes, text_response

log = structlog.get_logger("zkpy.metrics")

MEDIAN = 0.5


class ServerCollector(Collector):
    """Reads a server's state and its measured work at scrape time."""

    def __init__(self, server) -> None:
        self.server = server

    def collect(self):
        values = fourletter.state_values(self.server) + fourletter.ensemble_values(self.server)
        numeric = [(name, value) for name, value in values
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        for name, value in numeric:
            yield GaugeMetricFamily(name, name, value=value)
        if "quorum_size" not in dict(numeric):
            voters = sum(1 for s in self.server.config.servers if s.role != "observer")
            yield GaugeMetricFamily("quorum_size", "quorum_size", value=voters or 1)
        for name, summary in self.server.metrics.summaries():
            observed = summary.read()
            family = SummaryMetricFamily(name, name, count_value=observed.count,
                                         sum_value=observed.total)
            family.add_sample(name, {"quantile": str(MEDIAN)}, observed.quantile(MEDIAN))
            yield family


class MetricsHandler:
    """``GET /metrics``: the registry in the format the scraper asks for (Accept)."""

    def __init__(self, server) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(server))
        if server.config.metrics_export_jvm_info:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def add_routes(self, routes: Routes) -> None:
        routes.add("/metrics", self.metrics)

    async def metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})


async def not_metrics(request: web.BaseRequest) -> web.StreamResponse:
    return text_response(404, f"not found: {request.path} (metrics are at /metrics)\n")


async def start_metrics_endpoint(server) -> HttpEndpoint:
    """The metrics port, started; OSError when it cannot be bound."""
    config = server.config
    routes = Routes()
    MetricsHandler(server).add_routes(routes)
    routes.add_prefix("/", not_metrics)
    endpoint = HttpEndpoint("metrics", config.metrics_http_host, config.metrics_http_port, routes)
    await endpoint.start()
    log.info("Prometheus metrics served", address=endpoint.host, port=endpoint.port,
             path="/metrics")
    return endpoint
