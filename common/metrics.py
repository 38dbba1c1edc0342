"""Prometheus metrics for an aiohttp service: request counts and latency, plus live gauges."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from common.errors import Handler


class StoredHistogram(Collector):
    """A Prometheus histogram exported from counts set as a whole: cumulative counts by upper
    bound ("+Inf" last) and the sum of the observations."""

    def __init__(self, name: str, documentation: str):
        self.name, self.documentation = name, documentation
        self.buckets: list[tuple[str, float]] = [("+Inf", 0)]
        self.sum = 0.0

    def set(self, buckets: Sequence[tuple[float, float]], total: float) -> None:
        """Cumulative counts by upper bound, infinity last, and the sum of the observations."""
        if not buckets or not math.isinf(buckets[-1][0]):
            raise ValueError("a histogram's last bucket is +Inf")
        # Bounds written as prometheus_client writes its own ("1.0", "+Inf").
        self.buckets = [(floatToGoString(bound), count) for bound, count in buckets]
        self.sum = total

    def collect(self) -> Iterable[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, buckets=self.buckets, sum_value=self.sum)


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
        self.histograms: dict[str, StoredHistogram] = {}

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        if name not in self.gauges:
            self.gauges[name] = Gauge(name, documentation, list(labels), registry=self.registry)
        return self.gauges[name]

    def stored_histogram(self, name: str, documentation: str) -> StoredHistogram:
        """A histogram whose counts are kept elsewhere (in Redis, by the Celery workers) and
        set from there before each scrape."""
        if name not in self.histograms:
            self.histograms[name] = StoredHistogram(name, documentation)
            self.registry.register(self.histograms[name])
        return self.histograms[name]

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
