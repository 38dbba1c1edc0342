"""End-to-end figures: the cluster started as `make run` does, loaded through the Hub and
straight to one Worker, with every process's memory watched while it runs."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.corpus import Sample
from bench.load import LoadResult, run_callback_load, run_load
from deploy.launcher import LocalCluster
from deploy.processes import free_port


@dataclass
class MemoryWatch:
    """Samples the RSS of a set of processes (and their children) while a run goes on."""

    pids: dict[str, int]
    interval: float = 0.2
    baseline: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @staticmethod
    def rss(pid: int) -> int:
        try:
            process = psutil.Process(pid)
            return process.memory_info().rss + sum(
                child.memory_info().rss for child in process.children(recursive=True)
            )
        except psutil.NoSuchProcess:
            return 0

    def __enter__(self) -> MemoryWatch:
        self.baseline = {name: self.rss(pid) for name, pid in self.pids.items()}
        self.peak = dict(self.baseline)

        def sample() -> None:
            while not self._stop.wait(self.interval):
                for name, pid in self.pids.items():
                    self.peak[name] = max(self.peak[name], self.rss(pid))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "baseline_mb": round(self.baseline[name] / 1024**2, 1),
                "peak_mb": round(self.peak[name] / 1024**2, 1),
                "growth_mb": round((self.peak[name] - self.baseline[name]) / 1024**2, 1),
            }
            for name in self.pids
        }


def add_duration_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of measured load per run (10; 2 with --quick)"
    )


def run_seconds(options: argparse.Namespace) -> float:
    """The measured seconds of each load run: --duration, else 2 with --quick, else 10."""
    return float(options.duration) if options.duration is not None else 2.0 if options.quick else 10.0


def cluster_pids(cluster: LocalCluster) -> dict[str, int]:
    """Each service by name; a Celery worker's figure includes its pool processes."""
    return {part.name: part.pid for part in cluster.processes()}


@dataclass
class ClusterBench:
    """A running local cluster for benchmarks: Hub + Worker nodes, on free ports."""

    workers: int = 2
    environment: dict[str, str] = field(default_factory=dict)
    cluster: LocalCluster | None = None
    # Where the services' logs go; None: with the cluster's state, removed at the end.
    log_dir: Path | None = None
    _state: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> ClusterBench:
        self._state = tempfile.TemporaryDirectory(prefix="scanhub-bench-")
        state_dir = Path(self._state.name)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        environment = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
        environment.update({"SCANHUB_LOG_LEVEL": "WARNING", **self.environment})
        # Ports for the Hub and the Workers that no one else uses.
        worker_port = free_port(count=self.workers)
        self.cluster = LocalCluster(
            state_dir, self.workers, hub_port=free_port(), worker_port=worker_port,
            environment=environment, log_dir=self.log_dir or state_dir,
        )  # fmt: skip
        self.cluster.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        if self._state is not None:
            self._state.cleanup()

    @property
    def hub_url(self) -> str:
        assert self.cluster is not None
        return self.cluster.hub_url

    @property
    def worker_urls(self) -> list[str]:
        assert self.cluster is not None
        return [node.url for node in self.cluster.nodes]

    def load(
        self, target: str, samples: list[Sample], *, callbacks: bool = False, **options: Any
    ) -> tuple[LoadResult, dict]:
        """One load run (polling, or with `callbacks` waiting for each task's callback)."""
        assert self.cluster is not None
        run = run_callback_load if callbacks else run_load
        with MemoryWatch(cluster_pids(self.cluster)) as memory:
            result = asyncio.run(run(target, samples, **options))
        # Let the nodes drain what was accepted before the next run.
        wait_idle(self.worker_urls)
        return result, memory.summary()


def wait_idle(worker_urls: list[str], timeout: float = 300) -> None:
    """Until no Worker has queued tasks left (read from its /metrics)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depths = []
        for url in worker_urls:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
                text = response.read().decode()
            depths.append(
                next(
                    float(line.split()[1])
                    for line in text.splitlines()
                    if line.startswith("scanhub_queue_depth ")
                )
            )
        if not any(depths):
            return
        time.sleep(0.2)


def wait_all_healthy(hub_url: str, timeout: float = 60) -> None:
    """Until the Hub sees every Worker healthy (after a run that held one, as the machinery
    figures do, it takes the Worker back at its next health check)."""
    import json
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{hub_url}/api/hub/v1/workers", timeout=5) as response:
            workers = json.load(response)["workers"]
        if workers and all(worker["healthy"] for worker in workers):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the Hub did not see every Worker healthy within {timeout:g} s")
