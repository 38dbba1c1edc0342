"""`scanhub scan`: send files with bounded concurrency, follow each task to its end, record it.

Each file goes through three steps, `--concurrency` files at a time: upload (streamed from
disk, hashed on the way), then polling its `task_url` (at the Worker that took it) until
the task is `done` or `failed`, then one record to the result files and one progress line.
What goes wrong with one file (refused, a lost connection, a time-out) is that file's error;
the others go on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cli.client import Client, ServiceError
from cli.files import LocalFile
from cli.results import FileResult, ResultFiles
from cli.upload import FileChanged, MultipartFile, open_selected
from cli.verdicts import ERROR

UPLOAD_PATH = "/api/tiscale/v1/upload"
# A task not yet processed is polled again after POLL_FIRST seconds, then backing off by
# POLL_FACTOR up to POLL_MAX: small files finish within a second, large archives take longer.
POLL_FIRST, POLL_FACTOR, POLL_MAX = 0.1, 1.5, 2.0
# `status` of a task the Worker is finished with; until then it is queued or analyzing.
FINAL_STATUSES = ("done", "failed")
# Answers to reading a task that every other file would get too (see TaskRequestRefused).
TASK_REFUSALS = (400, 401, 403)


class Progress(Protocol):
    def bytes_sent(self, count: int) -> None: ...
    def finished(self, result: FileResult) -> None: ...
    def tick(self) -> None: ...


@dataclass
class ScanOptions:
    url: str
    concurrency: int = 8
    report_type: str | None = None
    task_timeout: float = 600.0


@dataclass
class ScanState:
    """What a scan has finished so far: readable after an interrupt as after the end."""

    results: list[FileResult] = field(default_factory=list)
    # Why the scan stopped taking files before the end (see TaskRequestRefused), if it did.
    stopped: str | None = None


class TaskRequestRefused(ServiceError):
    """A Worker answered 400 to reading a task (the request's options, an unknown report
    type most likely, are refused), or 401 or 403 (the credentials that the Hub took are not
    taken for reading tasks): every file would meet the same answer. The scan sends no more
    files rather than have every one analyzed for a report it cannot read."""


async def upload(
    client: Client, options: ScanOptions, file: LocalFile, progress: Progress
) -> tuple[str, str]:
    """(task_url, sha256) of one file sent to `options.url`."""
    with open_selected(file) as handle:
        body = MultipartFile(handle, os.path.basename(file.path), file.size, progress.bytes_sent)

        def on_retry() -> None:
            # A retried attempt sends the file again: its bytes are counted again from zero,
            # and once only, even when an attempt fails before sending any of them.
            progress.bytes_sent(-body.sent)
            body.sent = 0

        _, answer = await client.request(
            "POST", f"{options.url}{UPLOAD_PATH}", body=body.chunks, headers=body.headers, on_retry=on_retry
        )
    task_url = answer.get("task_url") if isinstance(answer, dict) else None
    if not isinstance(task_url, str):
        raise ServiceError(f"the upload was answered without a task_url: {str(answer)[:200]}")
    return task_url, body.sha256


async def wait_for_task(client: Client, task_url: str, options: ScanOptions) -> dict[str, Any]:
    """The task's JSON once the Worker is finished with it (done or failed)."""
    params = {"report_type": options.report_type} if options.report_type else None
    deadline = time.monotonic() + options.task_timeout
    delay = POLL_FIRST
    while True:
        try:
            task = await client.get_json(task_url, params)
        except ServiceError as error:
            if error.status in TASK_REFUSALS:
                raise TaskRequestRefused(str(error), error.status) from None
            raise
        if not isinstance(task, dict):
            raise ServiceError(f"{task_url} answered something that is not a task: {str(task)[:200]}")
        if task.get("status") in FINAL_STATUSES or (task.get("status") is None and task.get("processed")):
            return task
        if time.monotonic() + delay > deadline:
            raise ServiceError(f"the task was not finished after {options.task_timeout:g} s ({task_url})")
        await asyncio.sleep(delay)
        delay = min(delay * POLL_FACTOR, POLL_MAX)


async def scan_file(client: Client, options: ScanOptions, file: LocalFile, progress: Progress) -> FileResult:
    task_url: str | None = None
    sha256: str | None = None
    try:
        task_url, sha256 = await upload(client, options, file, progress)
        task = await wait_for_task(client, task_url, options)
    except TaskRequestRefused as error:
        return FileResult(file, ERROR, sha256, task_url, error=str(error), stops_scan=True)
    except ServiceError as error:
        return FileResult(file, ERROR, sha256, task_url, error=str(error))
    except FileChanged as error:
        return FileResult(file, ERROR, sha256, task_url, error=f"cannot send the file: {error}")
    except OSError as error:  # opening it: gone, or no permission
        message = f"cannot read the file: {error.strerror or error}"
        return FileResult(file, ERROR, sha256, task_url, error=message)
    except Exception as error:  # anything unforeseen is this file's error, not the scan's end
        message = f"unexpected {type(error).__name__}: {error}"
        return FileResult(file, ERROR, sha256, task_url, error=message)
    return FileResult.from_task(file, sha256, task_url, task)


async def run_scan(
    client: Client,
    options: ScanOptions,
    files: Sequence[LocalFile],
    progress: Progress,
    outputs: ResultFiles,
    state: ScanState,
) -> None:
    """Scan `files`, `options.concurrency` at a time, into `state.results` and `outputs`."""
    pending = iter(files)

    async def lane() -> None:
        for file in pending:  # the lanes share one iterator: each file is taken once
            if state.stopped is not None:
                return
            result = await scan_file(client, options, file, progress)
            if result.stops_scan and state.stopped is None:
                state.stopped = result.error
            state.results.append(result)
            outputs.write(result)
            progress.finished(result)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1)
            progress.tick()

    ticking = asyncio.create_task(ticker())
    try:
        async with asyncio.TaskGroup() as lanes:
            for _ in range(min(options.concurrency, len(files))):
                lanes.create_task(lane())
    finally:
        ticking.cancel()
