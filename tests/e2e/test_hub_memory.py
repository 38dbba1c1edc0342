"""A 1 GiB upload through the Hub process reaches the Worker whole while the Hub's memory stays flat."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import redis

from deploy.processes import wait_hub_ready
from tests.e2e.conftest import NODE_SETTINGS, launch_hub
from tests.support.client import API
from worker.store import Keys

GIB = 1024**3
BLOCK = 1024 * 1024


class RssSampler:
    """Peak resident memory of one process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.baseline = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 1024**2


async def test_one_gib_upload_through_the_hub_keeps_the_hub_memory_flat(worker_nodes, tmp_path: Path):
    # The file's analysis must still be running when the test looks at it, so the limits are long.
    long_running = {"analysis_soft_time_limit_seconds": "620", "analysis_time_limit_seconds": "640"}
    node = worker_nodes(**{**NODE_SETTINGS, **long_running, "visibility_timeout_seconds": "700"})
    hub, hub_url = launch_hub([node.url], tmp_path)
    wait_hub_ready(hub, hub_url)
    # The file asks the test engine to sleep, so the node does not spend the run analyzing 1 GiB.
    head = b"SLEEP:600\n".ljust(BLOCK, b"\0")
    block = os.urandom(BLOCK)
    expected = hashlib.sha1(head)
    for _ in range(GIB // BLOCK - 1):
        expected.update(block)
    boundary = "scanhubhubboundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        ).encode()
        yield head
        for _ in range(GIB // BLOCK - 1):  # generated as it is sent, never whole in memory
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        with RssSampler(hub.pid) as hub_memory:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
                started = time.monotonic()
                response = await session.post(
                    f"{hub_url}{API}/upload",
                    data=body(),
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                )
                elapsed = time.monotonic() - started
                assert response.status == 200, await response.text()
                task_url = (await response.json())["task_url"]
                assert task_url.startswith(node.url)
                async with session.get(task_url) as task:
                    view = await task.json()
        print(
            f"\n1 GiB through the Hub in {elapsed:.1f} s; Hub RSS baseline "
            f"{hub_memory.baseline / 1024**2:.1f} MB, peak {hub_memory.peak / 1024**2:.1f} MB, "
            f"growth {hub_memory.growth_mb:.1f} MB"
        )
        spooled = Path(node.env["SCANHUB_SPOOL_DIR"]) / str(view["task_id"])
        assert view["status"] in ("queued", "analyzing")
        assert spooled.stat().st_size == GIB
        record = redis.Redis.from_url(node.env["SCANHUB_REDIS_URL"], decode_responses=True).hgetall(
            Keys().task(view["task_id"])
        )
        assert record["sha1"] == expected.hexdigest()  # every byte arrived, in order
        assert list((tmp_path / "hub-spool").iterdir()) == []  # the Hub's copy is gone
        assert hub_memory.growth_mb < 100
        async with aiohttp.ClientSession() as session, session.delete(task_url) as deleted:
            assert deleted.status == 200
    finally:
        hub.stop()
