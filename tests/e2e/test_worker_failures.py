"""A Worker that fails on its own account (its Redis gone) answers 503, and the Hub sends the
upload to another Worker: the client never sees that Worker's failure."""

from __future__ import annotations

import signal
import time

import aiohttp

from deploy.processes import wait_hub_ready
from tests.e2e.conftest import launch_hub
from tests.support.client import upload, wait_for_task


async def test_uploads_go_elsewhere_while_one_workers_redis_is_down(worker_nodes, tmp_path):
    first, second = worker_nodes.together(2)
    # The Hub's health checks every 60 s: it must learn of the failure from the forward itself.
    hub, hub_url = launch_hub([first.url, second.url], tmp_path, SCANHUB_HEALTH_INTERVAL_SECONDS="60")
    try:
        wait_hub_ready(hub, hub_url)
        worker_nodes.redis_servers[0].stop()  # the first node's Redis is gone
        async with aiohttp.ClientSession() as session:
            direct = await upload(session, first.url, b"x")
            assert direct.status == 503 and direct.headers["Retry-After"]
            answers = [await upload(session, hub_url, f"file {number}".encode()) for number in range(4)]
            assert [answer.status for answer in answers] == [200] * 4
            task_urls = [(await answer.json())["task_url"] for answer in answers]
            assert all(url.startswith(second.url) for url in task_urls)
            assert [(await wait_for_task(session, url))["status"] for url in task_urls] == ["done"] * 4
    finally:
        hub.stop()


async def test_a_frozen_worker_is_skipped_within_the_response_timeout(worker_nodes, tmp_path):
    first, second = worker_nodes.together(2)
    hub, hub_url = launch_hub(
        [first.url, second.url],
        tmp_path,
        SCANHUB_HEALTH_INTERVAL_SECONDS="60",
        SCANHUB_WORKER_RESPONSE_TIMEOUT_SECONDS="2",
    )
    try:
        wait_hub_ready(hub, hub_url)
        first.api.signal_group(signal.SIGSTOP)  # frozen: its port still accepts connections
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            answers = [await upload(session, hub_url, f"file {number}".encode()) for number in range(4)]
            elapsed = time.monotonic() - started
            print(f"\n4 uploads with one Worker frozen: {elapsed:.1f} s")
            assert [answer.status for answer in answers] == [200] * 4
            task_urls = [(await answer.json())["task_url"] for answer in answers]
            assert all(url.startswith(second.url) for url in task_urls)
    finally:
        first.api.signal_group(signal.SIGCONT)
        hub.stop()
