"""What every new task shares, however its file arrives (upload or submit-url).

Who sent it and what they attached (`submission_fields`), the URL its submitter polls
(`task_url`), and queueing its analysis job (`publish`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import web

from common.errors import ApiError
from worker import outputs, spool
from worker.keys import PUBLISHER, SETTINGS, STORE
from worker.settings import WorkerSettings
from worker.store import normalize_filter_token

log = logging.getLogger(__name__)

API = "/api/tiscale/v1"
MAX_FORWARDED_HOPS = 32


def parse_json_field(name: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"'{name}' is not valid JSON: {error}") from None


def custom_data_text(text: str | None) -> str | None:
    """`custom_data` as it will be stored: the client's text when it is valid JSON, else
    nothing. The spec says custom_data that is not valid JSON is left out of the report,
    not refused: the file is still analyzed."""
    if text is None:
        return None
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        log.info("custom_data is not valid JSON and is left out of the report")
        return None
    return text


def check_user_data(settings: WorkerSettings, user_data: Any) -> None:
    """400 for a `user_data` the node cannot act on (not an object, a malformed callback)."""
    if user_data is None:
        return
    if not isinstance(user_data, dict):
        raise ApiError(400, "'user_data' must be a JSON object")
    try:
        outputs.callback_options(user_data, settings.report_types())
    except ValueError as error:
        raise ApiError(400, str(error)) from None


def readable(text: str, limit: int) -> str:
    """Client text as valid UTF-8, at most `limit` characters. HTTP headers and multipart
    filenames are bytes: aiohttp keeps what is not UTF-8 as surrogates, which no JSON
    encoder accepts; such bytes become U+FFFD, as a user reading the report expects."""
    return text[:limit].encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def forwarded_chain(request: web.Request) -> list[str]:
    """The X-Forwarded-For chain as sent (original sender first), bounded in size."""
    hops: list[str] = []
    for header in request.headers.getall("X-Forwarded-For", []):
        hops.extend(readable(hop.strip(), 64) for hop in header.split(",") if hop.strip())
    return hops[:MAX_FORWARDED_HOPS]


def submission_fields(request: web.Request, custom_data: str | None, user_data: str | None) -> dict[str, Any]:
    """What every new task records about who sent it and what they attached, and when it was
    accepted, to the millisecond (for the time-to-report histogram)."""
    return {
        "accepted": f"{time.time():.3f}",
        "token": readable(normalize_filter_token(request.headers.get("X-TiScale-Token")), 256),
        "custom_data": custom_data,
        "user_data": user_data,
        "direct_sender": request.remote or "",
        "forwarded_for": forwarded_chain(request),
    }


def task_url(request: web.Request, settings: WorkerSettings, task_id: int) -> str:
    base = settings.public_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}{API}/task/{task_id}"


async def publish(app: web.Application, task_id: int) -> None:
    """Queue the analysis job; if the broker refuses, fail the task rather than lose it."""
    settings = app[SETTINGS]
    try:
        await app[PUBLISHER].publish(task_id)
    except Exception as error:
        log.exception("task %s could not be queued", task_id)
        await app[STORE].fail(task_id, f"could not be queued: {error}", int(time.time()))
        spool.discard(spool.task_spool_path(settings.spool_dir, task_id))
        raise ApiError(
            503,
            "the analysis queue is unavailable; try again",
            {"Retry-After": str(settings.retry_after_seconds)},
        ) from None
