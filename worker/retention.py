"""Retention on a Worker node: cancel stale queued tasks, prune the index, clear the spool.

Redis TTLs expire finished records; this sweeper does the rest once every
`sweep_interval_seconds`, guarded by a Redis lock so several API processes never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from worker import spool
from worker.settings import WorkerSettings
from worker.spool import discard, task_spool_path
from worker.store import ANALYZING, QUEUED, TaskStore

log = logging.getLogger(__name__)
# A partial upload not written for this long belongs to no live upload (its API died); at
# start-up, when no upload of this process can be in flight, a shorter idle time suffices.
INCOMING_IDLE_SECONDS = 300
INCOMING_IDLE_AT_START_SECONDS = 30


def remove_partial_uploads(spool_dir: Path, idle_seconds: float = INCOMING_IDLE_AT_START_SECONDS) -> int:
    """Delete partial uploads left by an API process that died mid-upload."""
    cutoff = time.time() - idle_seconds
    removed = 0
    for path in spool_dir.glob(f"{spool.INCOMING_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                discard(path)
                removed += 1
    if removed:
        log.info("removed %d partial upload(s) left by an earlier API process", removed)
    return removed


@dataclass
class SweepResult:
    canceled: list[int]
    pruned: int
    orphans_removed: int
    requeued: list[int]


async def cancel_unprocessed(store: TaskStore, settings: WorkerSettings, now: float) -> list[int]:
    limit = settings.unprocessed_task_limit_seconds
    cutoff = now - limit
    reason = f"canceled: not processed within the unprocessed task limit ({limit} s)"
    canceled = []
    for task_id in await store.ids_submitted_before(cutoff, store.keys.queued_tasks):
        if await store.fail(task_id, reason, int(now), only_if=QUEUED):
            discard(task_spool_path(settings.spool_dir, task_id))
            canceled.append(task_id)
    if canceled:
        log.info("canceled %d unprocessed task(s): %s", len(canceled), canceled[:20])
    return canceled


Republish = Callable[[int], Awaitable[None]]


async def requeue_stranded(
    store: TaskStore, settings: WorkerSettings, now: float, republish: Republish
) -> list[int]:
    """Send a new job for every task whose job is nowhere in the broker (neither waiting nor
    taken by a Celery worker): still queued after `requeue_stranded_after_seconds`, or still
    analyzing long after the longest job could have ended.

    That happens when a Celery process dies between taking a job from the queue and
    recording it as taken, when a broker write is lost, or when a whole node went down mid-
    analysis and its broker lost the job: without this, the task would wait for the
    unprocessed-task limit (queued) or never end (analyzing). An analyzing task counts its
    attempts, so one that keeps killing its process still fails after
    `max_analysis_attempts`. A job taken at the very moment of the check can be sent twice;
    the task is then analyzed twice, never lost.
    """
    queued_cutoff = now - settings.requeue_stranded_after_seconds
    waiting = await store.ids_submitted_before(queued_cutoff, store.keys.queued_tasks)
    longest_job = settings.analysis_time_limit_seconds * settings.max_job_batch
    analyzing = await store.analyzing_since_before(
        now - longest_job - settings.requeue_stranded_after_seconds
    )
    if not waiting and not analyzing:
        return []
    with_jobs = await store.task_ids_with_jobs(settings.celery_queue)
    requeued = []
    for task_id in (*waiting, *analyzing):
        if task_id in with_jobs or await store.status(task_id) not in (QUEUED, ANALYZING):
            continue
        await republish(task_id)
        requeued.append(task_id)
    if requeued:
        log.warning("re-queued %d task(s) whose job was lost: %s", len(requeued), requeued[:20])
    return requeued


async def remove_orphan_files(
    store: TaskStore, spool_dir: Path, older_than: float, incoming_older_than: float
) -> int:
    """Delete spool files that no live task will ever read (e.g. after a crash mid-upload).

    Task files go once not modified since `older_than`; a partial upload (`incoming-*`),
    which a live upload keeps writing, once not written since `incoming_older_than`.
    """
    removed = 0
    for path in spool_dir.iterdir():
        incoming = path.name.startswith(spool.INCOMING_PREFIX)
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if modified > (incoming_older_than if incoming else older_than):
            continue
        if path.name.isdigit() and await store.status(int(path.name)) in (QUEUED, ANALYZING):
            continue
        discard(path)
        removed += 1
    if removed:
        log.info("removed %d orphaned spool file(s)", removed)
    return removed


async def sweep_once(
    store: TaskStore, settings: WorkerSettings, now: float | None = None, republish: Republish | None = None
) -> SweepResult:
    now = time.time() if now is None else now
    requeued = await requeue_stranded(store, settings, now, republish) if republish else []
    canceled = await cancel_unprocessed(store, settings, now)
    shortest_retention = min(settings.task_age_limit_seconds, settings.file_age_limit_seconds)
    pruned = await store.prune_index(now - shortest_retention)
    orphan_age = max(settings.unprocessed_task_limit_seconds, settings.analysis_time_limit_seconds)
    orphans = await remove_orphan_files(
        store, settings.spool_dir, now - orphan_age, now - INCOMING_IDLE_SECONDS
    )
    return SweepResult(canceled, pruned, orphans, requeued)


async def run_sweeper(
    store: TaskStore, settings: WorkerSettings, stop: asyncio.Event, republish: Republish | None = None
) -> None:
    """Sweep every interval until `stop` is set.

    Stopping goes through an event rather than task cancellation alone: a cancellation that
    lands inside a Redis call can be swallowed by the client library, and the sweeper would
    then sleep out a whole interval while the service waits to shut down. A cancellation
    swallowed that way still ends the sweeper as cancelled, once that call returns.
    """
    interval = settings.sweep_interval_seconds
    this_task = asyncio.current_task()
    while not stop.is_set():
        try:
            if await store.take_sweeper_lock(interval * 0.9):
                await sweep_once(store, settings, republish=republish)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed; retrying in %s s", interval)
        # `cancelling()` stays set when a library swallowed the CancelledError itself.
        if this_task is not None and this_task.cancelling():
            raise asyncio.CancelledError
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
