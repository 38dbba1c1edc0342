"""The Celery worker of a Worker node: `python -m worker.celery_worker worker [celery options]`.

Nothing is built at import. `main()` reads the settings, builds the app, and starts
Celery's worker command with the given options. Each pool process then builds its own
`ProcessContext` (settings, a Redis client of its own) in `worker_process_init`, after the
fork, and the tasks receive it; connection pools never cross a fork.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from celery import Celery, bootsteps, signals
from kombu import Connection

from worker import tasks
from worker.celery_app import configure
from worker.settings import WorkerSettings, load_worker_settings
from worker.store import Keys, SyncTaskStore, connect

log = logging.getLogger(__name__)


class ScanhubCelery(Celery):
    """A Celery app that carries its node's settings and this process's context."""

    def __init__(self, settings: WorkerSettings):
        super().__init__("scanhub", broker=settings.redis_url, set_as_current=False)
        configure(self, settings)
        self.steps["worker"].add(RestoreOrphanedJobs)
        self.steps["worker"].add(Heartbeat)
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


def register_tasks(app: ScanhubCelery) -> None:
    """The two jobs the API sends; each hands this process's context to `worker.tasks`."""

    @app.task(name="scanhub.analyze")
    def analyze(task_id: int) -> str:
        return tasks.analyze(app.context(), task_id)

    @app.task(name="scanhub.analyze_batch")
    def analyze_batch(task_ids: list[int]) -> list[str]:
        return tasks.analyze_batch(app.context(), task_ids)


class RestoreOrphanedJobs(bootsteps.StartStopStep):
    """At start, before consuming: when no other Celery worker of this node is alive, every
    job still marked as taken was taken by a worker that died (a SIGKILL, a lost container).
    They go back to the queue now, rather than after the broker's visibility timeout (an
    hour by default). With several Celery workers per node, a restarted one leaves that to
    the visibility timeout, since it cannot tell whose jobs they are.
    """

    requires = {"celery.worker.components:Timer"}

    def start(self, worker: Any) -> None:
        settings: WorkerSettings = worker.app.settings
        store = SyncTaskStore(connect(settings.redis_url), Keys(settings.key_prefix), settings.retention())
        others = [name for name in store.live_celery_workers() if name != worker.hostname]
        if others:
            log.info("not restoring taken jobs: other Celery workers are alive: %s", others)
            return
        restored = restore_taken_jobs(settings.redis_url)
        if restored:
            log.warning("restored %d job(s) taken by a Celery worker that died", restored)


def restore_taken_jobs(broker_url: str, limit: int = 100_000) -> int:
    """Put every taken, unacknowledged job back in its queue (kombu's own restore, with a
    visibility timeout of zero); returns how many went back."""
    with Connection(broker_url, transport_options={"visibility_timeout": 0}) as connection:
        channel = connection.default_channel
        client, key = channel.client, channel.unacked_key
        before = int(client.hlen(key))
        channel.qos.restore_visible(start=0, num=limit)
        return before - int(client.hlen(key))


class Heartbeat(bootsteps.StartStopStep):
    """Writes a short-lived key while this Celery worker runs; the API's /health reads it."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any):
        super().__init__(worker, **kwargs)
        self.timer_entry: Any = None

    def start(self, worker: Any) -> None:
        settings: WorkerSettings = worker.app.settings
        client = connect(settings.redis_url)
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


def create_worker_app(settings: WorkerSettings) -> ScanhubCelery:
    """The app a Celery worker runs: this node's configuration, heartbeat and tasks."""
    app = ScanhubCelery(settings)
    register_tasks(app)
    return app


def main(argv: list[str] | None = None) -> int | None:
    """Start Celery's worker command (`worker --loglevel INFO ...`) for this node."""
    app = create_worker_app(load_worker_settings())
    signals.worker_process_init.connect(app.init_process_context, weak=False)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "worker" not in arguments:
        arguments.insert(0, "worker")
    return app.start(arguments)


if __name__ == "__main__":
    sys.exit(main())
