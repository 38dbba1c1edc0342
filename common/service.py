"""What every scanhub HTTP service shares: its middleware stack, common routes, and serving."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from common.auth import Authenticator, auth_middleware, token_endpoint
from common.errors import json_errors
from common.metrics import METRICS, ServiceMetrics, metrics_route
from common.openapi import openapi_route
from common.settings import ServiceSettings


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


def serve(app: web.Application, settings: ServiceSettings, service: str) -> None:
    """Run `app` until SIGINT/SIGTERM: logging, uvloop when available, TLS when configured."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ssl_context = None
    if settings.tls_certificate:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context,
        access_log=None,
        print=lambda message: logging.getLogger(service).info(message),
    )
