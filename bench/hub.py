"""Upload throughput through the Hub next to straight to one Worker: the Hub's cost as a measured ratio.

    python -m bench.hub                       # starts Redis, one Worker node and a Hub in front of it
    python -m bench.hub --duration 10 --concurrency 16 --size 1048576
    python -m bench.hub --hub-url http://127.0.0.1:8080 --worker-url http://127.0.0.1:8081

An asyncio + aiohttp load generator keeps `concurrency` uploads in flight for `duration`
seconds against each target in turn and counts the ones answered with a task_url. With its
own cluster the Hub fronts exactly the Worker measured directly, so the ratio is the Hub's
overhead (its spool write and read plus one more HTTP hop); against a Hub with several
Workers the ratio measures scaling instead. Between the two runs the Worker's analysis queue
is left to drain, so neither run competes with the other's backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from deploy.processes import (
    WorkerNode,
    free_port,
    hub_env,
    start_hub,
    start_redis,
    wait_hub_ready,
    worker_env,
)

UPLOAD = "/api/tiscale/v1/upload"


@dataclass
class Run:
    target: str
    seconds: float
    accepted: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def line(self) -> str:
        return (
            f"{self.target:<8} {self.files_per_second:8.1f} files/s  "
            f"p50 {self.percentile(0.5) * 1000:6.1f} ms  p95 {self.percentile(0.95) * 1000:6.1f} ms  "
            f"({self.accepted} accepted, {self.failed} failed in {self.seconds:.1f} s)"
        )


async def generate_load(target: str, base_url: str, duration: float, concurrency: int, content: bytes) -> Run:
    """`concurrency` clients uploading back to back until `duration` is over."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = loop.time()
        deadline = started + duration
        run = Run(target, duration)

        async def client(number: int) -> None:
            sent = 0
            while loop.time() < deadline:
                form = aiohttp.FormData()
                form.add_field("file", content, filename=f"bench-{number}-{sent}.bin")
                sent += 1
                began = time.perf_counter()
                try:
                    async with session.post(f"{base_url}{UPLOAD}", data=form) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    run.accepted += 1
                    run.latencies.append(time.perf_counter() - began)
                else:
                    run.failed += 1

        await asyncio.gather(*(client(number) for number in range(concurrency)))
        run.seconds = loop.time() - started
        return run


async def wait_for_empty_queue(worker_url: str, timeout: float) -> None:
    """Until the Worker's /health reports an empty analysis queue (or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{worker_url}/health") as response:
                    checks = (await response.json()).get("checks", {})
                if checks.get("queue_depth") == 0:
                    return
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.2)
    print(f"  (the Worker's queue did not drain within {timeout:.0f} s; going on)", file=sys.stderr)


@contextmanager
def own_cluster(celery_concurrency: int) -> Iterator[tuple[str, str]]:
    """One Redis, one Worker node and a Hub in front of it, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="scanhub-bench-") as directory:
        state = Path(directory)
        base = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
        base.pop("REDIS_URL", None)
        redis_server, redis_url = start_redis(state / "redis")
        port = free_port()
        env = worker_env(
            base,
            redis_url,
            port,
            state / "spool",
            SCANHUB_CELERY_CONCURRENCY=str(celery_concurrency),
            SCANHUB_LOG_LEVEL="WARNING",
        )
        (state / "spool").mkdir()
        node = WorkerNode("bench-worker", f"http://127.0.0.1:{port}", env, log_dir=state)
        hub = None
        try:
            node.start(wait=True, timeout=90)
            hub_port = free_port()
            hub = start_hub(
                hub_env(base, hub_port, [node.url], state / "hub-spool", SCANHUB_LOG_LEVEL="WARNING"),
                log_dir=state,
            )
            hub_url = f"http://127.0.0.1:{hub_port}"
            wait_hub_ready(hub, hub_url)
            yield hub_url, node.url
        finally:
            if hub is not None:
                hub.stop()
            node.stop()
            redis_server.stop()


async def compare(hub_url: str, worker_url: str, args: argparse.Namespace) -> float:
    content = os.urandom(args.size)
    print(
        f"{args.rounds} x {args.duration:.0f} s per target, "
        f"{args.concurrency} concurrent uploads of {args.size} bytes",
        flush=True,
    )
    totals = {"direct": Run("direct", 0.0), "via hub": Run("via hub", 0.0)}
    # Alternating rounds, so warm-up and background analysis do not favour one target.
    for _ in range(args.rounds):
        for target, url in (("direct", worker_url), ("via hub", hub_url)):
            await wait_for_empty_queue(worker_url, args.drain_timeout)
            run = await generate_load(target, url, args.duration, args.concurrency, content)
            print(run.line(), flush=True)
            total = totals[target]
            total.seconds += run.seconds
            total.accepted += run.accepted
            total.failed += run.failed
            total.latencies += run.latencies
    direct, via_hub = totals["direct"], totals["via hub"]
    if args.rounds > 1:
        print("in all:")
        print(direct.line())
        print(via_hub.line())
    ratio = via_hub.files_per_second / direct.files_per_second if direct.files_per_second else float("nan")
    overhead = statistics.median(via_hub.latencies or [0]) - statistics.median(direct.latencies or [0])
    print(f"hub / direct throughput ratio: {ratio:.2f}  (median latency added: {overhead * 1000:.1f} ms)")
    return ratio


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="direct/hub run pairs (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="uploads in flight (default 8)")
    parser.add_argument("--size", type=int, default=64 * 1024, help="bytes per file (default 65536)")
    parser.add_argument("--hub-url", help="an existing Hub (then --worker-url too)")
    parser.add_argument("--worker-url", help="an existing Worker to compare with")
    parser.add_argument("--celery-concurrency", type=int, default=1, help="own cluster's analysis processes")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if bool(args.hub_url) != bool(args.worker_url):
        parser.error("give both --hub-url and --worker-url, or neither")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.hub_url:
        asyncio.run(compare(args.hub_url.rstrip("/"), args.worker_url.rstrip("/"), args))
        return 0
    print("starting Redis, one Worker node and a Hub ...", flush=True)
    with own_cluster(args.celery_concurrency) as (hub_url, worker_url):
        asyncio.run(compare(hub_url, worker_url, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
