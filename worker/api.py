"""The Worker API's app factory: its routes, health, metrics and shared resources.

The routes live by concern: `upload_api.py`, `submit_url.py`, `task_api.py`,
`license_api.py`, `rules_api.py`; what their handlers share is on the app under the keys
of `worker/keys.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from aiohttp import web

from common.auth import PUBLIC, token_group
from common.errors import ApiError, json_response
from common.metrics import METRICS
from common.service import accept_trailing_slashes, health_response, service_app, spool_checks
from common.status import cors_middleware, status_page_route
from worker import (
    fetch,
    license_api,
    outbound,
    outputs,
    rules_api,
    search_api,
    submit_url,
    task_api,
    upload_api,
)
from worker.admission import Admission
from worker.analysis import tools
from worker.celery_app import create_celery
from worker.keys import ADMISSION, DOWNLOADS, FETCH_SESSION, PUBLISHER, SETTINGS, STORE
from worker.publisher import JobPublisher, SendJobs
from worker.retention import remove_partial_uploads, run_sweeper
from worker.settings import WorkerSettings
from worker.store import THROUGHPUT_INTERVAL_SECONDS, Keys, TaskStore, connect_async
from worker.submission import API

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


def redis_unavailable(retry_after_seconds: int) -> Any:
    """Middleware: a request that needs the node's Redis while it is down gets 503 with
    Retry-After (the client sends it again), not a 500; nothing was accepted."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.warning("%s %s: Redis unavailable: %s", request.method, request.path, error)
            message = "the Worker's Redis is unavailable; try again"
            raise ApiError(503, message, {"Retry-After": str(retry_after_seconds)}) from None

    return middleware


async def health_report(app: web.Application) -> tuple[bool, dict[str, Any]]:
    settings, store = app[SETTINGS], app[STORE]
    checks: dict[str, Any] = {}
    try:
        await store.redis.ping()
        checks["redis"] = "ok"
        workers = await store.live_celery_workers()
        checks["celery"] = "ok" if workers else "no live Celery worker"
        checks["celery_workers"] = workers
        depth = await store.queue_depth()
        checks["queue_depth"] = depth
        checks["queue"] = "ok" if depth < settings.max_queue_depth else "overloaded"
        # Informational like the tools: whether an accepted task survives a Redis crash.
        checks["durability"] = await store.durability()
        # Informational: without an outputs worker, callbacks and Splunk events wait in the queue.
        checks["outputs_workers"] = await store.live_celery_workers("outputs")
    except Exception as error:
        checks["redis"] = f"unreachable: {error}"
    checks.update(spool_checks(settings.spool_dir, settings.min_free_spool_bytes))
    # A missing unpacking tool degrades reports (`unpack:tool-missing`) but not the node's health.
    checks["tools"] = tools.tool_checks()
    healthy = all(checks.get(name) == "ok" for name in ("redis", "celery", "queue", "spool"))
    return healthy, checks


@routes.get("/health")
@token_group(PUBLIC)
async def health(request: web.Request) -> web.Response:
    """200 when Redis, a Celery worker and the spool are usable and the queue has room, else 503."""
    healthy, checks = await health_report(request.app)
    return health_response(healthy, checks, request.app[SETTINGS].retry_after_seconds)


@routes.get("/api/worker/v1/status")
@token_group("tasks")
async def status(request: web.Request) -> web.Response:
    """This node at a glance, for its status page and `scanhub status`: health, queue,
    Celery workers, tasks finished, verdicts, and tasks done per minute (oldest first)."""
    healthy, checks = await health_report(request.app)
    store = request.app[STORE]
    body: dict[str, Any] = {"service": "worker", "healthy": healthy, "checks": checks}
    if checks.get("redis") == "ok":
        body.update(
            {
                "queue_depth": checks["queue_depth"],
                "celery_workers": len(checks["celery_workers"]),
                "tasks": await store.outcome_counts(),
                "verdicts": await store.verdict_counts(),
                "throughput": {
                    "interval_seconds": THROUGHPUT_INTERVAL_SECONDS,
                    "done": await store.throughput(),
                },
            }
        )
    return json_response(body)


async def refresh_gauges(app: web.Application) -> None:
    metrics, store = app[METRICS], app[STORE]
    metrics.gauge("scanhub_queue_depth", "Tasks waiting for analysis").set(await store.queue_depth())
    workers = await store.live_celery_workers()
    metrics.gauge("scanhub_celery_workers", "Celery workers with a live heartbeat").set(len(workers))
    outcomes = metrics.gauge("scanhub_tasks_finished", "Tasks finished on this node", ("status",))
    for outcome, count in (await store.outcome_counts()).items():
        outcomes.labels(outcome).set(count)
    verdicts = metrics.gauge(
        "scanhub_verdicts", "Tasks done on this node by the submitted file's classification", ("verdict",)
    )
    for verdict, count in (await store.verdict_counts()).items():
        verdicts.labels(verdict).set(count)
    metrics.stored_histogram(
        "scanhub_time_to_report_seconds", "Seconds from accepting a task to storing its report, done tasks"
    ).set(*await store.time_to_report())
    metrics.gauge("scanhub_downloads_in_progress", "submit-url downloads running").set(len(app[DOWNLOADS]))
    publisher = app[PUBLISHER]
    metrics.gauge("scanhub_analysis_jobs_sent", "Celery jobs sent by this API process").set(
        publisher.jobs_sent
    )
    metrics.gauge("scanhub_analysis_tasks_sent", "Tasks sent in those jobs").set(publisher.tasks_sent)
    analyzer_measures = {
        "runs": metrics.gauge("scanhub_analyzer_runs", "Files each analyzer ran on", ("analyzer",)),
        "seconds": metrics.gauge(
            "scanhub_analyzer_seconds", "Seconds each analyzer spent, all files together", ("analyzer",)
        ),
        "errors": metrics.gauge(
            "scanhub_analyzer_errors", "Files on which an analyzer failed", ("analyzer",)
        ),
        "limits": metrics.gauge(
            "scanhub_analyzer_limits", "Files on which an extractor hit an unpacking limit", ("analyzer",)
        ),
    }
    for analyzer, measures in (await store.analyzer_stats()).items():
        for measure, gauge in analyzer_measures.items():
            gauge.labels(analyzer).set(measures.get(measure, 0))
    deliveries = metrics.gauge(
        "scanhub_output_deliveries",
        "Output attempts by outcome (delivered, retried, failed, refused), all tasks together",
        ("output", "outcome"),
    )
    for (output, outcome), count in (await store.output_stats()).items():
        deliveries.labels(output, outcome).set(count)


def celery_sender(settings: WorkerSettings) -> SendJobs:
    """Sends one Celery job for some task ids (blocking; the publisher runs it in a thread)."""
    celery = create_celery(settings)

    def send(task_ids: list[int]) -> None:
        if len(task_ids) == 1:
            celery.send_task("scanhub.analyze", args=task_ids, queue=settings.celery_queue)
            return
        # The job's own limits cover every file in it; each file also has its own limit.
        celery.send_task(
            "scanhub.analyze_batch",
            args=[task_ids],
            queue=settings.celery_queue,
            soft_time_limit=settings.analysis_soft_time_limit_seconds * len(task_ids),
            time_limit=settings.analysis_time_limit_seconds * len(task_ids),
        )

    return send


def outputs_sender(
    settings: WorkerSettings, store: TaskStore, send: Callable[[int], None] | None
) -> Callable[[int], Awaitable[None]]:
    """For a task the API ends (failed): when it has outputs (a callback, Splunk), a
    `scanhub.queue_outputs` job to the outputs worker, which sends them."""
    if send is None:
        celery = create_celery(settings)

        def send(task_id: int) -> None:
            celery.send_task("scanhub.queue_outputs", args=[task_id], queue=settings.outputs_queue)

    async def on_end(task_id: int) -> None:
        text = await store.redis.hget(store.keys.task(task_id), "user_data")
        user_data = outputs.user_data_of(str(text) if text is not None else None)
        if outputs.planned_outputs(settings, user_data):
            await asyncio.to_thread(send, task_id)

    return on_end


def create_app(
    settings: WorkerSettings,
    *,
    redis_client: aioredis.Redis | None = None,
    send_jobs: SendJobs | None = None,
    send_outputs: Callable[[int], None] | None = None,
) -> web.Application:
    """The Worker API. Tests may pass a fake Redis client and job senders of their own."""
    app = service_app("worker", settings, refresh_gauges)
    app.middlewares.append(redis_unavailable(settings.retry_after_seconds))  # inside json_errors
    if settings.cors_origins:  # outermost: a preflight carries no token
        app.middlewares.insert(0, cors_middleware(settings.cors_origins, f"{API}/task/"))
    app[SETTINGS] = settings
    for module in (upload_api, submit_url, task_api, license_api, rules_api, search_api):
        app.add_routes(module.routes)
    app.add_routes(routes)
    app.add_routes([status_page_route("worker")])
    accept_trailing_slashes(app)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        remove_partial_uploads(settings.spool_dir)
        client = redis_client or connect_async(settings.redis_url)
        app[STORE] = TaskStore(client, Keys(settings.key_prefix), settings.retention())
        app[STORE].on_end = outputs_sender(settings, app[STORE], send_outputs)
        app[ADMISSION] = Admission(
            app[STORE].queue_depth,
            settings.spool_dir,
            max_queue_depth=settings.max_queue_depth,
            min_free_spool_bytes=settings.min_free_spool_bytes,
            retry_after_seconds=settings.retry_after_seconds,
        )
        app[PUBLISHER] = JobPublisher(send_jobs or celery_sender(settings), settings.max_job_batch)
        networks = outbound.parse_networks(settings.outbound_allowed_networks)
        app[FETCH_SESSION] = fetch.download_session(networks, settings.download_limits())
        app[DOWNLOADS] = set()
        stop_sweeper = asyncio.Event()
        sweeper = asyncio.create_task(
            run_sweeper(app[STORE], settings, stop_sweeper, republish=app[PUBLISHER].publish)
        )
        yield
        stop_sweeper.set()
        running = app[DOWNLOADS]
        downloads = list(running)
        for download in downloads:
            download.cancel()
        await asyncio.gather(sweeper, *downloads, return_exceptions=True)
        await app[FETCH_SESSION].close()
        await app[PUBLISHER].close()
        if redis_client is None:
            await client.aclose()

    app.cleanup_ctx.append(resources)
    return app
