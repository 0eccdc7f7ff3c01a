"""One HTTP endpoint (the AdminServer's port, the metrics port) on the server's event loop.

aiohttp parses and writes HTTP/1.1 (its low-level ``web.Server``, which runs on uvloop); this
module adds what zkpy promises on top:

* limits: a request line and each header field of at most 16 KiB, at most 100 header fields, a
  complete request within ``IDLE_TIMEOUT_S`` of the connection opening or of the previous
  response (the same timeout closes idle keep-alive connections), a response written within
  ``WRITE_TIMEOUT_S``, at most ``MAX_CONNECTIONS`` connections served at once;
* GET and HEAD only: the endpoints take no request bodies, so a body announced over
  ``MAX_BODY_BYTES`` is refused (413) and a chunked one too (501) before any of it is read,
  other methods get 405 with ``Allow: GET, HEAD``, HTTP versions other than 1.0 and 1.1 get 505;
* bad requests answered 4xx (a header too large 431) on an HTTP/1.1 status line, the
  connection closed, and logged with the client's address;
* HTTPS (``TlsMode``): none, only, or unified with plain HTTP on one port
  (``zkpy.runtime.http.unified``); responses over HTTPS carry the Strict-Transport-Security
  header ZooKeeper's Jetty AdminServer sends.

Handlers are coroutines ``(request) -> web.StreamResponse`` found by path (``Routes``); they run
on the event loop between the server's turns, so they read the core without locks and must
stay short. A handler that raises answers 500 and is logged; the server carries on.
"""

from __future__ import annotations

import asyncio
import enum
import json
import ssl
from typing import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
# The message aiohttp hands its request factory in place of a request its parser rejected.
from aiohttp.web_protocol import ERROR as PARSE_ERROR_MESSAGE

from zkpy.runtime.http.unified import UnifiedListener

log = structlog.get_logger("zkpy.http")

MAX_REQUEST_LINE_BYTES = 16 * 1024
MAX_HEADER_FIELD_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 64 * 1024
IDLE_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 10.0
TLS_HANDSHAKE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
LISTEN_BACKLOG = 128
# What ZooKeeper's JettyAdminServer sets on its SecureRequestCustomizer: one day, subdomains.
STRICT_TRANSPORT_SECURITY = "max-age=86400; includeSubDomains"
ALLOWED_METHODS = ("GET", "HEAD")
SUPPORTED_VERSIONS = (HttpVersion10, HttpVersion11)
REQUESTED_VERSION = "zkpy.requested_http_version"  # set on requests in another HTTP version

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class TlsMode(enum.Enum):
    PLAIN = "plain"          # HTTP only
    HTTPS_ONLY = "https"     # admin.forceHttps
    UNIFIED = "unified"      # admin.portUnification: the first byte of a connection decides


# -- responses ----------------------------------------------------------------------------------

def json_response(document, status: int = 200, pretty: bool = False) -> web.Response:
    if pretty:  # Jackson's default pretty printer, as ZooKeeper's AdminServer answers
        text = json.dumps(document, indent=2, separators=(",", " : "), ensure_ascii=False)
    else:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return web.Response(body=text.encode(), status=status,
                        headers={"Content-Type": "application/json"})


def text_response(status: int, text: str,
                  content_type: str = "text/plain; charset=utf-8") -> web.Response:
    return web.Response(body=text.encode(), status=status, headers={"Content-Type": content_type})


def client_address(request: web.BaseRequest) -> str:
    """``host:port`` of the request's client, for logs."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return request.remote or "?"
    return f"{peer[0]}:{peer[1]}"


def add_zkpy_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """The headers every answer carries."""
    response.headers["Server"] = "zkpy"
    if request.secure:
        response.headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    # aiohttp leaves keep-alive implicit on HTTP/1.1; zkpy has always said it.
    if (request.version == HttpVersion11 and request.keep_alive
            and response.keep_alive is not False):
        response.headers["Connection"] = "keep-alive"


# -- routing ------------------------------------------------------------------------------------

class Routes:
    """Handlers by exact path and by path prefix (the longest prefix wins)."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []

    def add(self, path: str, handler: Handler) -> None:
        self._exact[path] = handler

    def add_prefix(self, prefix: str, handler: Handler) -> None:
        self._prefixes.append((prefix, handler))
        self._prefixes.sort(key=lambda entry: len(entry[0]), reverse=True)

    def find(self, path: str) -> Handler | None:
        handler = self._exact.get(path)
        if handler is not None:
            return handler
        return next((h for prefix, h in self._prefixes if path.startswith(prefix)), None)


async def not_found(request: web.BaseRequest) -> web.StreamResponse:
    return text_response(404, f"not found: {request.path}\n")


# -- aiohttp's connection handling, with zkpy's answers to what its parser rejects --------------

class _ConnectionHandler(web.RequestHandler):
    """One connection. aiohttp calls ``handle_error`` for a request its parser rejected."""

    def __init__(self, manager: web.Server, endpoint: "HttpEndpoint", **options) -> None:
        super().__init__(manager, **options)
        self.endpoint = endpoint

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("a response was under way; the connection is dropped")
        client = client_address(request)
        if isinstance(exc, HttpProcessingError):
            status, reason = _parse_error_answer(exc)
            log.warning("http: bad request", endpoint=self.endpoint.name, client=client,
                        status=status, reason=reason, detail=exc.message[:200])
        else:  # aiohttp's own failure around a handler (zkpy's handlers answer 500 themselves)
            reason = "internal server error"
            log.error("http: request failed", endpoint=self.endpoint.name, client=client,
                      status=status, error=repr(exc), detail=(message or "")[:200])
        response = text_response(status, reason + "\n")
        response.force_close()
        add_zkpy_headers(request, response)
        return response


def _parse_error_answer(error: HttpProcessingError) -> tuple[int, str]:
    """The status and reason for a request aiohttp's parser rejected. aiohttp's message is a
    title line and then the offending bytes; the answer names the title, the log has both."""
    if isinstance(error, LineTooLong):
        return 431, "request header too large"
    title = (error.message or "").split("\n", 1)[0].rstrip(": ")
    return error.code or 400, title or "bad request"


class _LowLevelServer(web.Server):
    """aiohttp's low-level server making zkpy's connection handlers."""

    def __init__(self, handler: Handler, endpoint: "HttpEndpoint") -> None:
        super().__init__(handler, request_factory=self._make_request)
        self.endpoint = endpoint

    def __call__(self) -> _ConnectionHandler:
        return _ConnectionHandler(
            self, self.endpoint, loop=asyncio.get_running_loop(), access_log=None,
            keepalive_timeout=IDLE_TIMEOUT_S, lingering_time=0,
            max_line_size=MAX_REQUEST_LINE_BYTES, max_field_size=MAX_HEADER_FIELD_BYTES,
            max_headers=MAX_HEADERS)

    @staticmethod
    def _make_request(message, payload, protocol, writer, task) -> web.BaseRequest:
        # Answers go out on the request's status line version. aiohttp answers a request it
        # could not parse on HTTP/1.0 and would echo a version it does not speak (HTTP/2.0);
        # zkpy answers both on HTTP/1.1, as it always has, and keeps the version asked for so
        # that the request is refused (505).
        state = {}
        if message is PARSE_ERROR_MESSAGE or message.version not in SUPPORTED_VERSIONS:
            if message is not PARSE_ERROR_MESSAGE:
                state[REQUESTED_VERSION] = message.version
            message = message._replace(version=HttpVersion11)
        return web.BaseRequest(message, payload, protocol, writer, task,
                               asyncio.get_running_loop(), client_max_size=MAX_BODY_BYTES,
                               state=state)


# -- the endpoint -------------------------------------------------------------------------------

class HttpEndpoint:
    """An HTTP(S) listener serving ``routes`` (see the module docstring)."""

    def __init__(self, name: str, host: str, port: int, routes: Routes,
                 tls_context: ssl.SSLContext | None = None, tls_mode: TlsMode = TlsMode.PLAIN,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        if (tls_mode is TlsMode.PLAIN) != (tls_context is None):
            raise ValueError("an HTTPS endpoint needs a TLS context, a plain one none")
        self.name = name
        self.host = host
        self.requested_port = port
        self.routes = routes
        self.tls_context = tls_context
        self.tls_mode = tls_mode
        self.max_connections = max_connections
        self._server: _LowLevelServer | None = None
        self._listener: asyncio.AbstractServer | UnifiedListener | None = None

    @property
    def port(self) -> int:
        if self._listener is None:
            return self.requested_port
        if isinstance(self._listener, UnifiedListener):
            return self._listener.port
        return self._listener.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = _LowLevelServer(self._handle, self)
        if self.tls_mode is TlsMode.UNIFIED:
            listener = UnifiedListener(self._server, self.tls_context, TLS_HANDSHAKE_TIMEOUT_S,
                                       IDLE_TIMEOUT_S, self.max_connections, self.name)
            await listener.start(self.host, self.requested_port, LISTEN_BACKLOG)
            self._listener = listener
            return
        https = self.tls_mode is TlsMode.HTTPS_ONLY
        self._listener = await asyncio.get_running_loop().create_server(
            self._server, self.host, self.requested_port, reuse_address=True,
            backlog=LISTEN_BACKLOG, ssl=self.tls_context if https else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if https else None)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            await self._server.shutdown(timeout=2.0)
        self._listener = None
        self._server = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        response = self._refusal(request) or await self._route(request)
        add_zkpy_headers(request, response)
        log.debug("http request", endpoint=self.name, client=client_address(request),
                  method=request.method, path=request.path, status=response.status)
        await self._send(request, response)
        return response

    def _refusal(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """The answer to a request the endpoint will not serve; None for one it will."""
        if self._server is not None and len(self._server.connections) > self.max_connections:
            log.warning("http: too many connections; refusing", endpoint=self.name,
                        client=client_address(request), limit=self.max_connections)
            return self._closing(text_response(503, "too many connections\n"))
        if REQUESTED_VERSION in request:
            return self._bad_request(request, 505, "unsupported HTTP version")
        if "Transfer-Encoding" in request.headers:
            return self._bad_request(request, 501, "chunked request bodies are not supported")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return self._bad_request(request, 413, "request body too large")
        if request.method not in ALLOWED_METHODS:
            log.warning("http: method not allowed", endpoint=self.name,
                        client=client_address(request), method=request.method,
                        path=request.path)
            response = text_response(
                405, f"HTTP method {request.method} is not supported by this URL\n")
            response.headers["Allow"] = ", ".join(ALLOWED_METHODS)
            return response
        return None

    def _bad_request(self, request: web.BaseRequest, status: int,
                     reason: str) -> web.StreamResponse:
        version = request.get(REQUESTED_VERSION, request.version)
        log.warning("http: bad request", endpoint=self.name, client=client_address(request),
                    status=status, reason=reason, request_line=(
                        f"{request.method} {request.raw_path} "
                        f"HTTP/{version.major}.{version.minor}")[:200])
        return self._closing(text_response(status, reason + "\n"))

    @staticmethod
    def _closing(response: web.StreamResponse) -> web.StreamResponse:
        response.force_close()
        return response

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        handler = self.routes.find(request.path) or not_found
        try:
            return await handler(request)
        except Exception:  # a bug in a handler must not take the server down
            log.exception("http: handler failed", endpoint=self.name,
                          client=client_address(request), path=request.path)
            return json_response({"error": "internal server error"}, 500)

    async def _send(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """Write the response within WRITE_TIMEOUT_S (aiohttp would wait on a client that does
        not read for as long as the connection lives); a client that does not take it in time
        is dropped. aiohttp's own finishing of the response then finds it sent."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await response.prepare(request)
                await response.write_eof()
        except TimeoutError:
            log.warning("http: client not reading its response; closing", endpoint=self.name,
                        client=client_address(request))
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # the client went away; aiohttp notes it when it finishes the response
