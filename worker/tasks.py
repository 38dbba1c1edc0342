"""Celery tasks of a Worker node; each stays thin and calls plain functions."""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import redis
from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler
from celery.exceptions import SoftTimeLimitExceeded

from common.settings import WorkerSettings
from common.store import Keys, SyncTaskStore
from worker.analysis.engine import AnalysisTimeout, Submission
from worker.celery_app import app
from worker.identity import worker_identity
from worker.spool import discard, task_spool_path

log = logging.getLogger(__name__)
Engine = Callable[[Submission], list[dict[str, Any]]]


def settings() -> WorkerSettings:
    return app.scanhub_settings  # type: ignore[attr-defined,no-any-return]


_stores: dict[int, SyncTaskStore] = {}


def task_store() -> SyncTaskStore:
    """One Redis connection pool per process: pools must not cross a fork."""
    pid = os.getpid()
    if pid not in _stores:
        config = settings()
        client = redis.Redis.from_url(config.redis_url, decode_responses=True)
        _stores[pid] = SyncTaskStore(client, Keys(config.key_prefix), config.retention())
    return _stores[pid]


@functools.cache
def load_engine(dotted_path: str) -> Engine:
    module_name, _, function_name = dotted_path.partition(":")
    return getattr(importlib.import_module(module_name), function_name)  # type: ignore[no-any-return]


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
            digests={name: record[name] for name in ("md5", "sha1", "sha256", "sha512") if name in record},
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


@app.task(name="scanhub.analyze")
def analyze(task_id: int) -> str:
    map_soft_time_limit()
    return run_analysis(task_id, task_store(), settings())


@app.task(name="scanhub.analyze_batch")
def analyze_batch(task_ids: list[int]) -> list[str]:
    """Several files in one job: each analyzed, limited and failed on its own.

    If the process dies mid-batch the whole job is re-delivered; files already finished
    are skipped by `run_analysis`, so each file is still analyzed to completion once.
    """
    map_soft_time_limit()
    store, config = task_store(), settings()
    outcomes = []
    for task_id in task_ids:
        with file_time_limit(config.analysis_soft_time_limit_seconds):
            outcomes.append(run_analysis(task_id, store, config))
    return outcomes
