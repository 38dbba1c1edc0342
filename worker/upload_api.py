"""POST /upload: a file streamed to the node's spool, recorded as a task, and queued."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import orjson
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from common.auth import token_group
from common.errors import ApiError, json_response
from common.service import refuse_oversized_body, require_multipart, upload_body_limit
from common.streaming import timed_reads
from worker import spool
from worker.keys import ADMISSION, SETTINGS, STORE
from worker.submission import (
    API,
    check_user_data,
    custom_data_text,
    parse_json_field,
    publish,
    readable,
    submission_fields,
    task_url,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

INTEGRITY_ERROR = (
    "ERROR: Upload: failed to accept upload integrity check failed, "
    "calculated hash {calculated} differs from the one passed in custom data {expected}."
)


# Content-Disposition as HTTP clients write it for a form field (no quote, backslash or
# semicolon inside the values), read with one regular expression; any other form goes to
# aiohttp's full parser. That parser builds its escape table on every call and runs once for
# the name and again for the file name: about a fifth of an upload's CPU for small files.
# Both give the same values (tests/unit/test_properties.py).
SIMPLE_DISPOSITION = re.compile(r'form-data; name="([^";\\]*)"(?:; filename="([^";\\]*)")?')


def part_names(part: BodyPartReader) -> tuple[str | None, str | None]:
    """(name, filename) of a form part, as aiohttp's `part.name` and `part.filename` give them."""
    match = SIMPLE_DISPOSITION.fullmatch(part.headers.get(hdrs.CONTENT_DISPOSITION, ""))
    if match is None:
        return part.name, part.filename
    name, filename = match.groups()
    # aiohttp strips leading slashes and backslashes from quoted values; so does this.
    return name.lstrip("\\/"), None if filename is None else filename.lstrip("\\/")


async def read_small_field(part: BodyPartReader, name: str | None, limit: int, read_timeout: float) -> str:
    data = bytearray()
    async for chunk in timed_reads(lambda: part.read_chunk(64 * 1024), read_timeout):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"form field '{name}' is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


async def next_part(reader: MultipartReader, seconds: float) -> Any:
    """The next part of the body (its headers read within `seconds`), or None at its end."""
    try:
        async with asyncio.timeout(seconds):
            return await reader.next()
    except TimeoutError:
        raise ApiError(408, f"the request body stalled: nothing arrived for {seconds:g} s") from None


@routes.post(f"{API}/upload")
@token_group("submit")
async def upload(request: web.Request) -> web.Response:
    """Upload a file (multipart `file`, optional `custom_data`, `user_data`); answers its task_url."""
    settings, store = request.app[SETTINGS], request.app[STORE]
    require_multipart(request)
    too_large = f"the upload is larger than the limit of {settings.max_upload_bytes} bytes"
    refuse_oversized_body(request, upload_body_limit(settings), too_large)
    await request.app[ADMISSION].check()

    spooled: spool.SpooledFile | None = None
    fields: dict[str, str] = {}
    file_name = ""
    try:
        try:
            reader = await request.multipart()
            while (part := await next_part(reader, settings.body_read_timeout_seconds)) is not None:
                if not isinstance(part, BodyPartReader):
                    raise ApiError(400, "nested multipart bodies are not accepted")
                name, filename = part_names(part)
                if name == "file":
                    if spooled is not None:
                        raise ApiError(400, "send exactly one 'file' part per upload")
                    file_name = readable(filename or "", 1024)
                    spooled = await spool.receive(
                        part,
                        settings.spool_dir,
                        settings.max_upload_bytes,
                        retry_after_seconds=settings.retry_after_seconds,
                        read_timeout_seconds=settings.body_read_timeout_seconds,
                    )
                else:
                    text = await read_small_field(
                        part, name, settings.max_form_field_bytes, settings.body_read_timeout_seconds
                    )
                    if name in ("custom_data", "user_data"):
                        fields[name] = text
        except (ValueError, AssertionError, HttpProcessingError) as error:
            raise ApiError(400, f"malformed multipart body: {error}") from None
        if spooled is None:
            raise ApiError(400, "the upload has no 'file' part")
        custom_text = custom_data_text(fields.get("custom_data"))
        custom_data = orjson.loads(custom_text) if custom_text is not None else None
        check_user_data(settings, parse_json_field("user_data", fields.get("user_data")))
        expected = custom_data.get("integrity_check_hash") if isinstance(custom_data, dict) else None
        if expected is not None and str(expected).lower() != spooled.digests["sha1"]:
            raise ApiError(400, INTEGRITY_ERROR.format(calculated=spooled.digests["sha1"], expected=expected))

        submitted = int(time.time())
        task_id = await store.create(
            submitted,
            indexed=True,
            **submission_fields(request, custom_text, fields.get("user_data")),
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
    # DEBUG: at INFO a file makes one line, when its analysis ends.
    log.debug("task %s accepted: %r from %s", task_id, file_name, request.remote, extra={"task_id": task_id})
    return json_response({"task_url": task_url(request, settings, task_id)})
