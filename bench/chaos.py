"""Chaos: what each fault costs a running cluster, printed as figures.

A Hub and two Worker nodes run as processes (the same `LocalCluster` as `make run`, with its
supervisor restarting whatever dies) under a steady load of small files sent to the Hub,
each with a unique id in `custom_data`. One fault at a time is injected, with a pause to
recover before the next. When the load stops, every accepted task (a `task_url` was
answered) is followed until it ends, and for each fault's window the suite prints:

- accepted, ended done, ended failed, and lost: accepted and never ended (must be 0);
- analysed twice: ids that ended done in more than one task (the Hub retried a file a
  Worker had in fact taken);
- time to recover: from the fault until the Hub and that node answer /health with 200;
- what clients saw: refusals by HTTP status (a 503 with Retry-After is sent again by a
  well-behaved client; this load generator does not resend, to count them).

    python -m bench.chaos            # every fault (~5 minutes), `make chaos`
    python -m bench.chaos --short    # three faults (~1 minute), what CI runs

Exit status 1 when any accepted task was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from deploy.launcher import LocalCluster, Supervisor
from deploy.processes import free_port, http_status
from worker.analysis.engine import Submission, analyze_file

API = "/api/tiscale/v1"
# Each analysis takes at least this long, so a kill lands while files are being analyzed.
ANALYSIS_SECONDS = 0.3
RESULTS = Path(__file__).resolve().parent / "results"


def slow_engine(submission: Submission) -> list[dict[str, Any]]:
    """The real engine, after a pause: the chaos suite's SCANHUB_ENGINE."""
    time.sleep(ANALYSIS_SECONDS)
    return analyze_file(submission)


@dataclass
class Sent:
    number: int
    at: float
    status: int = 0
    task_url: str = ""
    final: str = ""  # done, failed, or lost


@dataclass
class FaultFigures:
    fault: str
    accepted: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    analysed_twice: int = 0
    recover_seconds: float = 0.0
    refused: dict[str, int] = field(default_factory=dict)


class Load:
    """Sends one small file to the Hub every `1 / rate` seconds from its own thread."""

    def __init__(self, hub_url: str, rate: float):
        self.hub_url, self.interval = hub_url, 1 / rate
        self.sent: list[Sent] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.run()), daemon=True)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            pending: set[asyncio.Task[None]] = set()
            number = 0
            while not self.stopping.is_set():
                task = asyncio.create_task(self.send(session, number))
                pending.add(task)
                task.add_done_callback(pending.discard)
                number += 1
                await asyncio.sleep(self.interval)
            await asyncio.gather(*pending, return_exceptions=True)

    async def send(self, session: aiohttp.ClientSession, number: int) -> None:
        record = Sent(number, time.monotonic())
        self.sent.append(record)
        form = aiohttp.FormData()
        form.add_field("file", f"chaos file {number}\n".encode(), filename=f"{number}.txt")
        form.add_field("custom_data", json.dumps({"chaos_id": number}))
        try:
            async with session.post(f"{self.hub_url}{API}/upload", data=form) as response:
                record.status = response.status
                if response.status == 200:
                    record.task_url = (await response.json())["task_url"]
        except (aiohttp.ClientError, TimeoutError, OSError):
            record.status = -1  # no answer at all (the Hub itself was down)


def healthy(url: str) -> bool:
    try:
        return http_status(f"{url}/health", timeout=2) == 200
    except OSError:
        return False


def wait_recovered(cluster: LocalCluster, node_url: str, started: float, limit: float = 90) -> float:
    while time.monotonic() - started < limit:
        if healthy(cluster.hub_url) and healthy(node_url):
            return time.monotonic() - started
        time.sleep(0.2)
    return float("inf")


def pool_process(cluster: LocalCluster, index: int) -> None:
    celery = cluster.nodes[index].celery
    if celery is None:
        return
    children = psutil.Process(celery.pid).children()
    if children:
        children[0].send_signal(signal.SIGKILL)


def kill(part: Any) -> None:
    if part is not None and part.running():
        part.signal_group(signal.SIGKILL)


def kill_node(cluster: LocalCluster, index: int) -> None:
    node = cluster.nodes[index]
    for part in (node.api, node.celery, cluster.redis_servers[index]):
        kill(part)


def freeze(part: Any, seconds: float) -> None:
    part.signal_group(signal.SIGSTOP)
    time.sleep(seconds)
    part.signal_group(signal.SIGCONT)


# name -> (what it does to node 0 or 1 of the cluster, which node's health marks recovery)
Fault = tuple[Callable[[LocalCluster], None], int]
FAULTS: dict[str, Fault] = {
    "celery pool process": (lambda cluster: pool_process(cluster, 0), 0),
    "celery main process": (lambda cluster: kill(cluster.nodes[1].celery), 1),
    "worker API process": (lambda cluster: kill(cluster.nodes[0].api), 0),
    "worker Redis (restart from AOF)": (lambda cluster: kill(cluster.redis_servers[1]), 1),
    "whole node at once": (lambda cluster: kill_node(cluster, 0), 0),
    "frozen worker API (10 s)": (lambda cluster: freeze(cluster.nodes[1].api, 10), 1),
    "hub": (lambda cluster: kill(cluster.hub), 0),
}
SHORT = ("celery main process", "worker Redis (restart from AOF)", "frozen worker API (10 s)")


def chaos_environment(state: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
    environment.pop("REDIS_URL", None)
    environment.update(
        {
            "SCANHUB_ENGINE": "bench.chaos:slow_engine",
            "SCANHUB_CELERY_CONCURRENCY": "2",
            "SCANHUB_CELERY_HEARTBEAT_SECONDS": "0.5",
            "SCANHUB_HEALTH_INTERVAL_SECONDS": "0.5",
            "SCANHUB_WORKER_RESPONSE_TIMEOUT_SECONDS": "3",
            "SCANHUB_REQUEUE_STRANDED_AFTER_SECONDS": "5",
            "SCANHUB_SWEEP_INTERVAL_SECONDS": "1",
            "SCANHUB_MAX_JOB_BATCH": "1",
        }
    )
    return environment


async def final_states(sent: list[Sent], deadline: float) -> None:
    """Follow every accepted task until it ends (or the deadline: then it is lost)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for record in (item for item in sent if item.task_url):
            while not record.final:
                try:
                    async with session.get(record.task_url) as response:
                        view = await response.json() if response.status == 200 else {}
                except (aiohttp.ClientError, TimeoutError, OSError):
                    view = {}
                if view.get("status") in ("done", "failed"):
                    record.final = view["status"]
                elif time.monotonic() > deadline:
                    record.final = "lost"
                else:
                    await asyncio.sleep(0.2)


async def ids_done_twice(cluster: LocalCluster) -> Counter[int]:
    """How many tasks, across every Worker, ended done for each chaos id."""
    counts: Counter[int] = Counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for node in cluster.nodes:
            async with session.get(f"{node.url}{API}/task") as response:
                listed = await response.json()
            for entry in listed:
                async with session.get(
                    f"{node.url}{API}/task/{entry['task_id']}?report_type=small"
                ) as response:
                    view = await response.json()
                custom = view.get("custom_data")
                if view.get("status") == "done" and isinstance(custom, dict) and "chaos_id" in custom:
                    counts[int(custom["chaos_id"])] += 1
    return counts


def run(faults: tuple[str, ...], rate: float, settle: float) -> list[FaultFigures]:
    state = Path(tempfile.mkdtemp(prefix="scanhub-chaos-"))
    cluster = LocalCluster(
        state / "cluster", workers=2, hub_port=free_port(), worker_port=free_port(count=2),
        environment=chaos_environment(state), log_dir=state,
    )  # fmt: skip
    stop = threading.Event()
    supervisor = threading.Thread(target=lambda: None)
    windows: list[tuple[str, float, float, float]] = []  # fault, start, end, recovery
    load = None
    try:
        cluster.start()
        supervisor = threading.Thread(
            target=Supervisor(cluster.processes()).run, args=(stop.is_set, stop.wait)
        )
        supervisor.start()
        load = Load(cluster.hub_url, rate)
        load.thread.start()
        time.sleep(settle)
        for name in faults:
            action, node_index = FAULTS[name]
            started = time.monotonic()
            print(f"fault: {name}", flush=True)
            action(cluster)
            recovery = wait_recovered(cluster, cluster.nodes[node_index].url, started)
            time.sleep(settle)
            windows.append((name, started, time.monotonic(), recovery))
        load.stopping.set()
        load.thread.join(60)
        asyncio.run(final_states(load.sent, time.monotonic() + 120))
        twice = asyncio.run(ids_done_twice(cluster))
    finally:
        if load is not None:
            load.stopping.set()
        stop.set()
        if supervisor.is_alive():
            supervisor.join(10)
        cluster.stop()
    return figures(windows, load.sent, twice)


def figures(
    windows: list[tuple[str, float, float, float]], sent: list[Sent], twice: Counter[int]
) -> list[FaultFigures]:
    results = []
    for name, started, ended, recovery in windows:
        inside = [record for record in sent if started <= record.at < ended]
        result = FaultFigures(name, recover_seconds=round(recovery, 1))
        for record in inside:
            if record.status == 200:
                result.accepted += 1
                result.done += record.final == "done"
                result.failed += record.final == "failed"
                result.lost += record.final == "lost"
                result.analysed_twice += twice[record.number] > 1
            else:
                key = "no answer" if record.status == -1 else str(record.status)
                result.refused[key] = result.refused.get(key, 0) + 1
        results.append(result)
    return results


def print_table(results: list[FaultFigures]) -> None:
    print(
        f"\n{'fault':<34}{'accepted':>9}{'done':>6}{'failed':>7}{'lost':>5}{'twice':>6}"
        f"{'recover s':>10}  refused (status: count)"
    )
    for row in results:
        refused = ", ".join(f"{status}: {count}" for status, count in sorted(row.refused.items())) or "-"
        print(
            f"{row.fault:<34}{row.accepted:>9}{row.done:>6}{row.failed:>7}{row.lost:>5}"
            f"{row.analysed_twice:>6}{row.recover_seconds:>10}  {refused}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="three faults, short pauses (CI)")
    parser.add_argument("--rate", type=float, default=None, help="files per second (default 8, short 5)")
    options = parser.parse_args(argv)
    faults = SHORT if options.short else tuple(FAULTS)
    rate = options.rate or (5 if options.short else 8)
    results = run(faults, rate, settle=3 if options.short else 8)
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps([asdict(row) for row in results], indent=2))
    print(f"\nfigures written to {out}")
    return 1 if any(row.lost for row in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
