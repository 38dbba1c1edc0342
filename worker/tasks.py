"""The analysis jobs of a Worker node, as plain functions of a per-process context.

`worker.celery_app` registers them as Celery tasks; nothing here builds state at import.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler
from celery.exceptions import SoftTimeLimitExceeded

from common.logs import task_context
from worker import outputs, reports, result_cache
from worker.analysis.context import AnalysisTimeout, Submission
from worker.digests import DIGESTS
from worker.identity import worker_identity
from worker.outputs import SendDelivery
from worker.settings import WorkerSettings
from worker.spool import discard, task_spool_path
from worker.store import (
    ANALYZING,
    OUTPUT_FIELD_PREFIX,
    Bookkeeping,
    Keys,
    SyncTaskStore,
    connect,
    done_fields,
    verdict_of,
)

if TYPE_CHECKING:
    from worker.s3 import S3Output  # boto3 is imported only by nodes that write to S3

log = logging.getLogger(__name__)
Engine = Callable[[Submission], list[dict[str, Any]]]


@dataclass
class ProcessContext:
    """What an analysis process keeps between jobs, built once in each process after the
    fork (see `worker.celery_worker`): the node's settings, its own Redis client, how it
    sends output deliveries, and its S3 client when S3 is configured."""

    settings: WorkerSettings
    store: SyncTaskStore
    send_delivery: SendDelivery | None = None
    s3: S3Output | None = None

    @classmethod
    def build(cls, settings: WorkerSettings, send_delivery: SendDelivery | None = None) -> ProcessContext:
        client = connect(settings.redis_url)
        store = SyncTaskStore(client, Keys(settings.key_prefix), settings.retention())
        s3 = None
        if settings.s3_bucket:
            from worker.s3 import S3Output

            s3 = S3Output(settings)
        return cls(settings, store, send_delivery, s3)


@functools.cache
def load_engine(dotted_path: str) -> Engine:
    module_name, _, function_name = dotted_path.partition(":")
    engine: Engine = getattr(importlib.import_module(module_name), function_name)
    return engine


@dataclass
class Outcome:
    """How one task's analysis ended, for `run_analysis` to store."""

    status: str  # done, failed or skipped
    report: Any = None
    reason: str = ""
    cached_from: int | None = None
    cache_key: str | None = None  # where a fresh report is remembered (None: not cacheable)


def run_analysis(
    task_id: int,
    store: SyncTaskStore,
    config: WorkerSettings,
    send_delivery: SendDelivery | None = None,
    s3: S3Output | None = None,
) -> str:
    """Analyze one task's file (or copy a cached report), write its outputs, store the
    outcome; returns the final status.

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
    user_data = orjson.loads(record["user_data"]) if "user_data" in record else {}
    try:
        started = time.monotonic()
        outcome = analysis_outcome(task_id, attempt, record, user_data, spool_path, store, config)
        if outcome.status == "failed":
            store.fail(task_id, outcome.reason, int(time.time()), identity, only_if=ANALYZING)
            discard(spool_path)
        elif outcome.status == "done":
            extra: dict[str, Any] = {}
            if outcome.cached_from is not None:
                extra.update(cached="true", cached_from=outcome.cached_from)
            if s3 is not None:
                extra.update(
                    s3_fields(s3, task_id, record, outcome.report, identity, spool_path, config, store)
                )
            bookkeeping = Bookkeeping(
                submitted=float(record.get("submitted") or time.time()),
                analyzed=outcome.cached_from is None,
                cache_key=outcome.cache_key,
                cache_seconds=config.cache_seconds,
                accepted=accepted_time(record),
            )
            if not store.finish(task_id, outcome.report, identity, int(time.time()), extra, bookkeeping):
                log.info("task %s finished but its record was deleted meanwhile", task_id)
                return "skipped"
            discard(spool_path)  # processed means the file is gone: before the bookkeeping below
            cached = f" (cached from task {outcome.cached_from})" if outcome.cached_from is not None else ""
            log.info(
                "task %s done in %.3f s%s: %s",
                task_id,
                time.monotonic() - started,
                cached,
                report_summary(record.get("file_name", ""), outcome.report),
            )
    except (Exception, AnalysisTimeout) as error:
        # Anything escaping after start() (a Redis error while storing, a time limit arriving
        # late) must still end the record; left "analyzing" it would never finish. A task
        # already done stays done (only_if).
        log.exception("task %s failed outside the engine", task_id)
        with contextlib.suppress(Exception):
            store.fail(
                task_id,
                f"internal error: {type(error).__name__}: {error}",
                int(time.time()),
                identity,
                only_if=ANALYZING,
            )
        return "failed"
    finally:
        discard(spool_path)
    after_end(task_id, outcome, record, user_data, store, config, send_delivery)
    return outcome.status


def report_summary(file_name: str, report: Any) -> str:
    """A report in a few words for the log: file, type, verdict, threat, unpacked files."""
    top = report[0] if isinstance(report, list) and report and isinstance(report[0], dict) else {}
    info = top.get("info")
    file = info.get("file", {}) if isinstance(info, dict) else {}
    parts = (file.get("file_type"), file.get("file_subtype"))
    kind = "/".join(str(part) for part in parts if part and part != "None")  # "None": no subtype
    classification = top.get("classification")
    threat = classification.get("result") if isinstance(classification, dict) else None
    verdict = verdict_of(report) + (f" {threat}" if threat else "")
    children = len(report) - 1 if isinstance(report, list) and report else 0
    return f"{file_name!r}, {kind or 'unidentified'}, {verdict}, {children} unpacked"


def after_end(
    task_id: int,
    outcome: Outcome,
    record: dict[str, str],
    user_data: Any,
    store: SyncTaskStore,
    config: WorkerSettings,
    send_delivery: SendDelivery | None,
) -> None:
    """What follows a task's end and cannot change it: its outputs (the search index and the
    result cache were written with the report). A failure here (Redis, the broker, a late
    time limit) is logged; the task keeps the outcome already stored."""
    try:
        if send_delivery is not None:
            outputs.queue_outputs(store, config, task_id, user_data, send_delivery)
    except (Exception, AnalysisTimeout) as error:
        log.warning(
            "task %s: %s after the task ended: %s: %s", task_id, "bookkeeping", type(error).__name__, error
        )


def analysis_outcome(
    task_id: int,
    attempt: int,
    record: dict[str, str],
    user_data: Any,
    spool_path: Path,
    store: SyncTaskStore,
    config: WorkerSettings,
) -> Outcome:
    if attempt > config.max_analysis_attempts:
        reason = f"analysis did not finish after {attempt - 1} attempts (worker lost)"
        log.error("task %s failed: %s", task_id, reason)
        return Outcome("failed", reason=reason)
    if not spool_path.exists():
        reason = "the file is gone: an earlier attempt at this task was killed or it was deleted"
        log.error("task %s failed: %s", task_id, reason)
        return Outcome("failed", reason=reason)
    key = result_cache.cache_key(config, record, user_data)
    cached = result_cache.cached_report(store, key) if key is not None else None
    if cached is not None:
        return Outcome("done", report=cached[1], cached_from=cached[0])
    submission = Submission(
        path=spool_path,
        file_name=record.get("file_name", ""),
        digests={name: record[name] for name in DIGESTS if name in record},
        user_data=user_data,
        settings=config,
    )
    try:
        report = load_engine(config.engine)(submission)
    except (AnalysisTimeout, SoftTimeLimitExceeded):
        reason = f"analysis exceeded the time limit of {config.analysis_soft_time_limit_seconds:g} s"
        log.warning("task %s failed: %s", task_id, reason)
        return Outcome("failed", reason=reason)
    except Exception as error:
        log.exception("task %s failed in analysis", task_id)
        return Outcome("failed", reason=f"analysis failed: {type(error).__name__}: {error}")
    cacheable = key is not None and result_cache.cacheable(report)
    return Outcome("done", report=report, cache_key=key if cacheable else None)


def s3_fields(
    s3: S3Output,
    task_id: int,
    record: dict[str, str],
    report: Any,
    identity: dict[str, Any],
    spool_path: Path,
    config: WorkerSettings,
    store: SyncTaskStore,
) -> dict[str, Any]:
    """Write the report (and sample) to S3; the task fields that record it."""
    now = int(time.time())
    fields = {**record, **done_fields(report, identity, now)}
    body = reports.render_task(fields, reports.parse_options({"report_type": "large"}), config.report_types())
    sample = spool_path if config.s3_store_samples else None
    try:
        state = s3.write(task_id, record.get("sha256", "unknown"), identity["worker_hostname"], body, sample)
    except AnalysisTimeout:
        # The write counts toward the job's time limits; running out there costs the S3 copy,
        # not the report.
        state = {"state": "failed", "error": "the analysis time limit was reached while writing to S3"}
    with contextlib.suppress(Exception):
        store.count_output("s3", state["state"])
    store_fields: dict[str, Any] = {
        f"{OUTPUT_FIELD_PREFIX}s3": {k: v for k, v in state.items() if k != "file_link"}
    }
    if "file_link" in state:
        store_fields["file_link"] = state["file_link"]
    return store_fields


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
    with task_context(task_id):
        return run_analysis(task_id, context.store, context.settings, context.send_delivery, context.s3)


def analyze_batch(context: ProcessContext, task_ids: list[int]) -> list[str]:
    """The `scanhub.analyze_batch` job: several files, each analyzed, limited and failed on its own.

    If the process dies mid-batch the whole job is re-delivered; files already finished
    are skipped by `run_analysis`, so each file is still analyzed to completion once.
    """
    map_soft_time_limit()
    outcomes = []
    for task_id in task_ids:
        with task_context(task_id), file_time_limit(context.settings.analysis_soft_time_limit_seconds):
            outcomes.append(
                run_analysis(task_id, context.store, context.settings, context.send_delivery, context.s3)
            )
    return outcomes


def deliver(context: ProcessContext, task_id: int, output: str) -> float | None:
    """The `scanhub.deliver` job: one attempt at one output of one task; returns the seconds
    to wait before the next attempt, or None when done."""
    with task_context(task_id):
        return outputs.attempt_delivery(context.store, context.settings, task_id, output)


def queue_outputs(context: ProcessContext, task_id: int) -> None:
    """The `scanhub.queue_outputs` job: the deliveries of a task the API ended."""
    fields = context.store.get(task_id)
    if fields is None or context.send_delivery is None:
        return
    user_data = outputs.user_data_of(fields.get("user_data"))
    with task_context(task_id):
        outputs.queue_outputs(context.store, context.settings, task_id, user_data, context.send_delivery)


def accepted_time(record: dict[str, str]) -> float | None:
    """When the task was accepted (its `accepted` field, to the millisecond); None for a
    record without one or with a value that is not a time."""
    try:
        accepted = float(record["accepted"])
    except (KeyError, ValueError):
        return None
    return accepted if math.isfinite(accepted) else None
