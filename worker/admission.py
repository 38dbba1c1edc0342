"""Admission control: refuse new submissions (503) while the node cannot take them.

A Worker refuses uploads while its queue is at `max_queue_depth` or its spool disk has less
than `min_free_spool_bytes` free. Reading the queue depth and the free space on every upload
would cost a Redis round trip and a statfs each; they are read at most every `max_age`
seconds instead, and each submission admitted in between counts towards the depth, so the
estimate can only err high (refusing a little early, never late) until the next read.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from common.errors import ApiError

Clock = Callable[[], float]


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class Admission:
    def __init__(
        self,
        queue_depth: Callable[[], Awaitable[int]],
        spool_dir: Path,
        *,
        max_queue_depth: int,
        min_free_spool_bytes: int,
        retry_after_seconds: int,
        max_age: float = 0.25,
        clock: Clock = time.monotonic,
        disk_free: Callable[[Path], int] = free_bytes,
    ):
        self.queue_depth, self.spool_dir = queue_depth, spool_dir
        self.max_queue_depth, self.min_free = max_queue_depth, min_free_spool_bytes
        self.retry_after = {"Retry-After": str(retry_after_seconds)}
        self.max_age, self.clock, self.disk_free = max_age, clock, disk_free
        self.read_at = float("-inf")
        self.depth = 0
        self.free = 0

    async def check(self) -> None:
        """Raise 503 with Retry-After when the node is full; otherwise return at once."""
        if self.clock() - self.read_at > self.max_age:
            self.depth = await self.queue_depth()
            self.free = self.disk_free(self.spool_dir)
            self.read_at = self.clock()
        if self.depth >= self.max_queue_depth:
            message = (
                f"the Worker is overloaded: {self.depth} tasks are queued (limit {self.max_queue_depth})"
            )
            raise ApiError(503, message, self.retry_after)
        if self.free < self.min_free:
            raise ApiError(503, "the Worker's spool disk is full", self.retry_after)

    def admitted(self) -> None:
        """Count a submission accepted since the last read."""
        self.depth += 1
