"""The task routes: list, read (with report shaping), and delete tasks."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from common.auth import token_group
from common.errors import ApiError, json_response
from worker import reports, spool
from worker.keys import SETTINGS, STORE
from worker.submission import API

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
# Stored reports larger than this are decoded and shaped in a thread.
OFFLOAD_REPORT_BYTES = 256 * 1024


def parse_task_id(request: web.Request) -> int:
    text = request.match_info["task_id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(400, f"task id must be a positive integer, not {text[:40]!r}")
    return int(text)


# Ten digits of seconds is three centuries; anything longer is refused, not overflowed.
MAX_AGE_DIGITS = 10


def parse_age(request: web.Request) -> int | None:
    """The `age` query parameter in seconds, or None when it is absent."""
    text = request.query.get("age")
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_AGE_DIGITS:
        message = f"'age' must be a non-negative integer number of seconds (at most {MAX_AGE_DIGITS} digits)"
        raise ApiError(400, f"{message}, not {text[:40]!r}")
    return int(text)


@routes.get(f"{API}/task")
@token_group("tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """List tasks, optionally older than `age` seconds and/or tagged with `token`."""
    age = parse_age(request)
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
    if len(fields.get("tc_report", "")) > OFFLOAD_REPORT_BYTES:
        # Decoding, shaping and encoding a large report takes a while: not on the event loop,
        # which must keep answering uploads and the Hub's health checks meanwhile.
        body = await asyncio.to_thread(reports.render_task, fields, options, report_types)
    else:
        body = reports.render_task(fields, options, report_types)
    return web.Response(body=body, content_type="application/json")


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
    log.info("task %s deleted by %s", task_id, request.remote, extra={"task_id": task_id})
    return web.Response(status=200)


@routes.delete(f"{API}/task")
@token_group("tasks")
async def delete_tasks(request: web.Request) -> web.Response:
    """Delete every task submitted more than `age` seconds ago; `age=0` deletes all."""
    age = parse_age(request)
    if age is None:
        raise ApiError(400, "the 'age' parameter (seconds) is required; age=0 deletes all")
    store = request.app[STORE]
    task_ids = await store.ids_submitted_before(time.time() - age)
    deleted = await delete_and_clean(request.app, task_ids)
    log.info("bulk delete (age=%s) removed %d task(s)", age, len(deleted))
    return web.Response(status=200)
