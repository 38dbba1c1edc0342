"""What every scanhub HTTP service shares: its middleware stack, common routes, and serving."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from common import tls
from common.auth import Authenticator, auth_middleware, token_endpoint
from common.connections import CONNECTION_LIMITS, ConnectionLimits, GuardedProtocol, connection_cap
from common.errors import ApiError, json_errors, json_response
from common.logs import configure_logging
from common.metrics import METRICS, ServiceMetrics, metrics_route
from common.openapi import openapi_route
from common.settings import ServiceSettings

API_PREFIX = "/api/"


def accept_trailing_slashes(app: web.Application) -> None:
    """Every API route also answers with a trailing slash (`/api/tiscale/v1/upload/`), as the
    same handler and token group. No redirect: an HTTP client does not send a POST body
    again after one. Call once all routes are added; the OpenAPI document leaves these out."""
    for route in list(app.router.routes()):
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        path = resource.canonical
        if path.startswith(API_PREFIX) and not path.endswith("/"):
            app.router.add_route(route.method, path + "/", route.handler)


def service_app(
    service: str,
    settings: ServiceSettings,
    refresh_gauges: Callable[[web.Application], Awaitable[None]],
) -> web.Application:
    """An app with metrics, JSON errors and token auth, serving the bearer-token endpoint,
    /metrics and /openapi.json; the caller adds its own routes."""
    authenticator = Authenticator(
        {"submit": settings.submit_tokens, "tasks": settings.tasks_tokens, "admin": settings.admin_tokens},
        settings.bearer_secret,
    )
    service_metrics = ServiceMetrics(service)
    app = web.Application(
        middlewares=[service_metrics.middleware(), json_errors, auth_middleware(authenticator)]
    )
    app[METRICS] = service_metrics
    app.add_routes(
        [
            token_endpoint(authenticator),
            metrics_route(refresh_gauges),
            openapi_route(f"scanhub {service.capitalize()} API"),
        ]
    )
    return app


def server_ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """HTTPS with the configured certificate, or one issued now (`SCANHUB_TLS=on`); None: HTTP."""
    if settings.tls_certificate is not None:
        return tls.server_context(settings.tls_certificate, settings.tls_key or settings.tls_certificate)
    if not settings.tls:
        return None
    names = settings.tls_names or [socket.gethostname()]
    files = tls.ensure_certificate(settings.tls_dir, names, settings.tls_ca_dir)
    logging.getLogger("scanhub.tls").info("serving HTTPS as %s (CA %s)", ", ".join(names), files.ca)
    return tls.server_context(files.certificate, files.key)


def serve(app: web.Application, settings: ServiceSettings, service: str) -> None:
    """Run `app` until SIGINT/SIGTERM: logging, uvloop when available, TLS when configured,
    and the connection limits of `common/connections.py`."""
    configure_logging(settings.log_level, settings.log_format)
    ssl_context = server_ssl_context(settings)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run_service(app, settings, ssl_context, logging.getLogger(service)))


class CannotListen(RuntimeError):
    """The service's address cannot be bound (in use, or not an address of this machine)."""


def cannot_listen(settings: ServiceSettings, error: OSError | None) -> CannotListen:
    """The error for an address this service cannot listen on, saying where and why."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    if error is None:
        reason = "another process took the port before this one listened"
    elif isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        reason = error.strerror or str(error)
    else:
        reason = os.strerror(error.errno)
    return CannotListen(f"cannot listen on {host}:{settings.port}: {reason}")


async def listen(
    app: web.Application, settings: ServiceSettings, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, asyncio.Server, ConnectionLimits]:
    """Start serving `app` on the configured address behind the connection limits.

    The address is bound before the app starts its resources (Redis clients, the sweeper,
    health checks): a port in use raises `CannotListen` with nothing to clean up; one taken
    between the bind and the listen raises it once they are cleaned up. Started first,
    a task among them could swallow the cancellation meant to stop it, and the process
    would hang without listening instead of exiting.
    """
    limits = ConnectionLimits(
        connection_cap(settings.max_connections),
        settings.header_timeout_seconds,
        settings.retry_after_seconds,
    )
    app[CONNECTION_LIMITS] = limits
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.keepalive_timeout_seconds)

    def protocol() -> GuardedProtocol:
        handler_factory = runner.server
        if handler_factory is None:
            raise RuntimeError("the app runner has no server")
        # TLS is started by the protocol itself, after it has seen that the client speaks it.
        return GuardedProtocol(handler_factory(), limits, ssl_context)

    try:
        server = await asyncio.get_running_loop().create_server(
            protocol, settings.host, settings.port, reuse_address=True, backlog=1024, start_serving=False
        )
    except OSError as error:
        raise cannot_listen(settings, error) from error
    try:
        await runner.setup()
        # Two services bound to the same port before either listens (both with SO_REUSEADDR):
        # the second to listen fails; asyncio raises, uvloop reports a socket of None.
        try:
            await server.start_serving()
        except OSError as error:
            raise cannot_listen(settings, error) from error
        if not server.sockets or not all(
            sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            for sock in server.sockets
        ):
            raise cannot_listen(settings, None)
    except BaseException:
        server.close()
        await runner.cleanup()
        raise
    return runner, server, limits


async def run_service(
    app: web.Application, settings: ServiceSettings, ssl_context: ssl.SSLContext | None, log: logging.Logger
) -> None:
    try:
        runner, server, limits = await listen(app, settings, ssl_context)
    except CannotListen as error:
        log.error("%s", error)
        raise SystemExit(1) from error
    loop = asyncio.get_running_loop()
    scheme = "https" if ssl_context else "http"
    log.info(
        "serving on %s://%s:%s (at most %d connections)",
        scheme,
        settings.host,
        settings.port,
        limits.max_connections,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        await runner.cleanup()


# Room for the form fields beside the file and for the multipart framing, on top of the
# file-size limit: what an upload body may be as a whole.
MULTIPART_OVERHEAD = 64 * 1024


def upload_body_limit(settings: ServiceSettings) -> int:
    """The largest upload body a service accepts: the file limit plus its form fields."""
    return settings.max_upload_bytes + 4 * settings.max_form_field_bytes + MULTIPART_OVERHEAD


def refuse_oversized_body(request: web.Request, limit: int, message: str) -> None:
    """413 at once when the declared Content-Length is over `limit` (streaming checks the rest)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, message)


def is_multipart(request: web.Request) -> bool:
    """Whether the body is declared multipart; reads the raw header, as aiohttp's
    `content_type` parses it with the (slow) email package."""
    return request.headers.get("Content-Type", "").lstrip().lower().startswith("multipart/")


def require_multipart(request: web.Request) -> None:
    if not is_multipart(request):
        raise ApiError(400, "send the file as multipart/form-data in a part named 'file'")


def spool_checks(spool_dir: Path, min_free_bytes: int) -> dict[str, Any]:
    """The health check of a spool directory: writable, with enough free space."""
    try:
        usage = shutil.disk_usage(spool_dir)
        writable = spool_dir.is_dir() and os.access(spool_dir, os.W_OK)
        usable = writable and usage.free >= min_free_bytes
        return {"spool": "ok" if usable else "not usable or full", "spool_free_bytes": usage.free}
    except OSError as error:
        return {"spool": f"unusable: {error}"}


def health_response(healthy: bool, checks: dict[str, Any], retry_after_seconds: int) -> web.Response:
    """`/health`'s answer: 200 when healthy, else 503 with Retry-After."""
    body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
    headers = None if healthy else {"Retry-After": str(retry_after_seconds)}
    return json_response(body, status=200 if healthy else 503, headers=headers)
