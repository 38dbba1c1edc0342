"""Celery configuration of a Worker node: broker, queue, acknowledgement and time limits.

The API process sends jobs with `create_celery(settings)`; the Celery worker itself is
`worker/celery_worker.py`, which builds its app on the same configuration.
"""

from __future__ import annotations

import os

from celery import Celery

from worker.settings import WorkerSettings


def create_celery(settings: WorkerSettings) -> Celery:
    """A Celery app configured for this node's broker and queue, with no tasks: the API
    process sends jobs by name with it; `worker.celery_worker` adds the tasks."""
    app = Celery("scanhub", broker=settings.redis_url, set_as_current=False)
    configure(app, settings)
    return app


def configure(app: Celery, settings: WorkerSettings) -> None:
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
