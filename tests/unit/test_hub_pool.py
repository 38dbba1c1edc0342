"""The Hub's Worker pool: round-robin over healthy Workers, and health checks moving them in and out."""

from __future__ import annotations

import aiohttp
import pytest

from deploy.processes import free_port
from hub.pool import Worker, WorkerPool, check_all, check_worker
from tests.support.fake_worker import FakeWorker


def pool_of(*healthy: bool) -> WorkerPool:
    return WorkerPool([Worker(f"http://worker{index}", healthy=up) for index, up in enumerate(healthy)])


def test_round_robin_takes_healthy_workers_in_turn():
    pool = pool_of(True, True, True)
    picks = [pool.pick().url for _ in range(6)]  # type: ignore[union-attr]
    assert picks == ["http://worker0", "http://worker1", "http://worker2"] * 2


def test_round_robin_skips_workers_out_of_rotation():
    pool = pool_of(True, False, True)
    picks = [pool.pick().url for _ in range(4)]  # type: ignore[union-attr]
    assert picks == ["http://worker0", "http://worker2"] * 2


def test_pick_skips_workers_already_tried_for_this_submission():
    pool = pool_of(True, True)
    first = pool.pick()
    assert first is not None
    second = pool.pick(exclude=[first])
    assert second is not None and second is not first
    assert pool.pick(exclude=[first, second]) is None


def test_no_worker_is_picked_when_none_is_healthy():
    assert pool_of(False, False).pick() is None


def test_workers_are_out_of_rotation_until_their_first_check():
    pool = WorkerPool([Worker("http://a"), Worker("http://b")])
    assert pool.pick() is None


def test_a_failed_forward_takes_a_worker_out_of_rotation_at_once():
    pool = pool_of(True, True)
    first = pool.workers[0]
    pool.mark_failed(first, "connection reset")
    assert [pool.pick() for _ in range(3)] == [pool.workers[1]] * 3
    assert first.last_error == "connection reset"


@pytest.fixture
async def fake_worker():
    worker = await FakeWorker().start()
    yield worker
    await worker.close()


async def test_worker_answering_503_leaves_rotation_and_returns_once_healthy(fake_worker):
    worker = Worker(fake_worker.url)
    pool = WorkerPool([worker])
    async with aiohttp.ClientSession() as session:
        await check_worker(session, pool, worker, timeout=2)
        assert worker.healthy and pool.pick() is worker
        fake_worker.health_status = 503
        await check_worker(session, pool, worker, timeout=2)
        assert not worker.healthy and pool.pick() is None
        assert "503" in (worker.last_error or "")
        fake_worker.health_status = 200
        await check_worker(session, pool, worker, timeout=2)
        assert worker.healthy and worker.last_error is None and pool.pick() is worker


async def test_health_check_records_queue_depth_and_time(fake_worker):
    fake_worker.queue_depth = 17
    worker = Worker(fake_worker.url)
    async with aiohttp.ClientSession() as session:
        await check_worker(session, WorkerPool([worker]), worker, timeout=2)
    assert worker.queue_depth == 17
    assert worker.last_check is not None


async def test_unreachable_worker_is_out_of_rotation(fake_worker):
    dead = Worker(f"http://127.0.0.1:{free_port()}")
    alive = Worker(fake_worker.url)
    pool = WorkerPool([dead, alive])
    async with aiohttp.ClientSession() as session:
        await check_all(session, pool, timeout=2)
    assert not dead.healthy and "failed" in (dead.last_error or "")
    assert pool.healthy() == [alive]
