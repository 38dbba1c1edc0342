"""POST /submit-url: a URL accepted at once, downloaded in the background, then queued.

The download itself (redirects, size limit) is `worker/fetch.py`'s, through the node's
outbound policy (`worker/outbound.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

import orjson
from aiohttp import web

from common.auth import token_group
from common.errors import ApiError, json_response
from common.logs import task_context
from common.streaming import timed_reads
from worker import fetch, outbound, spool
from worker.digests import DIGEST_BY_HEX_LENGTH
from worker.keys import ADMISSION, DOWNLOADS, FETCH_SESSION, SETTINGS, STORE
from worker.store import QUEUED
from worker.submission import (
    API,
    check_user_data,
    custom_data_text,
    parse_json_field,
    publish,
    submission_fields,
    task_url,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")


def json_text(name: str | None, value: Any) -> str | None:
    """custom_data / user_data given inside a JSON body: an object, or a JSON string (checked
    here when `name` is given)."""
    if value is None:
        return None
    if isinstance(value, str):
        if name is not None:
            parse_json_field(name, value)
        return value
    return orjson.dumps(value).decode()


def expected_digest(value: Any) -> tuple[str, str] | None:
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    if len(text) not in DIGEST_BY_HEX_LENGTH or any(c not in "0123456789abcdef" for c in text):
        raise ApiError(400, "'hash' must be a hex MD5, SHA1, SHA256 or SHA512 digest")
    return DIGEST_BY_HEX_LENGTH[len(text)], text


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


async def read_json_body(request: web.Request, limit: int, read_timeout: float) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes")
    data = bytearray()
    async for chunk in timed_reads(lambda: request.content.read(64 * 1024), read_timeout):
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
    body = await read_json_body(
        request, 4 * settings.max_form_field_bytes, settings.body_read_timeout_seconds
    )
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        raise ApiError(400, "the JSON body needs a 'url' string")
    networks = outbound.parse_networks(settings.outbound_allowed_networks)
    try:
        target = outbound.check_url(body["url"], networks)
        await outbound.check_resolves(target, networks)
    except outbound.Refused as error:
        raise ApiError(400, f"the URL cannot be submitted: {error}") from None
    custom_data = custom_data_text(json_text(None, body.get("custom_data")))
    user_data = json_text("user_data", body.get("user_data"))
    check_user_data(settings, orjson.loads(user_data) if user_data is not None else None)
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
    with task_context(task_id):  # the download's lines carry the task id too
        download = asyncio.create_task(download_and_queue(request.app, task_id, body["url"], headers, digest))
        log.info("task %s accepted for URL %s from %s", task_id, target.with_query(None), request.remote)
    request.app[DOWNLOADS].add(download)
    download.add_done_callback(request.app[DOWNLOADS].discard)
    return json_response({"task_url": task_url(request, settings, task_id)})


async def download_and_queue(
    app: web.Application, task_id: int, url: str, headers: dict[str, str], digest: tuple[str, str] | None
) -> None:
    """Download, verify, then queue one submit-url task; whatever goes wrong fails the task
    and leaves no file behind, rather than a record queued until the sweeper cancels it."""
    settings, store = app[SETTINGS], app[STORE]
    networks = outbound.parse_networks(settings.outbound_allowed_networks)
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
            settings.download_limits(),
        )
        if digest is not None and spooled.digests[digest[0]] != digest[1]:
            calculated = spooled.digests[digest[0]]
            raise fetch.FetchError(
                f"integrity check failed: {digest[0]} {calculated} differs from {digest[1]}"
            )
        if not await store.update(task_id, {"size": spooled.size, **spooled.digests}, only_if=QUEUED):
            return  # deleted or canceled while downloading
        await store.index_sample(task_id, time.time(), spooled.digests)
        spooled.path.rename(spool.task_spool_path(settings.spool_dir, task_id))
        spooled = None
    except fetch.FetchError as error:
        log.info("task %s: download of %s failed: %s", task_id, url, error)
        await store.fail(task_id, f"download failed: {error}", int(time.time()), only_if=QUEUED)
        return
    except asyncio.CancelledError:
        await store.fail(
            task_id, "download interrupted: the Worker API stopped", int(time.time()), only_if=QUEUED
        )
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
