"""Accepted means durable: a Redis killed right after the answers comes back with every task."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from deploy.processes import Managed, free_port, redis_server_binary, wait_until
from tests.support.client import submit, wait_for_task


def valkey(directory: Path, port: int, fsync: str, appendonly: str = "yes") -> Managed:
    command = [
        str(redis_server_binary()),
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", ""),
        *("--appendonly", appendonly, "--appendfsync", fsync),
    ]
    server = Managed(f"redis:{port}", command, dict(os.environ), directory / "redis.log").start()

    def ping() -> bool:
        import redis

        return bool(redis.Redis(port=port, socket_timeout=1).ping())

    wait_until(ping, 15, what="Valkey")
    return server


@pytest.mark.parametrize("fsync", ["always"])
async def test_tasks_answered_before_a_redis_sigkill_are_all_analyzed_after_its_restart(
    worker_nodes, tmp_path, fsync
):
    directory = tmp_path / "redis"
    directory.mkdir()
    port = free_port()
    server = valkey(directory, port, fsync)
    node = worker_nodes(redis_url=f"redis://127.0.0.1:{port}/0", start_celery=False)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{node.url}/health") as response:
                assert (await response.json())["checks"]["durability"] == "ok"
            task_urls = await asyncio.gather(
                *(submit(session, node.url, f"file {number}".encode()) for number in range(40))
            )
            server.signal_group(signal.SIGKILL)  # at once: no time for a background fsync
            server.process.wait(10)  # type: ignore[union-attr]
            server = valkey(directory, port, fsync)
            node.start_celery()
            views = [await wait_for_task(session, url, timeout=60) for url in task_urls]
        assert [view["status"] for view in views] == ["done"] * len(task_urls)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("appendonly", "fsync", "expected"),
    [("no", "always", "not durable"), ("yes", "everysec", "appendfsync everysec")],
)
async def test_health_says_when_accepted_tasks_are_not_durable(
    worker_nodes, tmp_path, appendonly, fsync, expected
):
    port = free_port()
    server = valkey(tmp_path, port, fsync, appendonly)
    try:
        node = worker_nodes(redis_url=f"redis://127.0.0.1:{port}/0", start_celery=False)
        async with aiohttp.ClientSession() as session, session.get(f"{node.url}/health") as response:
            durability = (await response.json())["checks"]["durability"]
        assert durability.startswith(expected)
    finally:
        server.stop()
