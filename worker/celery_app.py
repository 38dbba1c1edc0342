"""The Celery app of a Worker node: Redis broker, the safety settings, a liveness heartbeat."""

from __future__ import annotations

import logging
import os
import socket

from celery import Celery, bootsteps

from common.settings import WorkerSettings, load_worker_settings

log = logging.getLogger(__name__)


def create_celery(settings: WorkerSettings) -> Celery:
    app = Celery("scanhub", broker=settings.redis_url, include=["worker.tasks"])
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
    app.scanhub_settings = settings  # type: ignore[attr-defined]
    return app


class Heartbeat(bootsteps.StartStopStep):
    """Writes a short-lived key while this Celery worker runs; the API's /health reads it."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timer_entry = None

    def start(self, worker):
        from worker.tasks import task_store

        settings: WorkerSettings = worker.app.scanhub_settings
        name = worker.hostname or socket.gethostname()
        interval = settings.celery_heartbeat_seconds

        def beat() -> None:
            try:
                task_store().heartbeat(name, interval * 3)
            except Exception as error:
                log.warning("heartbeat to Redis failed: %s", error)

        beat()
        self.timer_entry = worker.timer.call_repeatedly(interval, beat)

    def stop(self, worker):
        if self.timer_entry is not None:
            self.timer_entry.cancel()


app = create_celery(load_worker_settings())
