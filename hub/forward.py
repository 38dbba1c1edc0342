"""Forwards one submission to a Worker: spooled to the Hub's disk, streamed on, retried on failure.

The failover choice: the Hub first writes the request body, exactly as the client sent it
(multipart upload or submit-url JSON), to its own spool directory, enforcing the size limit
while it streams; then it streams that file to the next healthy Worker in round-robin order.
If that Worker refuses (5xx, 401/403 for the Hub's token, a timeout) or dies during the
forward, the Worker leaves rotation and the same spooled body goes to the next healthy
Worker. The client gets a `task_url` only from a Worker that answered 2xx, so it never gets
one for a task that will not exist; when no Worker takes the file the client gets 503 with
`Retry-After` and can send it again. A Worker's 4xx verdict on the submission itself
(malformed body, too large, bad JSON) is the client's answer and is relayed unchanged.

The cost is one disk write and read per submission on the Hub, measured by `bench/hub.py`;
small bodies (the common case) skip the disk and wait in memory instead, within a fixed
budget for all bodies held at once, so memory stays bounded whatever the load.
What this cannot rule out: a Worker that created the task but died before its answer
reached the Hub; the retry then analyzes the file twice (at least once, never lost).

Memory stays flat: the body moves in blocks of at most WRITE_BLOCK bytes in each direction,
and the file I/O runs in the default thread pool so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp
from aiohttp import web

from common.errors import ApiError
from common.streaming import WRITE_BLOCK, stream_to_file, timed_reads
from hub.pool import Worker, WorkerPool, describe, token_header
from hub.settings import HubSettings

log = logging.getLogger(__name__)

# Worker answers that say "not this Worker, not now" rather than "not this submission".
# A 500 is not among them: it may be about the submission itself, and retrying a poisonous
# body on every Worker would take them all out of rotation.
RETRY_ELSEWHERE_STATUSES = frozenset({401, 403, 408, 429, 502, 503, 504})
RELAYED_HEADERS = ("Content-Type", "Retry-After")


@dataclass
class SpooledBody:
    """A request body kept for as many forwards as it takes: on disk, or small and in memory."""

    path: Path | None = None  # None: the body is `data`
    data: bytes = b""
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class MemoryBudget:
    """How many bytes of request bodies the Hub holds in memory at once."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used -= size


async def keep_in_memory(stream: aiohttp.StreamReader, declared: int, read_timeout: float) -> SpooledBody:
    data = bytearray()

    def read_rest() -> Awaitable[bytes]:
        return stream.read(declared + 1 - len(data))

    async for block in timed_reads(read_rest, read_timeout):
        data += block
        if len(data) > declared:
            break
    if len(data) != declared:
        raise ApiError(400, f"the body is not the {declared} bytes its Content-Length says")
    return SpooledBody(data=bytes(data), size=declared)


def unavailable(message: str, settings: HubSettings) -> ApiError:
    return ApiError(503, message, {"Retry-After": str(settings.retry_after_seconds)})


def refuse_unless_ready(pool: WorkerPool, settings: HubSettings) -> None:
    """503 before reading a byte when no Worker could take the body or the spool disk is full."""
    if not pool.healthy():
        raise unavailable("no healthy Worker is available; try again later", settings)
    if shutil.disk_usage(settings.spool_dir).free < settings.min_free_spool_bytes:
        raise unavailable("the Hub's spool disk is full; try again later", settings)


async def spool_body(
    stream: aiohttp.StreamReader, settings: HubSettings, limit: int, too_large: str
) -> SpooledBody:
    """Copy the request body to a fresh spool file; 413 (and no file left) past `limit` bytes."""
    path = settings.spool_dir / f"body-{secrets.token_hex(12)}"
    size, _ = await stream_to_file(
        timed_reads(stream.readany, settings.body_read_timeout_seconds),
        path,
        limit,
        too_large,
        "Hub",
        retry_after_seconds=settings.retry_after_seconds,
    )
    return SpooledBody(path=path, size=size)


async def read_blocks(handle: BinaryIO) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    while block := await loop.run_in_executor(None, handle.read, WRITE_BLOCK):
        yield block


def forwarded_headers(request: web.Request) -> dict[str, str]:
    """What the Worker needs from the client's headers, with the client appended to X-Forwarded-For."""
    headers = {"Content-Type": request.headers.get("Content-Type", "application/octet-stream")}
    if "X-TiScale-Token" in request.headers:
        headers["X-TiScale-Token"] = request.headers["X-TiScale-Token"]
    chain = [value.strip() for value in request.headers.getall("X-Forwarded-For", []) if value.strip()]
    chain.append(request.remote or "unknown")
    headers["X-Forwarded-For"] = ", ".join(chain)
    return headers


@dataclass
class WorkerAnswer:
    status: int
    body: bytes
    headers: dict[str, str]


async def post_once(
    session: aiohttp.ClientSession,
    worker: Worker,
    path: str,
    body: SpooledBody,
    headers: dict[str, str],
    settings: HubSettings,
) -> WorkerAnswer:
    """Stream the spooled body to one Worker and read its (small) answer."""
    headers = {**headers, "Content-Length": str(body.size), **token_header(worker.token)}
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.connect_timeout_seconds,
        sock_read=settings.worker_response_timeout_seconds,
    )
    # A Worker that stops reading would stall the send forever; bound the whole exchange.
    overall = (
        settings.connect_timeout_seconds
        + settings.worker_response_timeout_seconds
        + body.size / settings.min_forward_bytes_per_second
    )
    with contextlib.ExitStack() as stack:
        data: bytes | AsyncIterator[bytes] = body.data
        if body.path is not None:
            data = read_blocks(stack.enter_context(body.path.open("rb")))
        async with (
            asyncio.timeout(overall),
            session.post(f"{worker.url}{path}", data=data, headers=headers, timeout=timeout) as response,
        ):
            content = await response.read()
            relayed = {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}
            return WorkerAnswer(response.status, content, relayed)


async def forward_submission(
    request: web.Request,
    session: aiohttp.ClientSession,
    pool: WorkerPool,
    settings: HubSettings,
    body_limit: int,
    too_large: str,
    budget: MemoryBudget,
) -> web.Response:
    """Keep the request body (memory or spool), then hand it to healthy Workers in turn until one answers."""
    refuse_unless_ready(pool, settings)
    if request.content_length is not None and request.content_length > body_limit:
        raise ApiError(413, too_large)
    headers = forwarded_headers(request)
    declared = request.content_length
    # The bytes reserved from the memory budget for this body, or None to spool it.
    reserved = declared if declared is not None and declared <= settings.memory_body_bytes else None
    if reserved is not None and not budget.take(reserved):
        reserved = None
    try:
        if reserved is not None:
            body = await keep_in_memory(request.content, reserved, settings.body_read_timeout_seconds)
        else:
            body = await spool_body(request.content, settings, body_limit, too_large)
        try:
            return await send_to_workers(session, pool, settings, request.path, body, headers)
        finally:
            body.discard()
    finally:
        if reserved is not None:
            budget.release(reserved)


async def send_to_workers(
    session: aiohttp.ClientSession,
    pool: WorkerPool,
    settings: HubSettings,
    path: str,
    body: SpooledBody,
    headers: dict[str, str],
) -> web.Response:
    tried: list[Worker] = []
    failures: list[str] = []
    while (worker := pool.pick(exclude=tried)) is not None:
        tried.append(worker)
        try:
            answer = await post_once(session, worker, path, body, headers, settings)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            reason = f"forward failed: {describe(error)}"
        else:
            if answer.status not in RETRY_ELSEWHERE_STATUSES:
                if 200 <= answer.status < 300:
                    pool.record_forwarded(worker)
                return web.Response(body=answer.body, status=answer.status, headers=answer.headers)
            reason = f"the Worker answered {answer.status}: {answer.body[:200]!r}"
        pool.mark_failed(worker, reason)
        failures.append(f"{worker.url}: {reason}")
        log.warning("forward to %s failed, trying the next Worker: %s", worker.url, reason)
    if not tried:
        raise unavailable("no healthy Worker is available; try again later", settings)
    log.error("no Worker took the submission: %s", "; ".join(failures))
    raise unavailable(
        f"no Worker could take the submission ({len(tried)} tried); send it again later",
        settings,
    )
