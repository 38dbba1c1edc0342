"""The Celery worker of a Worker node: `python -m worker.celery_app worker [celery options]`.

Nothing is built at import. `main()` reads the settings, builds the app (`create_celery`),
and starts Celery's worker command with the given options. Each pool process then builds
its own `ProcessContext` (settings, a Redis client of its own) in `worker_process_init`,
after the fork, and the tasks receive it; connection pools never cross a fork.
The API process builds an app from the same factory only to send jobs.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from celery import Celery, bootsteps, signals

from worker import tasks
from worker.settings import WorkerSettings, load_worker_settings
from worker.store import Keys, SyncTaskStore

log = logging.getLogger(__name__)


class ScanhubCelery(Celery):
    """A Celery app that carries its node's settings and this process's context."""

    def __init__(self, settings: WorkerSettings):
        super().__init__("scanhub", broker=settings.redis_url, set_as_current=False)
        self.settings = settings
        self.process_context: tasks.ProcessContext | None = None

    def init_process_context(self, **_: Any) -> None:
        """`worker_process_init` handler: this pool process's own context."""
        self.process_context = tasks.ProcessContext.build(self.settings)

    def context(self) -> tasks.ProcessContext:
        """The context of this process. A pool without per-process start-up (`--pool solo`)
        builds it at its first job instead."""
        context = self.process_context
        if context is None:
            context = self.process_context = tasks.ProcessContext.build(self.settings)
        return context


def create_celery(settings: WorkerSettings) -> ScanhubCelery:
    app = ScanhubCelery(settings)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # task records live in our own store, not a result backend
        # A task is acknowledged only once it has finished, and re-queued if the process
        # running it dies, so no accepted file is lost to a crash.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A job killed at the hard time limit goes back to the queue rather than being
        # acknowledged with its record left "analyzing"; the attempts counter then fails it
        # after max_analysis_attempts instead of letting it loop.
        task_acks_on_timeout=False,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.analysis_soft_time_limit_seconds,
        task_time_limit=settings.analysis_time_limit_seconds,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            "unacked_restore_interval": settings.unacked_restore_interval_seconds,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        worker_concurrency=settings.celery_concurrency or os.cpu_count() or 1,
    )
    app.steps["worker"].add(Heartbeat)
    register_tasks(app)
    return app


def register_tasks(app: ScanhubCelery) -> None:
    """The two jobs the API sends; each hands this process's context to `worker.tasks`."""

    @app.task(name="scanhub.analyze")
    def analyze(task_id: int) -> str:
        return tasks.analyze(app.context(), task_id)

    @app.task(name="scanhub.analyze_batch")
    def analyze_batch(task_ids: list[int]) -> list[str]:
        return tasks.analyze_batch(app.context(), task_ids)


class Heartbeat(bootsteps.StartStopStep):
    """Writes a short-lived key while this Celery worker runs; the API's /health reads it."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any):
        super().__init__(worker, **kwargs)
        self.timer_entry: Any = None

    def start(self, worker: Any) -> None:
        import redis

        settings: WorkerSettings = worker.app.settings
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        store = SyncTaskStore(client, Keys(settings.key_prefix), settings.retention())
        name = worker.hostname or socket.gethostname()
        interval = settings.celery_heartbeat_seconds

        def beat() -> None:
            try:
                store.heartbeat(name, interval * 3)
            except Exception as error:
                log.warning("heartbeat to Redis failed: %s", error)

        beat()
        self.timer_entry = worker.timer.call_repeatedly(interval, beat)

    def stop(self, worker: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()


def main(argv: list[str] | None = None) -> int | None:
    """Start Celery's worker command (`worker --loglevel INFO ...`) for this node."""
    app = create_celery(load_worker_settings())
    signals.worker_process_init.connect(app.init_process_context, weak=False)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "worker" not in arguments:
        arguments.insert(0, "worker")
    return app.start(arguments)


if __name__ == "__main__":
    sys.exit(main())
