"""What watches a server, wired to it at start-up: the AdminServer with the dashboard, and the
Prometheus endpoint, both reading the server's measurements of its work (``server.metrics``,
``zkpy.runtime.server_metrics``), which mntr reports whether or not any HTTP endpoint runs.

``start_monitoring(server)`` is the runtime's start-up hook (``Server.serve``). It starts what
the config asks for:

* the AdminServer (``admin.enableServer``, default true; ``admin.serverAddress``:
  ``admin.serverPort``, default 0.0.0.0:8080): ZooKeeper's commands
  (``zkpy.runtime.http.commands``) and the dashboard with its JSON API
  (``zkpy.runtime.http.dashboard``) on one endpoint. HTTPS as in ZooKeeper 3.8's Jetty
  AdminServer: ``admin.portUnification=true`` serves HTTP and HTTPS on the port,
  ``admin.forceHttps=true`` HTTPS only, both with the ``ssl.quorum.*`` key and trust stores;
* Prometheus metrics at ``/metrics`` (``zkpy.runtime.metrics``) on
  ``metricsProvider.httpHost``:``metricsProvider.httpPort`` when ``metricsProvider.className``
  is ZooKeeper's PrometheusMetricsProvider.

As in ZooKeeper, a server whose AdminServer or metrics port cannot be bound does not start (exit
code 4); neither does one whose AdminServer key or trust store cannot be read (ZooKeeper would
run without the AdminServer it was asked for; zkpy says so at start-up instead).
"""

from __future__ import annotations

import ssl

import structlog

from zkpy.runtime import tls
from zkpy.runtime.http.commands import AdminCommands
from zkpy.runtime.http.dashboard import Dashboard
from zkpy.runtime.http.endpoint import HttpEndpoint, Routes, TlsMode
from zkpy.runtime.metrics import start_metrics_endpoint

log = structlog.get_logger("zkpy.admin")

ERROR_STARTING_ADMIN_SERVER = 4  # ZooKeeper's ExitCode for the same failure


class StartFailure(Exception):
    """An endpoint the config asks for cannot start; says which and why."""

    def __init__(self, what: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"Unable to start {what}")
        self.what = what
        self.host = host
        self.port = port
        self.reason = reason


class HttpEndpoints:
    """What ``start_monitoring`` started; ``close()`` stops it all."""

    def __init__(self) -> None:
        self.admin: HttpEndpoint | None = None
        self.metrics: HttpEndpoint | None = None

    async def close(self) -> None:
        for endpoint in (self.admin, self.metrics):
            if endpoint is not None:
                await endpoint.close()


def admin_tls_mode(config) -> TlsMode:
    """ZooKeeper's JettyAdminServer: forceHttps wins over portUnification."""
    if config.admin_force_https:
        return TlsMode.HTTPS_ONLY
    if config.admin_port_unification:
        return TlsMode.UNIFIED
    return TlsMode.PLAIN


def _admin_tls_context(config) -> ssl.SSLContext | None:
    if admin_tls_mode(config) is TlsMode.PLAIN:
        return None
    context = tls.server_context(config.admin_tls)
    log.info("AdminServer key store loaded", key_store=config.admin_tls.keystore_location,
             trust_store=config.admin_tls.truststore_location)
    return context


async def start_admin_server(server) -> HttpEndpoint:
    """The AdminServer's endpoint with the commands and the dashboard, started."""
    config = server.config
    routes = Routes()
    AdminCommands(server).add_routes(routes)
    Dashboard(server).add_routes(routes)
    mode = admin_tls_mode(config)
    endpoint = HttpEndpoint("admin", config.admin_server_address, config.admin_server_port,
                            routes, _admin_tls_context(config), mode)
    await endpoint.start()
    log.info("AdminServer started", address=endpoint.host, port=endpoint.port,
             command_url="/commands", https=mode.value)
    return endpoint


async def _start_endpoints(server, endpoints: HttpEndpoints) -> None:
    config = server.config
    if config.admin_enable_server:
        try:
            endpoints.admin = await start_admin_server(server)
        except (OSError, tls.TlsError) as error:
            raise StartFailure("AdminServer", config.admin_server_address,
                               config.admin_server_port, _reason(error)) from error
    if config.prometheus_enabled:
        try:
            endpoints.metrics = await start_metrics_endpoint(server)
        except OSError as error:
            raise StartFailure("Prometheus metrics endpoint", config.metrics_http_host,
                               config.metrics_http_port, _reason(error)) from error


def _reason(error: Exception) -> str:
    return (error.strerror if isinstance(error, OSError) else None) or str(error)


async def start_monitoring(server) -> HttpEndpoints:
    """Start the server's HTTP endpoints (see the module docstring).

    When an endpoint cannot start, what did start is closed, the failure is logged and the
    server is stopped with exit code 4 (``server.exit_code``), as ZooKeeper exits when it
    cannot start the AdminServer it was asked for."""
    endpoints = HttpEndpoints()
    try:
        await _start_endpoints(server, endpoints)
    except StartFailure as failure:
        await endpoints.close()
        log.critical(f"Unable to start {failure.what}, exiting abnormally", address=failure.host,
                     port=failure.port, error=failure.reason)
        server.exit_code = ERROR_STARTING_ADMIN_SERVER
        server.stop()
        return HttpEndpoints()
    return endpoints
