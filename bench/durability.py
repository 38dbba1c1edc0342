"""Durability benchmark: what it costs to hand out a task_url only once the task is on disk.

Accepting a submission writes its task record and its Celery job to the node's Redis. With
`appendfsync everysec` (Redis's default for an append-only file) a Redis killed within a
second of the answer loses both. Two ways to close that window, measured here against a real
Valkey server on this machine, each with the same accept path the Worker API runs (the task
store's create script, then the job through Celery's publisher):

- `everysec`: no wait (what the window costs nothing to keep open);
- `always`: Redis fsyncs the file before it answers any write;
- `waitaof`: `everysec`, and the API waits with `WAITAOF 1 0` until the file holds its last
  write (a mark on the record, written after the job, so the job is covered too).

With `always`, each write's reply comes after its fsync, so the API's answer (sent after the
record's and the job's replies) already implies both are on disk. Measured on 2 cores:
`always` keeps ~0.9 of `everysec`'s accepts/s while WAITAOF waits for the next background
fsync (~100 ms each): the launcher and the deployments run Redis with `appendfsync always`.

    python -m bench.durability [--tasks 1500] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from deploy.processes import free_port, redis_server_binary, wait_until
from worker.api import celery_sender
from worker.publisher import JobPublisher
from worker.settings import WorkerSettings
from worker.store import Keys, TaskStore

MODES = {
    "everysec": (["--appendonly", "yes", "--appendfsync", "everysec"], False),
    "always": (["--appendonly", "yes", "--appendfsync", "always"], False),
    "waitaof": (["--appendonly", "yes", "--appendfsync", "everysec"], True),
}


def start_server(directory: Path, arguments: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [str(redis_server_binary()), "--port", str(port), "--dir", str(directory), "--save", ""]
    process = subprocess.Popen([*command, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"

    def ping() -> bool:
        import redis

        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())

    wait_until(ping, 15, what="Valkey")
    return process, url


async def wait_until_in_aof(store: TaskStore, task_id: int) -> None:
    """A write after the job, then WAITAOF on the same connection: it returns once the
    append-only file holds that write and so everything before it."""
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.hset(store.keys.task(task_id), "job_sent", int(time.time()))
        pipe.execute_command("WAITAOF", 1, 0, 2000)
        _, (local, _replicas) = await pipe.execute()
    if int(local) < 1:
        raise RuntimeError("WAITAOF timed out")


async def accept_many(url: str, wait_for_aof: bool, tasks: int, concurrency: int) -> dict[str, Any]:
    settings = WorkerSettings(redis_url=url)
    client = aioredis.Redis.from_url(url, decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    publisher = JobPublisher(celery_sender(settings), settings.max_job_batch)
    latencies: list[float] = []
    remaining = iter(range(tasks))

    async def one_client() -> None:
        for _ in remaining:
            started = time.perf_counter()
            task_id = await store.create(int(time.time()), file_name="bench.bin", size=1)
            await publisher.publish(task_id)
            if wait_for_aof:
                await wait_until_in_aof(store, task_id)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await publisher.close()
    await client.aclose()
    latencies.sort()
    return {
        "accepted_per_second": round(tasks / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def measure(tasks: int, concurrency: int) -> dict[str, dict[str, Any]]:
    results = {}
    for mode, (arguments, durable) in MODES.items():
        directory = Path(tempfile.mkdtemp(prefix=f"scanhub-durability-{mode}-"))
        process, url = start_server(directory, arguments)
        try:
            results[mode] = asyncio.run(accept_many(url, durable, tasks, concurrency))
        finally:
            process.terminate()
            process.wait(10)
            shutil.rmtree(directory, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args(argv)
    results = measure(options.tasks, options.concurrency)
    base = results["everysec"]["accepted_per_second"]
    print(f"{options.tasks} accepts, {options.concurrency} at a time (record + Celery job each):")
    print(f"  {'mode':<10} {'accepts/s':>10} {'vs everysec':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, figures in results.items():
        ratio = figures["accepted_per_second"] / base
        print(
            f"  {mode:<10} {figures['accepted_per_second']:>10} {ratio:>12.2f} "
            f"{figures['p50_ms']:>8} {figures['p99_ms']:>8}"
        )
    return results


if __name__ == "__main__":
    main()
