"""The analysis jobs of a Worker node, as plain functions of a per-process context.

`worker.celery_app` registers them as Celery tasks; nothing here builds state at import.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler
from celery.exceptions import SoftTimeLimitExceeded

from worker.analysis.engine import AnalysisTimeout, Submission
from worker.digests import DIGESTS
from worker.identity import worker_identity
from worker.settings import WorkerSettings
from worker.spool import discard, task_spool_path
from worker.store import Keys, SyncTaskStore, connect

log = logging.getLogger(__name__)
Engine = Callable[[Submission], list[dict[str, Any]]]


@dataclass
class ProcessContext:
    """What an analysis process keeps between jobs, built once in each process after the
    fork (see `worker.celery_app`): the node's settings and its own Redis client."""

    settings: WorkerSettings
    store: SyncTaskStore

    @classmethod
    def build(cls, settings: WorkerSettings) -> ProcessContext:
        client = connect(settings.redis_url)
        return cls(settings, SyncTaskStore(client, Keys(settings.key_prefix), settings.retention()))


@functools.cache
def load_engine(dotted_path: str) -> Engine:
    module_name, _, function_name = dotted_path.partition(":")
    engine: Engine = getattr(importlib.import_module(module_name), function_name)
    return engine


def run_analysis(task_id: int, store: SyncTaskStore, config: WorkerSettings) -> str:
    """Analyze one task's file and store the outcome; returns the final status.

    The spool file is removed whatever happens, except when this process dies
    mid-analysis: then Celery re-delivers the job and the file is still there for it.
    """
    spool_path = task_spool_path(config.spool_dir, task_id)
    identity = worker_identity()
    attempt, record = store.start(task_id, identity)
    if attempt <= 0:
        log.info("task %s skipped: %s", task_id, "deleted" if attempt == 0 else "already finished")
        discard(spool_path)
        return "skipped"
    try:
        if attempt > config.max_analysis_attempts:
            reason = f"analysis did not finish after {attempt - 1} attempts (worker lost)"
            log.error("task %s failed: %s", task_id, reason)
            store.fail(task_id, reason, int(time.time()), identity)
            return "failed"
        if not spool_path.exists():
            reason = "the file is gone: an earlier attempt at this task was killed or it was deleted"
            log.error("task %s failed: %s", task_id, reason)
            store.fail(task_id, reason, int(time.time()), identity)
            return "failed"
        submission = Submission(
            path=spool_path,
            file_name=record.get("file_name", ""),
            digests={name: record[name] for name in DIGESTS if name in record},
            user_data=orjson.loads(record["user_data"]) if "user_data" in record else {},
            settings=config,
        )
        started = time.monotonic()
        try:
            report = load_engine(config.engine)(submission)
        except (AnalysisTimeout, SoftTimeLimitExceeded):
            reason = f"analysis exceeded the time limit of {config.analysis_soft_time_limit_seconds:g} s"
            log.warning("task %s failed: %s", task_id, reason)
            store.fail(task_id, reason, int(time.time()), identity)
            return "failed"
        except Exception as error:
            log.exception("task %s failed in analysis", task_id)
            store.fail(
                task_id, f"analysis failed: {type(error).__name__}: {error}", int(time.time()), identity
            )
            return "failed"
        try:
            store.add_analyzer_stats(report)
        except Exception as error:  # statistics are not worth failing a finished task
            log.warning("task %s: analyzer statistics not recorded: %s", task_id, error)
        if not store.finish(task_id, report, identity, int(time.time())):
            log.info("task %s finished but its record was deleted meanwhile", task_id)
            return "skipped"
        log.info("task %s done in %.3f s", task_id, time.monotonic() - started)
        return "done"
    except (Exception, AnalysisTimeout) as error:
        # Anything escaping after start() (a Redis error while storing, a time limit arriving
        # late) must still end the record; left "analyzing" it would never finish.
        log.exception("task %s failed outside the engine", task_id)
        with contextlib.suppress(Exception):
            store.fail(
                task_id, f"internal error: {type(error).__name__}: {error}", int(time.time()), identity
            )
        return "failed"
    finally:
        discard(spool_path)


def raise_analysis_timeout(signum: int, frame: object) -> None:
    raise AnalysisTimeout("the job's soft time limit was reached")


def map_soft_time_limit() -> None:
    """Make Celery's soft time limit raise the engine's AnalysisTimeout in this process.

    Celery's SoftTimeLimitExceeded is an ordinary Exception that any analyzer's or library's
    error guard would swallow; AnalysisTimeout is not. The pool installs its handler after
    the process initializers run, so this is done when a job starts, once per process.
    """
    if SIG_SOFT_TIMEOUT is not None and signal.getsignal(SIG_SOFT_TIMEOUT) is soft_timeout_sighandler:
        signal.signal(SIG_SOFT_TIMEOUT, raise_analysis_timeout)


@contextlib.contextmanager
def file_time_limit(seconds: float) -> Iterator[None]:
    """Raise AnalysisTimeout in this file's analysis after `seconds`.

    Inside a batch job Celery's own soft limit covers the whole job, so each file gets its
    own timer here (SIGALRM, which Celery's pool processes leave unused). Only possible in
    the main thread; elsewhere the job's limit alone applies.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise AnalysisTimeout(f"file time limit of {seconds:g} s exceeded")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def analyze(context: ProcessContext, task_id: int) -> str:
    """The `scanhub.analyze` job: one file."""
    map_soft_time_limit()
    return run_analysis(task_id, context.store, context.settings)


def analyze_batch(context: ProcessContext, task_ids: list[int]) -> list[str]:
    """The `scanhub.analyze_batch` job: several files, each analyzed, limited and failed on its own.

    If the process dies mid-batch the whole job is re-delivered; files already finished
    are skipped by `run_analysis`, so each file is still analyzed to completion once.
    """
    map_soft_time_limit()
    outcomes = []
    for task_id in task_ids:
        with file_time_limit(context.settings.analysis_soft_time_limit_seconds):
            outcomes.append(run_analysis(task_id, context.store, context.settings))
    return outcomes
