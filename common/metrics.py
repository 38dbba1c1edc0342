"""Prometheus metrics for an aiohttp service: request counts and latency, plus live gauges."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from common.errors import Handler


class ServiceMetrics:
    """One registry per app, so several apps in one process (tests) never share counters."""

    def __init__(self, service: str):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "scanhub_http_requests",
            "HTTP requests by route and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "scanhub_http_request_seconds",
            "HTTP request latency by route",
            ["service", "method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
            registry=self.registry,
        )
        self.service = service
        self.gauges: dict[str, Gauge] = {}

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        if name not in self.gauges:
            self.gauges[name] = Gauge(name, documentation, list(labels), registry=self.registry)
        return self.gauges[name]

    def middleware(self):
        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as error:
                status = error.status
                raise
            finally:
                resource = request.match_info.route.resource
                route = resource.canonical if resource is not None else "unmatched"
                self.requests.labels(self.service, request.method, route, str(status)).inc()
                self.latency.labels(self.service, request.method, route).observe(
                    time.perf_counter() - started
                )

        return measure


METRICS = web.AppKey("metrics", ServiceMetrics)


def metrics_route(refresh: Callable[[web.Application], Awaitable[None]] | None = None) -> web.RouteDef:
    """GET /metrics; `refresh` updates live gauges (queue depth...) just before each scrape."""

    async def metrics(request: web.Request) -> web.Response:
        """Prometheus metrics of this service."""
        service_metrics = request.app[METRICS]
        if refresh is not None:
            await refresh(request.app)
        body = generate_latest(service_metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return web.get("/metrics", metrics)
