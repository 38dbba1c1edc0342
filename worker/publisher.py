"""Queues analysis jobs on Celery, grouping the task ids that arrive while a publish is busy.

One publish is in flight at a time. Under light load each upload is sent on its own at
once; under heavy load the uploads that arrive meanwhile go out together as one
`analyze_batch` job (at most `max_batch` ids), so Celery's per-job cost is shared. An
upload is answered only after its job is in the broker, so a task_url never points at a
task nobody will analyze.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

SendJobs = Callable[[list[int]], None]


class JobPublisher:
    def __init__(self, send_jobs: SendJobs, max_batch: int):
        self.send_jobs = send_jobs  # blocking: one broker message for these task ids
        self.max_batch = max(1, max_batch)
        self.waiting: list[tuple[int, asyncio.Future[None]]] = []
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish")
        self.flusher: asyncio.Task[None] | None = None
        self.jobs_sent = 0
        self.tasks_sent = 0

    async def publish(self, task_id: int) -> None:
        """Returns once the job carrying this task id is in the broker; raises if it is not."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((task_id, future))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.waiting:
            batch, self.waiting = self.waiting[: self.max_batch], self.waiting[self.max_batch :]
            try:
                await loop.run_in_executor(self.executor, self.send_jobs, [task_id for task_id, _ in batch])
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
            else:
                self.jobs_sent += 1
                self.tasks_sent += len(batch)
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def close(self) -> None:
        if self.flusher is not None:
            await asyncio.gather(self.flusher, return_exceptions=True)
        self.executor.shutdown(wait=True)
