"""The Hub's view of its Workers: round-robin over the healthy ones, kept fresh by /health checks.

A Worker is in rotation while its last `/health` answered 200. It leaves rotation at once
when a check fails (connection error, timeout, any other status; 503 is how a Worker says
it is overloaded) or when a forward to it fails, and comes back at the first check that
answers 200 again. Until its first check a Worker is out of rotation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


@dataclass(eq=False)  # compared by identity: two entries are two Workers
class Worker:
    """One Worker node as the Hub knows it."""

    url: str
    token: str | None = None
    healthy: bool = False
    last_check: float | None = None
    last_error: str | None = None
    queue_depth: int | None = None
    tasks_forwarded: int = 0

    def status(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "healthy": self.healthy,
            "last_check": self.last_check,
            "last_error": self.last_error,
            "queue_depth": self.queue_depth,
            "tasks_forwarded": self.tasks_forwarded,
        }


class WorkerPool:
    """Workers in a fixed order, and the round-robin position among them."""

    def __init__(self, workers: Sequence[Worker]):
        self.workers = list(workers)
        self._next = 0

    def healthy(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.healthy]

    def pick(self, exclude: Iterable[Worker] = ()) -> Worker | None:
        """The next healthy Worker in round-robin order, skipping `exclude`; None if none."""
        excluded = list(exclude)
        count = len(self.workers)
        for step in range(count):
            worker = self.workers[(self._next + step) % count]
            if worker.healthy and worker not in excluded:
                self._next = (self._next + step + 1) % count
                return worker
        return None

    def mark_failed(self, worker: Worker, reason: str) -> None:
        if worker.healthy:
            log.warning("Worker %s taken out of rotation: %s", worker.url, reason)
        worker.healthy = False
        worker.last_error = reason

    def record_forwarded(self, worker: Worker) -> None:
        worker.tasks_forwarded += 1

    def record_check(self, worker: Worker, healthy: bool, error: str | None, queue_depth: int | None) -> None:
        if healthy and not worker.healthy:
            log.info("Worker %s is healthy: in rotation", worker.url)
        elif not healthy and worker.healthy:
            log.warning("Worker %s taken out of rotation: %s", worker.url, error)
        worker.healthy = healthy
        worker.last_check = time.time()
        worker.last_error = error
        if queue_depth is not None:
            worker.queue_depth = queue_depth


async def check_worker(
    session: aiohttp.ClientSession, pool: WorkerPool, worker: Worker, timeout: float
) -> None:
    """One `/health` request; its answer decides whether the Worker is in rotation."""
    healthy, error, queue_depth = False, None, None
    try:
        async with session.get(
            f"{worker.url}/health", timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            body = await response.json(content_type=None)
            checks = body.get("checks", {}) if isinstance(body, dict) else {}
            depth = checks.get("queue_depth")
            queue_depth = depth if isinstance(depth, int) else None
            healthy = response.status == 200
            if not healthy:
                failing = {name: value for name, value in checks.items() if value not in ("ok",)}
                error = f"/health answered {response.status}: {failing}"[:500]
    except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
        error = f"/health failed: {describe(failure)}"
    pool.record_check(worker, healthy, error, queue_depth)


async def check_all(session: aiohttp.ClientSession, pool: WorkerPool, timeout: float) -> None:
    await asyncio.gather(*(check_worker(session, pool, worker, timeout) for worker in pool.workers))


async def run_health_checks(
    session: aiohttp.ClientSession, pool: WorkerPool, interval: float, timeout: float
) -> None:
    """Check every Worker each `interval` seconds until cancelled (the first round after one interval)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await check_all(session, pool, timeout)
        except Exception:
            log.exception("health checks failed")


def token_header(token: str | None) -> dict[str, str]:
    """The Authorization header the Hub presents to a Worker with `token` (none without)."""
    return {"Authorization": f"Token {token}"} if token else {}


async def get_worker_json(
    session: aiohttp.ClientSession,
    url: str,
    token: str | None,
    timeout: float,
    content_type: str | None = "application/json",
) -> Any:
    """GET a Worker's JSON route with the Hub's token for it; any answer but 200 raises
    RuntimeError with its status and the start of its body. `content_type` None: a JSON
    body under any declared type."""
    async with session.get(
        url, headers=token_header(token), timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:200]}")
        return await response.json(content_type=content_type)


def describe(error: BaseException) -> str:
    """An exception as one short line: its type, and its message when it has one."""
    return f"{type(error).__name__}: {error}"[:300] if str(error) else type(error).__name__
