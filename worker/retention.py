"""Retention on a Worker node: cancel stale queued tasks, prune the index, clear the spool.

Redis TTLs expire finished records; this sweeper does the rest once every
`sweep_interval_seconds`, guarded by a Redis lock so several API processes never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from worker.settings import WorkerSettings
from worker.spool import discard, task_spool_path
from worker.store import ANALYZING, QUEUED, TaskStore

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    canceled: list[int]
    pruned: int
    orphans_removed: int


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


async def remove_orphan_files(store: TaskStore, spool_dir: Path, older_than: float) -> int:
    """Delete spool files that no live task will ever read (e.g. after a crash mid-upload)."""
    removed = 0
    for path in spool_dir.iterdir():
        try:
            if path.stat().st_mtime > older_than:
                continue
        except FileNotFoundError:
            continue
        if path.name.isdigit() and await store.status(int(path.name)) in (QUEUED, ANALYZING):
            continue
        discard(path)
        removed += 1
    if removed:
        log.info("removed %d orphaned spool file(s)", removed)
    return removed


async def sweep_once(store: TaskStore, settings: WorkerSettings, now: float | None = None):
    now = time.time() if now is None else now
    canceled = await cancel_unprocessed(store, settings, now)
    shortest_retention = min(settings.task_age_limit_seconds, settings.file_age_limit_seconds)
    pruned = await store.prune_index(now - shortest_retention)
    orphan_age = max(settings.unprocessed_task_limit_seconds, settings.analysis_time_limit_seconds)
    orphans = await remove_orphan_files(store, settings.spool_dir, now - orphan_age)
    return SweepResult(canceled, pruned, orphans)


async def run_sweeper(store: TaskStore, settings: WorkerSettings, stop: asyncio.Event) -> None:
    """Sweep every interval until `stop` is set.

    Stopping goes through an event rather than task cancellation alone: a cancellation that
    lands inside a Redis call can be swallowed by the client library, and the sweeper would
    then sleep out a whole interval while the service waits to shut down.
    """
    interval = settings.sweep_interval_seconds
    while not stop.is_set():
        try:
            if await store.take_sweeper_lock(interval * 0.9):
                await sweep_once(store, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed; retrying in %s s", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
