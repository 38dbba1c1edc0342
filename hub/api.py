"""The Hub API: takes Worker-API submissions, forwards them round-robin, and reports on its Workers.

Reports never come from the Hub (spec: "Analysis reports cannot be obtained from a Hub"):
uploads answer with the Worker's own `task_url`, and the client asks that Worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from common import tls
from common.auth import PUBLIC, token_group
from common.errors import ApiError, json_response
from common.metrics import METRICS
from common.service import (
    accept_trailing_slashes,
    health_response,
    require_multipart,
    service_app,
    spool_checks,
    upload_body_limit,
)
from common.status import status_page_route
from hub import search
from hub.forward import MemoryBudget, forward_submission
from hub.keys import BODY_MEMORY, POOL, SESSION, SETTINGS
from hub.pool import Worker, WorkerPool, check_all, get_worker_json, run_health_checks
from hub.settings import HubSettings

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

API = "/api/tiscale/v1"
TASKS_LIVE_ON_WORKERS = (
    "the Hub does not serve tasks or reports: ask the Worker in the task_url your upload "
    "answered with (GET <task_url>)"
)


async def forward(request: web.Request, body_limit: int, too_large: str) -> web.Response:
    app = request.app
    return await forward_submission(
        request, app[SESSION], app[POOL], app[SETTINGS], body_limit, too_large, app[BODY_MEMORY]
    )


@routes.post(f"{API}/upload")
@token_group("submit")
async def upload(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    require_multipart(request)
    limit = upload_body_limit(settings)  # the same allowance for form fields as the Worker's
    too_large = f"the upload is larger than the limit of {settings.max_upload_bytes} bytes"
    return await forward(request, limit, too_large)


@routes.post(f"{API}/submit-url")
@token_group("submit")
async def submit_url(request: web.Request) -> web.Response:
    limit = 4 * request.app[SETTINGS].max_form_field_bytes
    return await forward(request, limit, f"the request body is larger than {limit} bytes")


@routes.route("*", f"{API}/task")
@routes.route("*", f"{API}/task/{{tail:.*}}")
async def tasks_live_on_workers(request: web.Request) -> web.Response:
    # 400 rather than 404: some clients poll on 404 ("not yet") and would never stop.
    raise ApiError(400, TASKS_LIVE_ON_WORKERS)


@routes.get("/api/hub/v1/workers")
@token_group("admin")
async def workers(request: web.Request) -> web.Response:
    return json_response({"workers": [worker.status() for worker in request.app[POOL].workers]})


@routes.get("/api/hub/v1/status")
@token_group("tasks")
async def status(request: web.Request) -> web.Response:
    """The cluster at a glance, for the status page and `scanhub status`: each Worker as the
    Hub sees it (in rotation, queue depth, forwarded, last error) with the status it reports
    itself (asked now, in parallel; null when it does not answer in the health-check time),
    and the sums over those reports: tasks done per minute (oldest first) and verdicts.

    The `tasks` group, not `admin` like `/api/hub/v1/workers`: whoever reads reports already
    learns the Workers' addresses from their task_urls."""
    app = request.app
    pool, session, settings = app[POOL], app[SESSION], app[SETTINGS]
    reports = await asyncio.gather(
        *(
            worker_status(
                session, worker.url, settings.worker_search_token(index), settings.health_timeout_seconds
            )
            for index, worker in enumerate(pool.workers)
        )
    )
    healthy, checks = health_report(app)
    body = {
        "service": "hub",
        "healthy": healthy,
        "checks": checks,
        "workers": [
            worker_entry(worker, report) for worker, report in zip(pool.workers, reports, strict=True)
        ],
        **cluster_totals([report for report in reports if report is not None]),
    }
    return json_response(body)


def worker_entry(worker: Worker, report: dict[str, Any] | None) -> dict[str, Any]:
    """A Worker as the Hub sees it, with its own report; the queue depth is the report's when
    there is one (just asked), else the last health check's."""
    entry = {**worker.status(), "status": report}
    if report is not None and isinstance(report.get("queue_depth"), int):
        entry["queue_depth"] = report["queue_depth"]
    return entry


async def worker_status(
    session: aiohttp.ClientSession, url: str, token: str | None, timeout: float
) -> dict[str, Any] | None:
    """A Worker's own `/api/worker/v1/status` (its `tasks` group: asked with the token the Hub
    searches with); None when it cannot be had."""
    try:
        body = await get_worker_json(
            session, f"{url}/api/worker/v1/status", token, timeout, content_type=None
        )
    except (aiohttp.ClientError, TimeoutError, ValueError, RuntimeError):
        return None
    return body if isinstance(body, dict) else None


def cluster_totals(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdicts and per-interval done counts summed over the Workers' status reports, the
    intervals aligned on the latest; a count that is not an integer is left out."""
    verdicts: dict[str, int] = {}
    done: list[int] = []
    interval = 60
    for report in reports:
        reported = report.get("verdicts")
        for verdict, count in reported.items() if isinstance(reported, dict) else ():
            if isinstance(count, int):
                verdicts[verdict] = verdicts.get(verdict, 0) + count
        throughput = report.get("throughput")
        if not isinstance(throughput, dict) or not isinstance(throughput.get("done"), list):
            continue
        interval = throughput.get("interval_seconds", interval)
        counts = [count if isinstance(count, int) else 0 for count in throughput["done"]]
        done = [0] * (len(counts) - len(done)) + done
        offset = len(done) - len(counts)
        for index, count in enumerate(counts):
            done[offset + index] += count
    return {"verdicts": verdicts, "throughput": {"interval_seconds": interval, "done": done}}


def health_report(app: web.Application) -> tuple[bool, dict[str, Any]]:
    settings, pool = app[SETTINGS], app[POOL]
    healthy = len(pool.healthy())
    checks: dict[str, Any] = {
        "workers": "ok" if healthy else "no healthy Worker",
        "workers_healthy": healthy,
        "workers_total": len(pool.workers),
    }
    checks.update(spool_checks(settings.spool_dir, settings.min_free_spool_bytes))
    return checks["workers"] == "ok" and checks["spool"] == "ok", checks


@routes.get("/health")
@token_group(PUBLIC)
async def health(request: web.Request) -> web.Response:
    healthy, checks = health_report(request.app)
    return health_response(healthy, checks, request.app[SETTINGS].retry_after_seconds)


async def refresh_gauges(app: web.Application) -> None:
    metrics = app[METRICS]
    healthy = metrics.gauge("scanhub_hub_worker_healthy", "1 while a Worker is in rotation", ("worker",))
    forwarded = metrics.gauge("scanhub_hub_tasks_forwarded", "Submissions a Worker accepted", ("worker",))
    depth = metrics.gauge("scanhub_hub_worker_queue_depth", "A Worker's queue at its last check", ("worker",))
    # Labelled by position in SCANHUB_WORKER_URLS, not by URL: the addresses are for the
    # admin-only /api/hub/v1/workers, and /metrics takes any token.
    for number, worker in enumerate(app[POOL].workers, start=1):
        label = str(number)
        healthy.labels(label).set(1 if worker.healthy else 0)
        forwarded.labels(label).set(worker.tasks_forwarded)
        depth.labels(label).set(worker.queue_depth or 0)


def remove_stale_bodies(settings: HubSettings) -> None:
    """Bodies left by a Hub that died mid-forward: their clients got an error, not a task_url."""
    for path in settings.spool_dir.glob("body-*"):
        path.unlink(missing_ok=True)


def create_app(settings: HubSettings) -> web.Application:
    app = service_app("hub", settings, refresh_gauges)
    app[SETTINGS] = settings
    app[BODY_MEMORY] = MemoryBudget(settings.memory_budget_bytes)
    app[POOL] = WorkerPool(
        [Worker(url, settings.worker_token(index)) for index, url in enumerate(settings.worker_urls)]
    )
    app.add_routes(routes)
    app.add_routes(search.routes)
    app.add_routes([status_page_route("hub")])
    accept_trailing_slashes(app)
    app.cleanup_ctx.append(resources)
    return app


async def resources(app: web.Application) -> AsyncIterator[None]:
    settings, pool = app[SETTINGS], app[POOL]
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_bodies(settings)
    ssl_context = tls.client_context(settings.worker_ca())
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=ssl_context))
    app[SESSION] = session
    # Serve with a first view of the Workers rather than refusing everything until the loop runs.
    await check_all(session, pool, settings.health_timeout_seconds)
    health_checks = asyncio.create_task(
        run_health_checks(session, pool, settings.health_interval_seconds, settings.health_timeout_seconds)
    )
    log.info("Hub in front of %d Worker(s): %s", len(pool.workers), ", ".join(settings.worker_urls))
    yield
    health_checks.cancel()
    await asyncio.gather(health_checks, return_exceptions=True)
    await session.close()
