"""Task ids: sequential within a node's Redis, and never reused after that Redis loses its data."""

from __future__ import annotations

import time

import fakeredis
import pytest

from worker.settings import WorkerSettings
from worker.store import COUNTER_BITS, Keys, TaskStore

pytestmark = pytest.mark.unit


def new_store(client) -> TaskStore:
    return TaskStore(client, Keys(), WorkerSettings().retention())


async def test_a_fresh_redis_draws_an_epoch_and_ids_count_up_above_it():
    store = new_store(fakeredis.aioredis.FakeRedis(decode_responses=True))
    first = await store.create(int(time.time()), file_name="a")
    second = await store.create(int(time.time()), file_name="b")
    epoch = int(str(await store.redis.get(store.keys.epoch)))
    assert epoch > 0
    assert first == (epoch << COUNTER_BITS) + 1
    assert second == first + 1
    assert first < 2**53  # exact as a JSON number in every client
    assert (await store.get(first) or {})["file_name"] == "a"


async def test_after_redis_loses_its_data_an_old_task_url_is_404_never_another_submission(make_worker_api):
    api = await make_worker_api()
    await api.redis.delete(api.store.keys.epoch)  # as a node whose Redis was never used
    old_url = (await (await api.upload(b"first submission", custom_data='{"owner": "alice"}')).json())[
        "task_url"
    ]
    old_path = old_url.split("://", 1)[1].split("/", 1)[1]
    await api.redis.flushall()  # the Redis is lost for good: a new, empty one takes its place
    await api.upload(b"someone else's file", custom_data='{"owner": "mallory"}')
    response = await api.client.get(f"/{old_path}")
    assert response.status == 404
    assert "mallory" not in await response.text()


async def test_the_counter_running_out_moves_to_the_next_epoch_instead_of_reusing_ids():
    store = new_store(fakeredis.aioredis.FakeRedis(decode_responses=True))
    await store.redis.set(store.keys.epoch, 7)
    await store.redis.set(store.keys.task_counter, 2**COUNTER_BITS - 2)
    last = await store.create(int(time.time()))
    after = await store.create(int(time.time()))
    assert last == (7 << COUNTER_BITS) + 2**COUNTER_BITS - 1
    assert after == (8 << COUNTER_BITS) + 1
    assert after > last
