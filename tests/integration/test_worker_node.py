"""A Worker node as users run it: API process, real Valkey, real Celery worker, real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path

import aiohttp
import psutil
import redis

from deploy.processes import wait_until
from tests.support.client import API, submit, upload, wait_for_task

MARKER_ENGINE = "tests.support.engines:with_markers"


def spool_of(node) -> Path:
    return Path(node.env["SCANHUB_SPOOL_DIR"])


def assert_spool_empties(node, within: float = 5.0) -> None:
    """The node's spool holds no file left behind. The analysis process removes a task's
    file right after storing its outcome, so a client that has just seen the outcome may
    look a moment before the removal: allow `within` seconds."""
    deadline = time.monotonic() + within
    while (left := list(spool_of(node).iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []


def report_hashes(view) -> dict[str, str]:
    """The four digests; the engine adds others (tlsh, imphash) to the same list."""
    digests = ("md5", "sha1", "sha256", "sha512")
    return {
        item["name"]: item["value"]
        for item in view["tc_report"][0]["info"]["file"]["hashes"]
        if item["name"] in digests
    }


async def test_lifecycle_upload_analyze_report_and_empty_spool(worker_nodes):
    node = worker_nodes()
    files = {
        "script.sh": b"#!/bin/sh\necho hello\n",
        "random.bin": os.urandom(300_000),
        "python": Path(os.path.realpath("/bin/sh")).read_bytes(),
    }
    async with aiohttp.ClientSession() as session:
        task_urls = {
            name: await submit(
                session, node.url, content, filename=name, custom_data=json.dumps({"case": name})
            )
            for name, content in files.items()
        }
        for name, task_url in task_urls.items():
            assert task_url.startswith(f"{node.url}{API}/task/")
            view = await wait_for_task(session, task_url)
            assert view["status"] == "done", view
            content = files[name]
            assert report_hashes(view) == {
                algorithm: hashlib.new(algorithm, content).hexdigest()
                for algorithm in ("md5", "sha1", "sha256", "sha512")
            }
            entry = view["tc_report"][0]["info"]["file"]
            assert entry["file_name"] == name
            assert entry["size"] == len(content)
            assert view["custom_data"] == {"case": name}
            assert view["processed"] >= view["submitted"]
            assert view["worker_hostname"]
            assert view["direct_sender"] == "127.0.0.1"
        ids = [int(url.rsplit("/", 1)[1]) for url in task_urls.values()]
        assert [e["task_id"] for e in await (await session.get(f"{node.url}{API}/task")).json()] == ids
    assert_spool_empties(node)


async def test_list_filters_by_token_and_age_on_a_live_node(worker_nodes):
    node = worker_nodes()
    async with aiohttp.ClientSession() as session:
        first = await submit(session, node.url, b"a", headers={"X-TiScale-Token": "Token batch7"})
        second = await submit(session, node.url, b"b", headers={"X-TiScale-Token": "batch8"})
        await wait_for_task(session, first)
        one, two = (int(url.rsplit("/", 1)[1]) for url in (first, second))
        assert two == one + 1 and one >> 32 > 0  # sequential, above this Redis's epoch

        async def listed(query: str) -> list[int]:
            async with session.get(f"{node.url}{API}/task{query}") as response:
                return [entry["task_id"] for entry in await response.json()]

        assert await listed("?token=batch7") == [one]
        assert await listed("?token=Token%20batch7") == [one]
        assert await listed("?token=batch8") == [two]
        assert await listed("?age=3600") == []
        assert await listed("?age=0") == [one, two]


async def test_single_and_bulk_delete_on_a_live_node(worker_nodes):
    node = worker_nodes()
    async with aiohttp.ClientSession() as session:
        urls = [await submit(session, node.url, bytes([n]) * 100) for n in range(4)]
        for url in urls:
            await wait_for_task(session, url)
        async with session.delete(urls[0]) as response:
            assert response.status == 200
        async with session.get(urls[0]) as response:
            assert response.status == 404
        async with session.delete(f"{node.url}{API}/task?age=3600") as response:
            assert response.status == 200
        async with session.get(urls[1]) as response:
            assert response.status == 200  # younger than an hour: kept
        async with session.delete(f"{node.url}{API}/task?age=0") as response:
            assert response.status == 200
        async with session.get(f"{node.url}{API}/task") as response:
            assert await response.json() == []


async def test_failing_analysis_fails_only_that_task_and_the_next_one_succeeds(worker_nodes):
    node = worker_nodes(engine=MARKER_ENGINE)
    async with aiohttp.ClientSession() as session:
        crashing = await submit(session, node.url, b"CRASH please")
        healthy = await submit(session, node.url, b"an ordinary file")
        failed = await wait_for_task(session, crashing)
        assert failed["status"] == "failed"
        assert "crash requested by the test file" in failed["error"]
        assert failed["tc_report"] is None
        done = await wait_for_task(session, healthy)
        assert done["status"] == "done"
    assert_spool_empties(node)


async def test_celery_worker_killed_mid_analysis_still_ends_done_after_restart(worker_nodes):
    # The broker's visibility timeout stays at its hour: the restarted worker takes the
    # dead one's jobs back at start.
    node = worker_nodes(
        engine=MARKER_ENGINE,
        analysis_soft_time_limit_seconds="4",
        analysis_time_limit_seconds="5",
        max_job_batch="1",
    )
    async with aiohttp.ClientSession() as session:
        task_url = await submit(session, node.url, b"SLEEP:2.5 then analyze me")
        await wait_for_task(session, task_url, until=lambda view: view["status"] == "analyzing")
        node.celery.kill()  # SIGKILL to the Celery parent and its pool processes
        assert len(list(spool_of(node).iterdir())) == 1  # the file waits for the retry
        node.start_celery()
        view = await wait_for_task(session, task_url, timeout=30)
    assert view["status"] == "done", view
    assert_spool_empties(node)


async def test_done_tasks_expire_after_the_task_age_limit(worker_nodes):
    node = worker_nodes(task_age_limit_minutes="0.05", sweep_interval_seconds="0.5")  # 3 s
    async with aiohttp.ClientSession() as session:
        task_url = await submit(session, node.url, b"short-lived")
        await wait_for_task(session, task_url)

        async def gone() -> bool:
            async with session.get(task_url) as response:
                return response.status == 404

        deadline = time.monotonic() + 20
        while not await gone():
            assert time.monotonic() < deadline, "record did not expire"
            await asyncio.sleep(0.2)
        async with session.get(f"{node.url}{API}/task") as response:
            assert await response.json() == []


async def test_task_not_processed_within_the_limit_is_canceled_and_its_file_deleted(worker_nodes):
    node = worker_nodes(
        start_celery=False, unprocessed_task_limit_minutes="0.02", sweep_interval_seconds="0.3"
    )
    async with aiohttp.ClientSession() as session:
        task_url = await submit(session, node.url, b"nobody will analyze me in time")
        view = await wait_for_task(session, task_url, timeout=30)
        assert view["status"] == "failed"
        assert "unprocessed task limit" in view["error"]
        assert_spool_empties(node)
        # A Celery worker arriving late takes the job off the queue and leaves the task alone.
        node.start_celery()
        node.wait_healthy(60)
        broker = redis.Redis.from_url(node.env["SCANHUB_REDIS_URL"])
        wait_until(
            lambda: broker.llen("scanhub") == 0 and not broker.hlen("unacked"), 30, what="queue drained"
        )
        later = await wait_for_task(session, task_url)
        assert later["status"] == "failed"
        assert later["error"] == view["error"]


async def test_a_job_lost_between_the_queue_and_a_crashed_consumer_is_sent_again(worker_nodes):
    node = worker_nodes(start_celery=False, requeue_stranded_after_seconds="1", sweep_interval_seconds="0.3")
    broker = redis.Redis.from_url(node.env["SCANHUB_REDIS_URL"])
    async with aiohttp.ClientSession() as session:
        task_url = await submit(session, node.url, b"my job is lost")
        # A consumer took the job and died before recording it as taken.
        assert broker.lpop("scanhub") is not None
        wait_until(lambda: broker.llen("scanhub") == 1, 30, what="the job to be sent again")
        node.start_celery()
        view = await wait_for_task(session, task_url, timeout=30)
    assert view["status"] == "done", view


async def test_one_gib_upload_keeps_the_api_process_memory_flat(worker_nodes):
    node = worker_nodes(start_celery=False)
    api_process = psutil.Process(node.api.pid)
    baseline = api_process.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, api_process.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    block = os.urandom(1024 * 1024)
    size = 1024 * len(block)  # 1 GiB, generated as it is sent
    boundary = "scanhubboundary"

    async def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        ).encode()
        for _ in range(size // len(block)):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            response = await session.post(
                f"{node.url}{API}/upload",
                data=body(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert response.status == 200, await response.text()
            task_url = (await response.json())["task_url"]
            async with session.get(task_url) as task:
                view = await task.json()
    finally:
        stop.set()
        sampler.join()
    growth_mb = (peak - baseline) / 1024**2
    print(
        f"\nAPI RSS baseline {baseline / 1024**2:.1f} MB, "
        f"peak {peak / 1024**2:.1f} MB, growth {growth_mb:.1f} MB"
    )
    assert view["status"] == "queued"
    assert (spool_of(node) / task_url.rsplit("/", 1)[1]).stat().st_size == size
    assert growth_mb < 100


async def test_bad_uploads_leave_the_node_serving_others(worker_nodes):
    node = worker_nodes()
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("custom_data", "{}")
        async with session.post(f"{node.url}{API}/upload", data=form) as response:
            assert response.status == 400
        response = await upload(session, node.url, b"ok", user_data="{broken")
        assert response.status == 400
        view = await wait_for_task(session, await submit(session, node.url, b"fine"))
        assert view["status"] == "done"
        async with session.get(f"{node.url}{API}/task") as response:
            listed = await response.json()
        assert [entry["task_id"] for entry in listed] == [view["task_id"]]  # the refused created none


async def test_concurrent_uploads_all_end_done_whether_sent_alone_or_in_batch_jobs(worker_nodes):
    node = worker_nodes()
    contents = [os.urandom(1000) + bytes([n]) for n in range(40)]
    started = time.time()
    async with aiohttp.ClientSession() as session:
        task_urls = await asyncio.gather(*(submit(session, node.url, content) for content in contents))
        views = await asyncio.gather(*(wait_for_task(session, url) for url in task_urls))
        async with session.get(f"{node.url}/metrics") as response:
            metrics = await response.text()
    assert [view["status"] for view in views] == ["done"] * 40
    for content, view in zip(contents, views, strict=True):
        assert report_hashes(view)["sha1"] == hashlib.sha1(content).hexdigest()
    assert "scanhub_analysis_tasks_sent 40.0" in metrics
    # Every file went through identification and YARA, and their time is in the metrics.
    assert 'scanhub_analyzer_runs{analyzer="identify"} 40.0' in metrics
    assert 'scanhub_analyzer_runs{analyzer="yara"} 40.0' in metrics
    assert 'scanhub_analyzer_seconds{analyzer="yara"}' in metrics
    # Each done task's time from acceptance to its report, in the time-to-report histogram.
    assert 'scanhub_time_to_report_seconds_bucket{le="+Inf"} 40.0' in metrics
    assert "scanhub_time_to_report_seconds_count 40.0" in metrics
    waited = float(re.search(r"^scanhub_time_to_report_seconds_sum (\S+)$", metrics, re.MULTILINE)[1])  # type: ignore[index]
    assert 0 < waited <= 40 * (time.time() - started)
    jobs = next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("scanhub_analysis_jobs_sent ")
    )
    print(f"\n40 uploads went out in {jobs:g} Celery jobs")
    assert_spool_empties(node)


async def test_a_file_that_outlives_the_hard_time_limit_ends_failed_not_analyzing(worker_nodes):
    node = worker_nodes(
        engine=MARKER_ENGINE,
        analysis_soft_time_limit_seconds="1",
        analysis_time_limit_seconds="2",
        max_analysis_attempts="2",
        max_job_batch="1",
        visibility_timeout_seconds="30",
    )
    async with aiohttp.ClientSession() as session:
        stubborn = await submit(session, node.url, b"STUBBORN file")
        view = await wait_for_task(session, stubborn, timeout=60)
        assert view["status"] == "failed", view  # not left "analyzing" for ever
        after = await wait_for_task(session, await submit(session, node.url, b"an ordinary file"))
        assert after["status"] == "done"
    assert_spool_empties(node)
