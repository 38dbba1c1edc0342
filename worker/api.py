"""The Worker API (spec: worker-api.txt): upload, task info, list, delete, health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from common import reports
from common.auth import token_group
from common.errors import ApiError, json_response
from common.metrics import METRICS
from common.service import service_app
from common.settings import WorkerSettings
from common.store import QUEUED, Keys, TaskStore, normalize_filter_token, task_view
from worker import fetch, license_api, rules_api, spool
from worker.analysis import tools
from worker.publisher import JobPublisher, SendJobs
from worker.retention import run_sweeper

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

SETTINGS = web.AppKey("settings", WorkerSettings)
STORE = web.AppKey("store", TaskStore)
PUBLISHER = web.AppKey("publisher", JobPublisher)
FETCH_SESSION = web.AppKey("fetch_session", aiohttp.ClientSession)
DOWNLOADS = web.AppKey("downloads", set)

API = "/api/tiscale/v1"
INTEGRITY_ERROR = (
    "ERROR: Upload: failed to accept upload integrity check failed, "
    "calculated hash {calculated} differs from the one passed in custom data {expected}."
)
MAX_FORWARDED_HOPS = 32


def parse_task_id(request: web.Request) -> int:
    text = request.match_info["task_id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(400, f"task id must be a positive integer, not {text[:40]!r}")
    return int(text)


def parse_age(request: web.Request, required: bool) -> int | None:
    text = request.query.get("age")
    if text is None or text == "":
        if required:
            raise ApiError(400, "the 'age' parameter (seconds) is required; age=0 deletes all")
        return None
    if not (text.isascii() and text.isdigit()):
        raise ApiError(400, f"'age' must be a non-negative integer number of seconds, not {text[:40]!r}")
    return int(text)


def parse_json_field(name: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"'{name}' is not valid JSON: {error}") from None


def forwarded_chain(request: web.Request) -> list[str]:
    """The X-Forwarded-For chain as sent (original sender first), bounded in size."""
    hops: list[str] = []
    for header in request.headers.getall("X-Forwarded-For", []):
        hops.extend(hop.strip()[:64] for hop in header.split(",") if hop.strip())
    return hops[:MAX_FORWARDED_HOPS]


async def read_small_field(part: BodyPartReader, limit: int) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"form field '{part.name}' is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


def task_url(request: web.Request, settings: WorkerSettings, task_id: int) -> str:
    base = settings.public_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}{API}/task/{task_id}"


class Admission:
    """Refuses new submissions (503) while the queue is at its limit or the spool disk is full.

    The queue depth and free space are read at most every `max_age` seconds instead of on
    every upload; each submission admitted in between counts towards the depth, so the
    estimate can only err high (refusing a little early, never late) until the next read.
    """

    def __init__(self, store: TaskStore, settings: WorkerSettings, max_age: float = 0.25):
        self.store, self.settings, self.max_age = store, settings, max_age
        self.read_at = float("-inf")
        self.depth = 0
        self.free = 0

    async def check(self) -> None:
        settings = self.settings
        if time.monotonic() - self.read_at > self.max_age:
            self.depth = await self.store.queue_depth()
            self.free = shutil.disk_usage(settings.spool_dir).free
            self.read_at = time.monotonic()
        retry_after = {"Retry-After": str(settings.retry_after_seconds)}
        if self.depth >= settings.max_queue_depth:
            message = (
                f"the Worker is overloaded: {self.depth} tasks are queued (limit {settings.max_queue_depth})"
            )
            raise ApiError(503, message, retry_after)
        if self.free < settings.min_free_spool_bytes:
            raise ApiError(503, "the Worker's spool disk is full", retry_after)

    def admitted(self) -> None:
        self.depth += 1


ADMISSION = web.AppKey("admission", Admission)


@routes.post(f"{API}/upload")
@token_group("submit")
async def upload(request: web.Request) -> web.Response:
    """Upload a file (multipart `file`, optional `custom_data`, `user_data`); answers its task_url."""
    settings, store = request.app[SETTINGS], request.app[STORE]
    # The raw header: aiohttp's content_type parses it with the (slow) email package.
    if not request.headers.get("Content-Type", "").lstrip().lower().startswith("multipart/"):
        raise ApiError(400, "send the file as multipart/form-data in a part named 'file'")
    overhead = 4 * settings.max_form_field_bytes + 64 * 1024
    if request.content_length and request.content_length > settings.max_upload_bytes + overhead:
        raise ApiError(413, f"the upload is larger than the limit of {settings.max_upload_bytes} bytes")
    await request.app[ADMISSION].check()

    spooled: spool.SpooledFile | None = None
    fields: dict[str, str] = {}
    file_name = ""
    try:
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise ApiError(400, "nested multipart bodies are not accepted")
                if part.name == "file":
                    if spooled is not None:
                        raise ApiError(400, "send exactly one 'file' part per upload")
                    file_name = (part.filename or "")[:1024]
                    spooled = await spool.receive(part, settings.spool_dir, settings.max_upload_bytes)
                else:
                    text = await read_small_field(part, settings.max_form_field_bytes)
                    if part.name in ("custom_data", "user_data"):
                        fields[part.name] = text
        except (ValueError, AssertionError, HttpProcessingError) as error:
            raise ApiError(400, f"malformed multipart body: {error}") from None
        if spooled is None:
            raise ApiError(400, "the upload has no 'file' part")
        custom_data = parse_json_field("custom_data", fields.get("custom_data"))
        user_data = parse_json_field("user_data", fields.get("user_data"))
        if user_data is not None and not isinstance(user_data, dict):
            raise ApiError(400, "'user_data' must be a JSON object")
        expected = custom_data.get("integrity_check_hash") if isinstance(custom_data, dict) else None
        if expected is not None and str(expected).lower() != spooled.digests["sha1"]:
            raise ApiError(400, INTEGRITY_ERROR.format(calculated=spooled.digests["sha1"], expected=expected))

        task_id = await store.create(
            int(time.time()),
            **submission_fields(request, fields.get("custom_data"), fields.get("user_data")),
            file_name=file_name,
            size=spooled.size,
            **spooled.digests,
        )
        request.app[ADMISSION].admitted()
        spooled.path.rename(spool.task_spool_path(settings.spool_dir, task_id))
        spooled = None
    except BaseException:
        if spooled is not None:
            spooled.discard()
        raise
    await publish(request.app, task_id)
    log.info("task %s accepted: %r from %s", task_id, file_name, request.remote)
    return json_response({"task_url": task_url(request, settings, task_id)})


def submission_fields(request: web.Request, custom_data: str | None, user_data: str | None) -> dict[str, Any]:
    """What every new task records about who sent it and what they attached."""
    return {
        "token": normalize_filter_token(request.headers.get("X-TiScale-Token")),
        "custom_data": custom_data,
        "user_data": user_data,
        "direct_sender": request.remote or "",
        "forwarded_for": forwarded_chain(request),
    }


HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")


def json_text(name: str, value: Any) -> str | None:
    """custom_data / user_data given inside a JSON body: an object, or a JSON string."""
    if value is None:
        return None
    if isinstance(value, str):
        parse_json_field(name, value)
        return value
    return orjson.dumps(value).decode()


def expected_digest(value: Any) -> tuple[str, str] | None:
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    if len(text) not in HASH_LENGTHS or any(c not in "0123456789abcdef" for c in text):
        raise ApiError(400, "'hash' must be a hex MD5, SHA1, SHA256 or SHA512 digest")
    return HASH_LENGTHS[len(text)], text


def custom_headers(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or len(value) > 8:
        raise ApiError(400, "'custom_header_authorization' must be an object of at most 8 headers")
    headers = {}
    for name, header_value in value.items():
        text = str(header_value)
        if not HEADER_NAME.fullmatch(str(name)) or "\r" in text or "\n" in text or len(text) > 4096:
            raise ApiError(400, f"'custom_header_authorization' has an invalid header {str(name)[:40]!r}")
        if str(name).lower() in ("host", "content-length", "transfer-encoding", "connection"):
            raise ApiError(400, f"header {name!r} cannot be set")
        headers[str(name)] = text
    return headers


async def read_json_body(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes")
    data = bytearray()
    while chunk := await request.content.read(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiError(400, 'send a JSON body: {"url": "https://..."}') from None


@routes.post(f"{API}/submit-url")
@token_group("submit")
async def submit_url(request: web.Request) -> web.Response:
    """Accept a URL now, download it in the background, then analyze it like an upload.

    Unusable URLs (bad scheme, non-public target, unresolvable host) get 400 at once; a
    download that fails later (refused redirect, HTTP error, size, hash mismatch) fails the
    task with the reason in `error`.
    """
    settings, store = request.app[SETTINGS], request.app[STORE]
    await request.app[ADMISSION].check()
    body = await read_json_body(request, 4 * settings.max_form_field_bytes)
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        raise ApiError(400, "the JSON body needs a 'url' string")
    networks = fetch.parse_networks(settings.submit_url_allowed_networks)
    try:
        target = fetch.check_url(body["url"], networks)
        await fetch.check_resolves_publicly(target, networks)
    except ValueError as error:
        raise ApiError(400, f"the URL cannot be submitted: {error}") from None
    custom_data = json_text("custom_data", body.get("custom_data"))
    user_data = json_text("user_data", body.get("user_data"))
    if user_data is not None and not isinstance(orjson.loads(user_data), dict):
        raise ApiError(400, "'user_data' must be a JSON object")
    digest = expected_digest(body.get("hash"))
    headers = custom_headers(
        body.get("custom_header_authorization") or body.get("custom_authorization_header")
    )
    task_id = await store.create(
        int(time.time()),
        **submission_fields(request, custom_data, user_data),
        file_name=(target.name or target.host or "")[:1024],
        source_url=body["url"],
    )
    request.app[ADMISSION].admitted()
    download = asyncio.create_task(download_and_queue(request.app, task_id, body["url"], headers, digest))
    request.app[DOWNLOADS].add(download)
    download.add_done_callback(request.app[DOWNLOADS].discard)
    log.info("task %s accepted for URL %s from %s", task_id, target.with_query(None), request.remote)
    return json_response({"task_url": task_url(request, settings, task_id)})


async def download_and_queue(
    app: web.Application, task_id: int, url: str, headers: dict[str, str], digest: tuple[str, str] | None
) -> None:
    """Download, verify, then queue one submit-url task; whatever goes wrong fails the task
    and leaves no file behind, rather than a record queued until the sweeper cancels it."""
    settings, store = app[SETTINGS], app[STORE]
    networks = fetch.parse_networks(settings.submit_url_allowed_networks)
    spooled: spool.SpooledFile | None = None
    try:
        spooled = await fetch.fetch_to_spool(
            app[FETCH_SESSION],
            url,
            headers,
            settings.spool_dir,
            settings.max_upload_bytes,
            settings.submit_url_max_redirects,
            networks,
        )
        if digest is not None and spooled.digests[digest[0]] != digest[1]:
            calculated = spooled.digests[digest[0]]
            raise fetch.FetchError(
                f"integrity check failed: {digest[0]} {calculated} differs from {digest[1]}"
            )
        if not await store.update(task_id, {"size": spooled.size, **spooled.digests}, only_if=QUEUED):
            return  # deleted or canceled while downloading
        spooled.path.rename(spool.task_spool_path(settings.spool_dir, task_id))
        spooled = None
    except fetch.FetchError as error:
        log.info("task %s: download of %s failed: %s", task_id, url, error)
        await store.fail(task_id, f"download failed: {error}", int(time.time()))
        return
    except asyncio.CancelledError:
        await store.fail(task_id, "download interrupted: the Worker API stopped", int(time.time()))
        raise
    except Exception as error:
        log.exception("task %s: submit-url failed", task_id)
        with contextlib.suppress(Exception):
            await store.fail(task_id, f"internal error: {type(error).__name__}: {error}", int(time.time()))
        return
    finally:
        if spooled is not None:
            spooled.discard()
    with contextlib.suppress(ApiError):  # publish() has already failed the task
        await publish(app, task_id)


async def publish(app: web.Application, task_id: int) -> None:
    """Queue the analysis job; if the broker refuses, fail the task rather than lose it."""
    settings = app[SETTINGS]
    try:
        await app[PUBLISHER].publish(task_id)
    except Exception as error:
        log.exception("task %s could not be queued", task_id)
        await app[STORE].fail(task_id, f"could not be queued: {error}", int(time.time()))
        spool.discard(spool.task_spool_path(settings.spool_dir, task_id))
        raise ApiError(503, "the analysis queue is unavailable; try again", {"Retry-After": "5"}) from None


@routes.get(f"{API}/task")
@token_group("tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """List tasks, optionally older than `age` seconds and/or tagged with `token`."""
    age = parse_age(request, required=False)
    max_submitted = time.time() - age if age is not None else float("inf")
    entries = await request.app[STORE].list_tasks(max_submitted, request.query.get("token"))
    return json_response(entries)


@routes.get(f"{API}/task/{{task_id}}")
@token_group("tasks")
async def get_task(request: web.Request) -> web.Response:
    """One task: status, timestamps, who analyzed it, and its report once processed."""
    task_id = parse_task_id(request)
    report_types = reports.site_report_types(request.app[SETTINGS].report_types_file)
    try:
        options = reports.parse_options(request.query, report_types)
    except reports.ReportOptionError as error:
        raise ApiError(400, str(error)) from None
    fields = await request.app[STORE].get(task_id)
    if fields is None:
        raise ApiError(404, f"task {task_id} does not exist or has expired")
    view = task_view(fields)
    if isinstance(view.get("tc_report"), list):
        view["tc_report"] = reports.shape_report(view["tc_report"], options, report_types)
    return json_response(view)


async def delete_and_clean(app: web.Application, task_ids: list[int]) -> dict[int, str]:
    deleted = await app[STORE].delete(task_ids)
    spool_dir = app[SETTINGS].spool_dir
    for task_id in deleted:
        # A queued task's file would otherwise wait for the sweeper; an analyzing one is
        # removed by its analysis process when it notices the record is gone.
        spool.discard(spool.task_spool_path(spool_dir, task_id))
    return deleted


@routes.delete(f"{API}/task/{{task_id}}")
@token_group("tasks")
async def delete_task(request: web.Request) -> web.Response:
    """Delete one task record (and its file if it was not analyzed yet)."""
    task_id = parse_task_id(request)
    if not await delete_and_clean(request.app, [task_id]):
        raise ApiError(404, f"task {task_id} does not exist or has expired")
    log.info("task %s deleted by %s", task_id, request.remote)
    return web.Response(status=200)


@routes.delete(f"{API}/task")
@token_group("tasks")
async def delete_tasks(request: web.Request) -> web.Response:
    """Delete every task submitted more than `age` seconds ago; `age=0` deletes all."""
    age = parse_age(request, required=True)
    assert age is not None
    store = request.app[STORE]
    task_ids = await store.ids_submitted_before(time.time() - age)
    deleted = await delete_and_clean(request.app, task_ids)
    log.info("bulk delete (age=%s) removed %d task(s)", age, len(deleted))
    return web.Response(status=200)


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
    except Exception as error:
        checks["redis"] = f"unreachable: {error}"
    try:
        usage = shutil.disk_usage(settings.spool_dir)
        writable = settings.spool_dir.is_dir() and os.access(settings.spool_dir, os.W_OK)
        checks["spool"] = (
            "ok" if writable and usage.free >= settings.min_free_spool_bytes else "not usable or full"
        )
        checks["spool_free_bytes"] = usage.free
    except OSError as error:
        checks["spool"] = f"unusable: {error}"
    # A missing unpacking tool degrades reports (`unpack:tool-missing`) but not the node's health.
    checks["tools"] = tools.tool_checks()
    healthy = all(checks.get(name) == "ok" for name in ("redis", "celery", "queue", "spool"))
    return healthy, checks


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """200 when Redis, a Celery worker and the spool are usable and the queue has room, else 503."""
    healthy, checks = await health_report(request.app)
    body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
    headers = None if healthy else {"Retry-After": str(request.app[SETTINGS].retry_after_seconds)}
    return json_response(body, status=200 if healthy else 503, headers=headers)


async def refresh_gauges(app: web.Application) -> None:
    metrics, store = app[METRICS], app[STORE]
    metrics.gauge("scanhub_queue_depth", "Tasks waiting for analysis").set(await store.queue_depth())
    workers = await store.live_celery_workers()
    metrics.gauge("scanhub_celery_workers", "Celery workers with a live heartbeat").set(len(workers))
    outcomes = metrics.gauge("scanhub_tasks_finished", "Tasks finished on this node", ("status",))
    for status, count in (await store.outcome_counts()).items():
        outcomes.labels(status).set(count)
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


def celery_sender(settings: WorkerSettings) -> SendJobs:
    """Sends one Celery job for some task ids (blocking; the publisher runs it in a thread)."""
    from worker.celery_app import create_celery

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


def create_app(
    settings: WorkerSettings,
    *,
    redis_client: aioredis.Redis | None = None,
    send_jobs: SendJobs | None = None,
) -> web.Application:
    """The Worker API. Tests may pass a fake Redis client and a job sender of their own."""
    app = service_app("worker", settings, refresh_gauges)
    app[SETTINGS] = settings
    app.add_routes(routes)
    app.add_routes(license_api.routes)
    app.add_routes(rules_api.routes)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        client = redis_client or aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        app[STORE] = TaskStore(client, Keys(settings.key_prefix), settings.retention())
        app[ADMISSION] = Admission(app[STORE], settings)
        app[PUBLISHER] = JobPublisher(send_jobs or celery_sender(settings), settings.max_job_batch)
        networks = fetch.parse_networks(settings.submit_url_allowed_networks)
        app[FETCH_SESSION] = fetch.guarded_session(networks, settings.submit_url_timeout_seconds)
        app[DOWNLOADS] = set()
        stop_sweeper = asyncio.Event()
        sweeper = asyncio.create_task(run_sweeper(app[STORE], settings, stop_sweeper))
        yield
        stop_sweeper.set()
        for download in list(app[DOWNLOADS]):
            download.cancel()
        await asyncio.gather(sweeper, *app[DOWNLOADS], return_exceptions=True)
        await app[FETCH_SESSION].close()
        await app[PUBLISHER].close()
        if redis_client is None:
            await client.aclose()

    app.cleanup_ctx.append(resources)
    return app
