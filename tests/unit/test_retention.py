"""The retention sweeper: stale queued tasks are canceled, expired ones leave the index."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import fakeredis
import pytest

from worker.retention import run_sweeper, sweep_once
from worker.settings import WorkerSettings
from worker.store import Keys, TaskStore


async def test_sweeper_cancels_only_tasks_queued_past_the_limit_and_deletes_their_files(tmp_path):
    settings = WorkerSettings(spool_dir=tmp_path, unprocessed_task_limit_minutes=1)
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    now = time.time()
    old = await store.create(int(now - 120), file_name="old")
    young = await store.create(int(now - 10), file_name="young")
    for task_id in (old, young):
        (tmp_path / str(task_id)).write_bytes(b"x")
    result = await sweep_once(store, settings, now)
    assert result.canceled == [old]
    old_record = await store.get(old)
    assert old_record is not None
    assert old_record["status"] == "failed"
    assert "unprocessed task limit" in old_record["error"]
    assert 0 < await client.ttl(Keys().task(old)) <= settings.file_age_limit_seconds
    assert await store.status(young) == "queued"
    assert not (tmp_path / str(old)).exists()
    assert (tmp_path / str(young)).exists()


async def test_sweeper_prunes_expired_records_from_the_index(tmp_path):
    settings = WorkerSettings(spool_dir=tmp_path, task_age_limit_minutes=1, file_age_limit_minutes=1)
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    now = time.time()
    expired = await store.create(int(now - 600))
    alive = await store.create(int(now - 600))
    await client.delete(Keys().task(expired))  # as a TTL would
    result = await sweep_once(store, settings, now)
    assert result.pruned == 1
    assert await store.ids_submitted_before(now) == [alive]


async def test_sweeper_removes_orphaned_spool_files_but_keeps_live_ones(tmp_path):
    settings = WorkerSettings(spool_dir=tmp_path, unprocessed_task_limit_minutes=1)
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    now = time.time()
    live = await store.create(int(now))
    old_time = now - 3600
    for name in (str(live), "999", "incoming-abandoned"):
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (old_time, old_time))
    await sweep_once(store, settings, now)
    assert sorted(p.name for p in tmp_path.iterdir()) == [str(live)]


async def test_the_api_closes_at_once_even_when_the_sweeper_is_mid_call(make_worker_api):
    """A cancellation swallowed inside a Redis call must not leave shutdown waiting a whole
    sweep interval (30 s by default): the sweeper stops on an event."""
    for _ in range(10):
        api = await make_worker_api()
        assert (await api.client.get("/api/tiscale/v1/task/abc")).status == 400
        await asyncio.wait_for(api.client.close(), 5)


def job_message(task_ids: list[int]) -> str:
    """A Celery job as kombu's Redis transport stores it (only the parts the reconciler reads)."""
    import base64
    import json

    args = [task_ids] if len(task_ids) > 1 else task_ids
    body = base64.b64encode(json.dumps([args, {}, {}]).encode()).decode()
    return json.dumps({"body": body, "headers": {"task": "scanhub.analyze"}})


async def test_a_task_queued_long_with_no_job_anywhere_is_sent_again_and_others_are_left(tmp_path):
    import json

    settings = WorkerSettings(spool_dir=tmp_path, requeue_stranded_after_seconds=60)
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    now = time.time()
    lost, waiting, taken, batched, young = [await store.create(int(now - 120)) for _ in range(4)] + [
        await store.create(int(now - 10))
    ]
    await client.rpush(settings.celery_queue, job_message([waiting]))
    await client.hset("unacked", "tag-1", json.dumps([json.loads(job_message([taken])), "", "scanhub"]))
    await client.rpush(settings.celery_queue, job_message([batched, 10**9]))
    sent: list[int] = []

    async def republish(task_id: int) -> None:
        sent.append(task_id)

    result = await sweep_once(store, settings, now, republish=republish)
    assert sent == result.requeued == [lost]
    assert await store.status(young) == "queued"


async def test_a_job_taken_by_another_nodes_queue_does_not_count_as_this_tasks_job(tmp_path):
    import json

    settings = WorkerSettings(spool_dir=tmp_path, requeue_stranded_after_seconds=60)
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    task_id = await store.create(int(time.time() - 120))
    other = json.dumps([json.loads(job_message([task_id])), "", "scanhub-worker2"])
    await client.hset("unacked", "tag-9", other)
    sent: list[int] = []

    async def republish(task_id: int) -> None:
        sent.append(task_id)

    await sweep_once(store, settings, time.time(), republish=republish)
    assert sent == [task_id]


def test_partial_uploads_of_a_dead_api_are_removed_at_start_but_a_live_one_stays(tmp_path):
    from worker.retention import remove_partial_uploads

    stale, live, task_file = tmp_path / "incoming-dead", tmp_path / "incoming-live", tmp_path / "7"
    for path in (stale, live, task_file):
        path.write_bytes(b"x")
    past = time.time() - 120
    for path in (stale, task_file):
        os.utime(path, (past, past))
    assert remove_partial_uploads(tmp_path) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["7", "incoming-live"]


async def test_a_task_left_analyzing_by_a_lost_node_is_sent_again_once_no_job_could_still_run(tmp_path):
    settings = WorkerSettings(spool_dir=tmp_path, requeue_stranded_after_seconds=60)
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    now = time.time()
    longest_job = settings.analysis_time_limit_seconds * settings.max_job_batch
    stuck, running = await store.create(int(now - 5000)), await store.create(int(now - 5000))
    await client.hset(
        Keys().task(stuck), mapping={"status": "analyzing", "started": int(now - longest_job - 61)}
    )
    await client.hset(Keys().task(running), mapping={"status": "analyzing", "started": int(now - 30)})
    await client.zrem(Keys().queued_tasks, stuck, running)
    sent: list[int] = []

    async def republish(task_id: int) -> None:
        sent.append(task_id)

    await sweep_once(store, settings, now, republish=republish)
    assert sent == [stuck]


def test_a_broken_site_report_types_file_stops_start_up(tmp_path):
    from pydantic import ValidationError

    from worker.reports import site_report_types

    broken = tmp_path / "types.json"
    for text in ("{not json", '{"mine": {"children": "some"}}', '{"mine": {"file": {"include": "x"}}}'):
        broken.write_text(text)
        site_report_types.cache_clear()
        with pytest.raises(ValidationError, match="report types file"):
            WorkerSettings(report_types_file=broken)


async def test_a_sweeper_whose_cancellation_a_client_swallowed_still_ends(tmp_path):
    """A CancelledError caught inside a Redis call (the client library can do that) must not
    keep the sweeper looping: the service's shutdown waits for it."""

    class SwallowingStore:
        calls = 0

        async def take_sweeper_lock(self, seconds: float) -> bool:
            SwallowingStore.calls += 1
            if SwallowingStore.calls == 1:
                with contextlib.suppress(asyncio.CancelledError):  # as a client library might
                    await asyncio.sleep(10)
            return False

    # An interval far longer than the wait below: ending must not wait for the next sweep.
    settings = WorkerSettings(spool_dir=tmp_path, sweep_interval_seconds=30)
    stop = asyncio.Event()
    sweeper = asyncio.create_task(run_sweeper(SwallowingStore(), settings, stop))  # type: ignore[arg-type]
    try:
        while SwallowingStore.calls == 0:
            await asyncio.sleep(0.01)
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(sweeper), 2)
        assert sweeper.cancelled()  # it ends as cancelled, not as if it had returned
        assert SwallowingStore.calls == 1  # no sweep after the cancellation
    finally:
        stop.set()  # so that the test ends even when the sweeper does not
        await asyncio.gather(sweeper, return_exceptions=True)
