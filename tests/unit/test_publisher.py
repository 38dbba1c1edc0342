"""The job publisher: one job per upload when idle, grouped jobs under load, no id lost."""

from __future__ import annotations

import asyncio
import threading

import pytest

from worker.publisher import JobPublisher


async def until(condition, rounds: int = 10_000) -> None:
    """Let other tasks run until `condition()` holds (event-loop turns, no clock)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_an_idle_publisher_sends_each_task_on_its_own_at_once():
    sent: list[list[int]] = []
    publisher = JobPublisher(sent.append, max_batch=8)
    await publisher.publish(1)
    await publisher.publish(2)
    await publisher.close()
    assert sent == [[1], [2]]


async def test_tasks_arriving_during_a_slow_publish_share_jobs_of_bounded_size():
    sent: list[list[int]] = []
    in_flight, release = threading.Event(), threading.Event()

    def slow_broker(task_ids: list[int]) -> None:
        in_flight.set()
        release.wait(5)
        sent.append(task_ids)

    publisher = JobPublisher(slow_broker, max_batch=4)
    publishes = [asyncio.create_task(publisher.publish(1))]
    assert await asyncio.to_thread(in_flight.wait, 5)  # the first job is now in flight
    publishes += [asyncio.create_task(publisher.publish(task_id)) for task_id in range(2, 12)]
    await until(lambda: len(publisher.waiting) == 10)  # and ten more wait behind it
    release.set()
    await asyncio.gather(*publishes)
    await publisher.close()
    assert sent == [[1], [2, 3, 4, 5], [6, 7, 8, 9], [10, 11]]


async def test_a_broker_failure_reaches_every_task_of_that_job_only():
    calls = 0
    in_flight, release = threading.Event(), threading.Event()

    def flaky_broker(task_ids: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            in_flight.set()
            release.wait(5)
            raise ConnectionError("broker down")

    publisher = JobPublisher(flaky_broker, max_batch=8)
    first = asyncio.create_task(publisher.publish(1))
    assert await asyncio.to_thread(in_flight.wait, 5)
    later = asyncio.create_task(publisher.publish(2))
    await until(lambda: len(publisher.waiting) == 1)  # waits behind the failing job
    release.set()
    with pytest.raises(ConnectionError):
        await first
    await later  # sent in the next job, which succeeded
    await publisher.close()
