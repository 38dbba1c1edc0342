"""A load generator for the Worker/Hub API: upload, poll until processed, measure.

Closed loop (`concurrency` clients each uploading and polling one file at a time) or open
loop (`rate` uploads per second, each polled by its own coroutine, capped by
`concurrency`). Runs for a fixed `duration`; files whose upload started during `warmup`
are left out of the figures. Latency is from the start of the upload to the first poll
that sees `processed`.

Polling is what a considerate client does: the first poll comes at about the latency
recently seen (a moving average), later ones every `poll_interval`. The latency figure
stays accurate to one interval, and the load generator does not spend the machine's CPU,
which the cluster under test shares, on polls that could only answer "not yet".
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from bench.corpus import Sample

API = "/api/tiscale/v1"


@dataclass
class LoadResult:
    target: str
    duration: float
    accepted: int = 0
    completed: int = 0
    failed_tasks: int = 0
    bytes_accepted: int = 0
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def percentile(self, fraction: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def record(
        self,
        sample: Sample,
        began: float,
        outcome: tuple[int, str, float | None],
        measure_from: float,
        stop_at: float,
    ) -> None:
        """One upload's outcome (upload status, task status, latency). Uploads count by when
        they began, completions by when they finished: both only inside the measured window
        [measure_from, stop_at), so neither warm-up nor the final drain inflates a rate."""
        status, task_status, latency = outcome
        began_inside = measure_from <= began < stop_at
        if status != 200:
            if began_inside:
                self.errors[status] += 1
            return
        if began_inside:
            self.accepted += 1
            self.bytes_accepted += len(sample.content)
        if latency is None:
            return
        if measure_from <= began + latency <= stop_at:
            self.completed += task_status == "done"
            self.failed_tasks += task_status == "failed"
        if began_inside:
            self.latencies.append(latency)

    def summary(self) -> dict:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 1)

        return {
            "target": self.target,
            "duration_s": round(self.duration, 2),
            "accepted_per_s": round(self.accepted / self.duration, 1),
            "completed_per_s": round(self.completed / self.duration, 1),
            "mb_per_s": round(self.bytes_accepted / self.duration / 1e6, 2),
            "failed_tasks": self.failed_tasks,
            "errors_by_status": dict(self.errors),
            "latency_ms": {
                "p50": ms(self.percentile(0.5)),
                "p90": ms(self.percentile(0.9)),
                "p99": ms(self.percentile(0.99)),
                "max": ms(max(self.latencies) if self.latencies else None),
            },
        }


BOUNDARY = "scanhub-bench-7d1f0c"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@functools.lru_cache(maxsize=8192)
def multipart_body(sample: Sample) -> bytes:
    """The upload body of one sample, built once: the load generator shares the cluster's
    cores, and building a form per request would bill the cluster for the client's work."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{sample.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + sample.content + f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass
class LatencyEstimate:
    """A moving average of recent latencies: when the first poll is worth making."""

    seconds: float = 0.0
    weight: float = 0.1

    def update(self, latency: float) -> None:
        self.seconds = (
            latency if not self.seconds else (1 - self.weight) * self.seconds + self.weight * latency
        )

    def first_poll_after(self, poll_interval: float) -> float:
        return max(poll_interval, 0.8 * self.seconds)


async def upload_and_wait(
    session: aiohttp.ClientSession,
    base_url: str,
    sample: Sample,
    poll_interval: float,
    deadline: float,
    estimate: LatencyEstimate | None = None,
) -> tuple[int, str, float | None]:
    """Returns (upload status, final task status or '', latency seconds or None)."""
    estimate = estimate or LatencyEstimate()
    started = time.monotonic()
    try:
        async with session.post(
            f"{base_url}{API}/upload", data=multipart_body(sample), headers=MULTIPART
        ) as response:
            if response.status != 200:
                await response.read()
                return response.status, "", None
            task_url = (await response.json())["task_url"]
    except aiohttp.ClientError:
        return 0, "", None
    wait = estimate.first_poll_after(poll_interval) - (time.monotonic() - started)
    while time.monotonic() < deadline:
        await asyncio.sleep(max(0.0, wait))
        wait = poll_interval
        try:
            async with session.get(task_url) as response:
                view = await response.json() if response.status == 200 else {}
        except aiohttp.ClientError:
            continue
        if view.get("processed"):
            latency = time.monotonic() - started
            estimate.update(latency)
            return 200, view.get("status", ""), latency
    return 200, "", None


async def run_load(
    base_url: str,
    samples: list[Sample],
    duration: float,
    warmup: float = 1.0,
    concurrency: int = 16,
    rate: float | None = None,
    poll_interval: float = 0.02,
    drain_timeout: float = 30.0,
) -> LoadResult:
    result = LoadResult(target=base_url, duration=duration)
    cycle = itertools.cycle(samples)
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + duration
    limit = asyncio.Semaphore(concurrency)
    estimate = LatencyEstimate()

    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(sample: Sample) -> None:
            async with limit:
                began = time.monotonic()
                outcome = await upload_and_wait(
                    session, base_url, sample, poll_interval, stop_at + drain_timeout, estimate
                )
                result.record(sample, began, outcome, measure_from, stop_at)

        if rate:
            pending = set()
            next_at = start
            while time.monotonic() < stop_at:
                task = asyncio.create_task(one(next(cycle)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*pending)
        else:

            async def client() -> None:
                while time.monotonic() < stop_at:
                    await one(next(cycle))

            await asyncio.gather(*(client() for _ in range(concurrency)))
    return result


def callback_body(sample: Sample, callback_url: str) -> bytes:
    """`multipart_body` plus a `user_data` part asking for a callback to `callback_url`."""
    user_data = f'{{"callback": {{"url": "{callback_url}", "report_type": "small"}}}}'
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="user_data"\r\n\r\n{user_data}\r\n'
    ).encode()
    return part + multipart_body(sample)


async def run_callback_load(
    base_url: str,
    samples: list[Sample],
    duration: float,
    warmup: float = 1.0,
    concurrency: int = 16,
    drain_timeout: float = 30.0,
) -> LoadResult:
    """Closed loop without polling: each upload asks for a callback to a receiver this
    function serves on loopback, and a client's next upload starts when the callback of its
    last one has arrived. Latency is from the start of the upload to the callback's arrival.
    The Worker's outputs worker must be allowed to reach 127.0.0.1 (the outbound policy)."""
    from aiohttp import web

    result = LoadResult(target=base_url, duration=duration)
    arrived: dict[str, asyncio.Future[str]] = {}

    async def receive(request: web.Request) -> web.Response:
        task_id = request.headers.get("X-Scanhub-Task-Id", "")
        view = await request.json()
        waiter = arrived.setdefault(task_id, asyncio.get_running_loop().create_future())
        if not waiter.done():
            waiter.set_result(view.get("status", ""))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/callback", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    callback_url = f"http://127.0.0.1:{port}/callback"
    cycle = itertools.cycle(samples)
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + duration
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency * 2)) as session:

            async def upload_and_wait_callback(sample: Sample, began: float) -> tuple[int, str, float | None]:
                try:
                    body = callback_body(sample, callback_url)
                    async with session.post(
                        f"{base_url}{API}/upload", data=body, headers=MULTIPART
                    ) as response:
                        if response.status != 200:
                            await response.read()
                            return response.status, "", None
                        task_id = (await response.json())["task_url"].rstrip("/").rsplit("/", 1)[-1]
                except aiohttp.ClientError:
                    return 0, "", None
                waiter = arrived.setdefault(task_id, asyncio.get_running_loop().create_future())
                try:
                    status = await asyncio.wait_for(
                        waiter, max(0.0, stop_at + drain_timeout - time.monotonic())
                    )
                except TimeoutError:
                    return 200, "", None
                finally:
                    arrived.pop(task_id, None)
                return 200, status, time.monotonic() - began

            async def one(sample: Sample) -> None:
                began = time.monotonic()
                outcome = await upload_and_wait_callback(sample, began)
                result.record(sample, began, outcome, measure_from, stop_at)

            async def client() -> None:
                while time.monotonic() < stop_at:
                    await one(next(cycle))

            await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        await runner.cleanup()
    return result
