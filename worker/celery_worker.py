"""The Celery workers of a Worker node.

- `python -m worker.celery_worker worker [celery options]`: the analysis worker (prefork
  pool, one process per core), consuming the node's analysis queue.
- `python -m worker.celery_worker outputs [celery options]`: the outputs worker (a thread
  pool of `output_concurrency`), consuming the outputs queue: callback and Splunk
  deliveries, which wait on the network and must never take an analysis process.

Nothing is built at import. `main()` reads the settings, builds the app, and starts
Celery's worker command with the given options. Each pool process then builds its own
`ProcessContext` (settings, a Redis client of its own) in `worker_process_init`, after the
fork, and the tasks receive it; connection pools never cross a fork.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from typing import Any

import orjson
from celery import Celery, Task, bootsteps, signals
from kombu import Connection

from common.logs import LineWriter, configure_logging
from worker import outputs, tasks
from worker.celery_app import configure
from worker.settings import WorkerSettings, load_worker_settings
from worker.store import Keys, SyncTaskStore, connect

log = logging.getLogger(__name__)


class ScanhubCelery(Celery):
    """A Celery app that carries its node's settings, its role (analysis or outputs) and
    this process's context."""

    def __init__(self, settings: WorkerSettings, role: str = "analysis"):
        super().__init__("scanhub", broker=settings.redis_url, set_as_current=False)
        configure(self, settings)
        self.steps["worker"].add(RestoreOrphanedJobs)
        self.steps["worker"].add(Heartbeat)
        self.settings = settings
        self.role = role
        self.queue = settings.celery_queue if role == "analysis" else settings.outputs_queue
        self.process_context: tasks.ProcessContext | None = None
        self._context_lock = threading.Lock()

    def send_delivery(self, task_id: int, output: str, countdown: float) -> None:
        self.send_task(
            "scanhub.deliver",
            args=[task_id, output],
            queue=self.settings.outputs_queue,
            countdown=countdown or None,
        )

    def init_process_context(self, **_: Any) -> None:
        """`worker_process_init` handler: this pool process's own context."""
        self.process_context = tasks.ProcessContext.build(self.settings, self.send_delivery)

    def context(self) -> tasks.ProcessContext:
        """The context of this process. A pool without per-process start-up (`--pool solo`,
        the outputs worker's threads) builds it at its first job instead, once."""
        context = self.process_context
        if context is None:
            with self._context_lock:
                if self.process_context is None:
                    self.process_context = tasks.ProcessContext.build(self.settings, self.send_delivery)
                context = self.process_context
        return context


def register_tasks(app: ScanhubCelery) -> None:
    """The jobs of a node; each hands this process's context to `worker.tasks`."""

    @app.task(name="scanhub.analyze")
    def analyze(task_id: int) -> str:
        return tasks.analyze(app.context(), task_id)

    @app.task(name="scanhub.analyze_batch")
    def analyze_batch(task_ids: list[int]) -> list[str]:
        return tasks.analyze_batch(app.context(), task_ids)

    def retry_unexpected(task: Task, error: Exception) -> Exception:
        """An output job that failed for a reason of its own (Redis away, say) is sent again
        with the outputs' backoff, `output_attempts` times at most, then given up."""
        retries = task.request.retries
        if retries >= app.settings.output_attempts:
            log.error("%s %s given up: %s", task.name, task.request.args, error)
            return error
        log.warning("%s %s failed (%s); trying again", task.name, task.request.args, error)
        wait = outputs.backoff_seconds(app.settings, retries + 1)
        return task.retry(countdown=wait, queue=app.settings.outputs_queue, exc=error)

    @app.task(name="scanhub.queue_outputs", bind=True, max_retries=None)
    def queue_outputs(self: Task, task_id: int) -> str:
        """Sent by the API for a task it ended (failed): plan and send its deliveries."""
        try:
            tasks.queue_outputs(app.context(), task_id)
        except Exception as error:
            raise retry_unexpected(self, error) from None
        return "queued"

    @app.task(name="scanhub.deliver", bind=True, max_retries=None)
    def deliver(self: Task, task_id: int, output: str) -> str:
        """One attempt; a retry is a new job with a countdown, so no thread waits it out."""
        try:
            wait = tasks.deliver(app.context(), task_id, output)
        except Exception as error:
            raise retry_unexpected(self, error) from None
        if wait is not None:
            raise self.retry(countdown=wait, queue=app.settings.outputs_queue)
        return "finished"


class RestoreOrphanedJobs(bootsteps.StartStopStep):
    """At start, before consuming: when no other Celery worker of this node and role is
    alive, every job of its queue still marked as taken was taken by a worker that died (a
    SIGKILL, a lost container). They go back to the queue now, rather than after the
    broker's visibility timeout (an hour by default). With several Celery workers of one
    role per node, a restarted one leaves that to the visibility timeout, since it cannot
    tell whose jobs they are.
    """

    requires = {"celery.worker.components:Timer"}

    def start(self, worker: Any) -> None:
        app: ScanhubCelery = worker.app
        settings = app.settings
        store = SyncTaskStore(connect(settings.redis_url), Keys(settings.key_prefix), settings.retention())
        others = [name for name in store.live_celery_workers(app.role) if name != worker.hostname]
        if others:
            log.info("not restoring taken jobs: other %s workers are alive: %s", app.role, others)
            return
        restored = restore_taken_jobs(settings.redis_url, app.queue)
        if restored:
            log.warning("restored %d job(s) taken by a Celery worker that died", restored)


def restore_taken_jobs(broker_url: str, queue: str) -> int:
    """Put every taken, unacknowledged job of `queue` back in it (kombu's own restore, one
    job at a time); returns how many went back."""
    with Connection(broker_url) as connection:
        channel = connection.default_channel
        client = channel.client
        restored = 0
        for tag, raw in client.hgetall(channel.unacked_key).items():
            _message, _exchange, routing_key = orjson.loads(raw)
            if routing_key == queue:
                channel.qos.restore_by_tag(tag, client)
                restored += 1
        return restored


class Heartbeat(bootsteps.StartStopStep):
    """Writes a short-lived key while this Celery worker runs; the API's /health reads it."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any):
        super().__init__(worker, **kwargs)
        self.timer_entry: Any = None

    def start(self, worker: Any) -> None:
        app: ScanhubCelery = worker.app
        settings = app.settings
        client = connect(settings.redis_url)
        store = SyncTaskStore(client, Keys(settings.key_prefix), settings.retention())
        name = worker.hostname or socket.gethostname()
        interval = settings.celery_heartbeat_seconds

        def beat() -> None:
            try:
                store.heartbeat(name, interval * 3, app.role)
            except Exception as error:
                log.warning("heartbeat to Redis failed: %s", error)

        beat()
        self.timer_entry = worker.timer.call_repeatedly(interval, beat)

    def stop(self, worker: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()


def create_worker_app(settings: WorkerSettings, role: str = "analysis") -> ScanhubCelery:
    """The app a Celery worker runs: this node's configuration, heartbeat and tasks."""
    app = ScanhubCelery(settings, role)
    register_tasks(app)
    return app


def log_shutdown(sig: str = "", how: str = "", exitcode: int = 0, **_: Any) -> None:
    log.info("shutting down (%s, on %s)", how.lower() or "asked", sig or "request")


def main(argv: list[str] | None = None) -> int | None:
    """Start Celery's worker command for this node: `worker [options]` (analysis) or
    `outputs [options]` (deliveries: its queue, a thread pool, `output_concurrency`)."""
    settings = load_worker_settings()
    arguments = list(sys.argv[1:] if argv is None else argv)
    # scanhub's format and level from the start (Celery warns before its logging set-up),
    # and in place of Celery's own set-up. What Celery prints to stdout is logged as lines;
    # its notices written from signal handlers straight to a file descriptor ("Warm
    # shutdown") find none on that stream and are dropped: the line below says it instead.
    configure_logging(settings.log_level, settings.log_format)
    signals.setup_logging.connect(lambda **_: None, weak=False)
    sys.__stdout__ = LineWriter(logging.getLogger("celery.worker"))  # type: ignore[assignment,misc]
    signals.worker_shutting_down.connect(log_shutdown, weak=False)
    if arguments[:1] == ["outputs"]:
        app = create_worker_app(settings, "outputs")
        preset = ["--queues", settings.outputs_queue, "--pool", "threads"]
        preset += ["--concurrency", str(settings.output_concurrency)]
        arguments = ["worker", *preset, *arguments[1:]]
    else:
        app = create_worker_app(settings)
        # The engine is imported here, before the pool forks, so its processes share it; the
        # outputs worker never loads it.
        tasks.load_engine(settings.engine)
        signals.worker_process_init.connect(app.init_process_context, weak=False)
        if "worker" not in arguments:
            arguments.insert(0, "worker")
    # --quiet: no banner; what it says (queues, concurrency) is in the settings, and the log
    # holds log lines only.
    return app.start(["--quiet", *arguments])


if __name__ == "__main__":
    sys.exit(main())
