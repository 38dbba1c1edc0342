"""End-to-end fixtures: a Hub and Worker nodes as processes, on loopback or one network namespace each."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.processes import Managed, WorkerNode, free_port, hub_env, start_hub, wait_hub_ready, wait_until
from tests.e2e.netns import Lab, unavailable_reason

MARKER_ENGINE = "tests.support.engines:with_markers"
# Short enough that a killed Celery worker's unacknowledged jobs come back within seconds;
# the time limits stay below the visibility timeout, as the settings require.
NODE_SETTINGS = {
    "allow_open": "true",
    "engine": MARKER_ENGINE,
    "visibility_timeout_seconds": "5",
    "unacked_restore_interval_seconds": "1",
    "analysis_soft_time_limit_seconds": "3",
    "analysis_time_limit_seconds": "4",
    "max_job_batch": "1",
}
HUB_TEST_SETTINGS = {
    "SCANHUB_ALLOW_OPEN": "true",  # served on namespace addresses, with no tokens
    "SCANHUB_HEALTH_INTERVAL_SECONDS": "0.2",
    # A loaded machine (two tests run at a time) must not make a healthy Worker look down.
    "SCANHUB_HEALTH_TIMEOUT_SECONDS": "5",
    "SCANHUB_CONNECT_TIMEOUT_SECONDS": "2",
}


def clean_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
    env.pop("REDIS_URL", None)
    return env


def launch_hub(
    worker_urls: list[str], tmp_path: Path, host: str = "127.0.0.1", **settings: str
) -> tuple[Managed, str]:
    """Start `python -m hub` on a free port in the current network namespace; returns it and its URL."""
    port = free_port()
    extra = {**HUB_TEST_SETTINGS, "SCANHUB_HOST": host, **settings}
    env = hub_env(clean_environment(), port, worker_urls, tmp_path / "hub-spool", **extra)
    return start_hub(env, log_dir=tmp_path), f"http://{host}:{port}"


def on(lab: Lab | None, host: str) -> contextlib.AbstractContextManager[str]:
    """Run a block on `host` ("client", "hub", "node1", ...): its namespace when there is a lab."""
    return contextlib.nullcontext("127.0.0.1") if lab is None else lab.on(host)


def hub_workers(hub_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{hub_url}/api/hub/v1/workers", timeout=5) as response:
        return list(json.load(response)["workers"])


@dataclass
class Cluster:
    """A Hub in front of Worker nodes; with a lab, each runs on its own host (namespace)."""

    hub_url: str
    hub: Managed
    nodes: list[WorkerNode]
    lab: Lab | None = None
    addresses: dict[str, str] = field(default_factory=dict)

    def on(self, host: str) -> contextlib.AbstractContextManager[str]:
        return on(self.lab, host)

    def client(self) -> contextlib.AbstractContextManager[str]:
        return self.on("client")

    def kill(self, index: int) -> None:
        """SIGKILL a node's API and Celery worker, as a crash would; its Redis survives."""
        node = self.nodes[index]
        for part in (node.api, node.celery, node.outputs):
            if part is not None:
                part.kill()

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        with self.on(node.name):
            node.start_api()
            node.start_celery()
            node.start_outputs()
            node.wait_healthy(60)

    def workers(self) -> list[dict[str, Any]]:
        return hub_workers(self.hub_url)

    def wait_rotation(self, expected: list[bool], timeout: float = 20) -> None:
        wait_until(
            lambda: [worker["healthy"] for worker in self.workers()] == expected,
            timeout,
            what=f"the Hub to see Workers healthy as {expected}",
        )


def lab_or_skip() -> Lab:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    lab = Lab().create()
    for host, octet in (("client", 2), ("hub", 10), ("node1", 11), ("node2", 12)):
        lab.add_host(host, octet)
    return lab


# Where the cluster tests run: in network namespaces where this machine has them (the closer
# to real hosts), else on loopback. Each test runs once, on one of them; a test may ask for
# one with `@pytest.mark.parametrize("cluster", ["loopback"], indirect=True)`.
NETWORK = "namespaces" if unavailable_reason() is None else "loopback"


# The test id does not name the network: it must not depend on the probe, which each
# pytest-xdist worker runs on its own (workers must collect the same tests).
@pytest.fixture(params=[NETWORK], ids=["default-network"])
def cluster(request, worker_nodes, tmp_path: Path) -> Iterator[Cluster]:
    """Two Worker nodes (API + Celery + own Redis) and a Hub as processes.

    `loopback`: all on 127.0.0.1. `namespaces`: client, Hub and each node on its own
    network namespace and address (10.231.0.x), so X-Forwarded-For and task URLs are real.
    """
    lab = lab_or_skip() if request.param == "namespaces" else None
    hub: Managed | None = None
    try:
        nodes, addresses = [], {}
        for name in ("node1", "node2"):  # started together, then waited for
            with on(lab, name) as address:
                nodes.append(worker_nodes(host=address, wait=False, **NODE_SETTINGS))
                addresses[name] = address
        with on(lab, "hub") as address:
            hub, hub_url = launch_hub([node.url for node in nodes], tmp_path, host=address)
            addresses["hub"] = address
        for node in nodes:
            with on(lab, node.name):
                node.wait_healthy(60)
        cluster = Cluster(hub_url, hub, nodes, lab, addresses)
        with cluster.client() as address:
            cluster.addresses["client"] = address
            wait_hub_ready(hub, cluster.hub_url)
            cluster.wait_rotation([True, True])
        yield cluster
    finally:
        if hub is not None:
            hub.stop()
        worker_nodes.close()  # every process must be gone before its namespace is
        if lab is not None:
            lab.destroy()
