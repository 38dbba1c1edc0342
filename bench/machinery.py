"""What the machinery around the engine costs, in CPU per file, measured with psutil.

`cpu_times_of` reads a process's CPU (user + system) with its live children and the children
it has reaped (a Celery worker's pool processes, recycled or not). `CpuWatch` takes those
readings before and after a run for every process of the cluster.

`measure_worker` isolates the Worker API's and Celery's shares on one Worker node:
1. its Celery worker (and pool) is stopped with SIGSTOP, so uploads only queue;
2. `uploads` small files are sent to its API: the API's CPU over them is the CPU per upload,
   with no poll and no analysis mixed in;
3. the tasks, all still queued, are polled `polls` times: the API's CPU per poll of a
   pending task;
4. Celery is resumed (SIGCONT) and drains the queue: its CPU per job, less the engine's own
   CPU per file on the same files (measured in this process beforehand), is Celery's
   per-job overhead.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import aiohttp
import psutil

from bench.corpus import Sample
from bench.load import API, MULTIPART, multipart_body


def cpu_times_of(pid: int) -> float:
    """CPU seconds of `pid`: its own, its reaped children's, and its live descendants'."""
    try:
        process = psutil.Process(pid)
        own = process.cpu_times()
        total = own.user + own.system + own.children_user + own.children_system
        for child in process.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


class CpuWatch:
    """CPU seconds each named process spent between `__enter__` and `__exit__`; the load
    generator (this process) is counted as `client`."""

    def __init__(self, pids: dict[str, int]):
        self.pids = {**pids, "client": os.getpid()}
        self.before: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def __enter__(self) -> CpuWatch:
        self.before = {name: cpu_times_of(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.spent = {name: cpu_times_of(pid) - self.before[name] for name, pid in self.pids.items()}

    def per_item_ms(self, count: int) -> dict[str, float | None]:
        return {
            name: round(seconds / count * 1000, 3) if count else None for name, seconds in self.spent.items()
        }


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """`pid` and all its descendants held with SIGSTOP, resumed with SIGCONT on leaving."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            with suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)


async def upload_all(url: str, samples: list[Sample], count: int, concurrency: int = 16) -> list[str]:
    """`count` uploads (the samples, cycled) to `url`; their task URLs."""
    cycle = itertools.cycle(samples)
    urls: list[str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(sample: Sample) -> None:
            body = multipart_body(sample)
            async with session.post(f"{url}{API}/upload", data=body, headers=MULTIPART) as response:
                if response.status != 200:
                    raise RuntimeError(f"upload answered {response.status}: {await response.text()}")
                urls.append((await response.json())["task_url"])

        pending = [next(cycle) for _ in range(count)]
        for start in range(0, count, concurrency):
            await asyncio.gather(*(one(sample) for sample in pending[start : start + concurrency]))
    return urls


async def poll_all(task_urls: list[str], polls: int, concurrency: int = 16) -> int:
    """`polls` GETs spread over `task_urls`; how many answered "not processed yet"."""
    pending = 0
    cycle = itertools.cycle(task_urls)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(task_url: str) -> None:
            nonlocal pending
            async with session.get(task_url) as response:
                view = await response.json()
                pending += not view.get("processed")

        for start in range(0, polls, concurrency):
            await asyncio.gather(*(one(next(cycle)) for _ in range(min(concurrency, polls - start))))
    return pending


def finished_tasks(url: str) -> float:
    """Tasks the node has finished (done or failed), from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("scanhub_tasks_finished{")
    )


def wait_finished(url: str, count: float, timeout: float = 300) -> None:
    """Until the node has finished `count` tasks (not merely started them: a drained queue
    still has one task per pool process running)."""
    from deploy.processes import wait_until

    wait_until(lambda: finished_tasks(url) >= count, timeout, interval=0.05, what=f"{count:g} finished tasks")


def measure_worker(
    node_url: str,
    pids: dict[str, int],
    samples: list[Sample],
    engine_cpu_ms: float,
    uploads: int = 300,
    polls: int = 3000,
) -> dict[str, Any]:
    """The Worker API's CPU per upload and per pending poll, and Celery's CPU per job beyond
    the engine's `engine_cpu_ms`, on one node; `pids` names its `api`, `celery` and `redis`."""
    finished_before = finished_tasks(node_url)
    with stopped(pids["celery"]):
        with CpuWatch(pids) as upload_cpu:
            task_urls = asyncio.run(upload_all(node_url, samples, uploads))
        with CpuWatch(pids) as poll_cpu:
            still_pending = asyncio.run(poll_all(task_urls, polls))
    started = time.monotonic()
    with CpuWatch(pids) as job_cpu:
        wait_finished(node_url, finished_before + uploads)
    upload_ms, poll_ms, job_ms = (
        upload_cpu.per_item_ms(uploads),
        poll_cpu.per_item_ms(polls),
        job_cpu.per_item_ms(uploads),
    )
    celery_ms = job_ms["celery"] or 0.0
    return {
        "uploads": uploads,
        "polls": polls,
        "polls_answered_pending": still_pending,
        "api_cpu_ms_per_upload": upload_ms["api"],
        "redis_cpu_ms_per_upload": upload_ms["redis"],
        "client_cpu_ms_per_upload": upload_ms["client"],
        "api_cpu_ms_per_pending_poll": poll_ms["api"],
        "celery_cpu_ms_per_job": celery_ms,
        "redis_cpu_ms_per_job": job_ms["redis"],
        "engine_cpu_ms_per_file": round(engine_cpu_ms, 3),
        "celery_overhead_ms_per_job": round(celery_ms - engine_cpu_ms, 3),
        "bare_aiohttp_cpu_ms_per_request": bare_aiohttp_cpu_ms(polls),
        "drain_seconds": round(time.monotonic() - started, 2),
    }


# The least an aiohttp server does per request: route, answer a small JSON body (with uvloop,
# as the services run). Its CPU per request is the floor under the API's per-poll figure.
BARE_SERVER = """
import sys
from aiohttp import web
async def answer(request):
    return web.json_response({"processed": False, "status": "queued"})
app = web.Application()
app.router.add_get("/task/{task_id}", answer)
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def bare_aiohttp_cpu_ms(polls: int = 3000) -> float:
    """The CPU per request of a bare aiohttp server, measured as the pending polls are."""
    import subprocess
    import sys

    from deploy.processes import free_port, wait_until

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        urls = [f"http://127.0.0.1:{port}/task/{number}" for number in range(100)]

        def answering() -> bool:
            try:
                asyncio.run(poll_all(urls[:1], 1))
                return True
            except aiohttp.ClientError:
                return False

        wait_until(answering, 30, interval=0.1, what="the bare aiohttp server")
        asyncio.run(poll_all(urls, min(500, polls)))  # warm up
        with CpuWatch({"server": server.pid}) as cpu:
            asyncio.run(poll_all(urls, polls))
        return cpu.per_item_ms(polls)["server"] or 0.0
    finally:
        server.terminate()
        server.wait(10)


def node_pids(cluster: Any, index: int = 0) -> dict[str, int]:
    """The processes of one Worker node of a `LocalCluster` (its Redis when it has its own)."""
    node = cluster.nodes[index]
    pids = {"api": node.api.pid, "celery": node.celery.pid}
    if cluster.redis_servers:
        pids["redis"] = cluster.redis_servers[index].pid
    return pids
