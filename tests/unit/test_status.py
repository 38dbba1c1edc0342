"""The status pages and the status JSON they read: a Worker's own, the Hub's sum over its Workers,
and the CORS that lets a Hub's page follow a task on a Worker."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from common.metrics import ServiceMetrics
from hub.api import cluster_totals, create_app
from hub.settings import HubSettings
from tests.unit.conftest import TOKEN_TASKS
from worker.settings import WorkerSettings
from worker.store import (
    THROUGHPUT_INTERVAL_SECONDS,
    THROUGHPUT_INTERVALS,
    Bookkeeping,
    Keys,
    SyncTaskStore,
    TaskStore,
    done_counter_commands,
    encode_fields,
    time_to_report_bucket,
)
from worker.tasks import accepted_time, run_analysis

HUB_ORIGIN = "http://127.0.0.1:8080"


def report_with(code: int) -> list[dict[str, Any]]:
    return [{"classification": {"classification": code}}, {"classification": {"classification": 0}}]


def intervals_since(moment: float) -> int:
    return int(time.time() // THROUGHPUT_INTERVAL_SECONDS) - int(moment // THROUGHPUT_INTERVAL_SECONDS)


async def count_done(redis: Any, reports: list[Any], now: float) -> None:
    pipe = redis.pipeline()
    for report in reports:
        done_counter_commands(pipe, Keys(), report, now=now)
    await pipe.execute()


async def test_a_workers_status_counts_verdicts_of_the_submitted_file_and_done_per_interval(worker_api):
    now = time.time()
    earlier = now - 3 * THROUGHPUT_INTERVAL_SECONDS
    await count_done(worker_api.redis, [report_with(3), report_with(3), report_with(2)], now)
    # A report of no known shape (a site's engine) counts as unknown rather than failing.
    await count_done(worker_api.redis, [report_with(1), {"odd": True}, report_with(7)], earlier)
    response = await worker_api.client.get("/api/worker/v1/status")
    assert response.status == 200
    body = await response.json()
    assert body["service"] == "worker"
    assert body["verdicts"] == {"malicious": 2, "suspicious": 1, "goodware": 1, "unknown": 2}
    done = body["throughput"]["done"]
    assert len(done) == THROUGHPUT_INTERVALS
    latest = -1 - intervals_since(now)  # a minute may have turned since the counts were made
    assert done[latest] == 3 and done[latest - 3] == 3 and sum(done) == 6
    assert body["queue_depth"] == 0 and body["tasks"] == {"done": 0, "failed": 0}


async def test_done_counters_expire_once_out_of_the_window(worker_api):
    await count_done(worker_api.redis, [report_with(0)], time.time())
    (key,) = [key async for key in worker_api.redis.scan_iter("*:stats:done:*")]
    ttl = await worker_api.redis.ttl(key)
    assert THROUGHPUT_INTERVALS * THROUGHPUT_INTERVAL_SECONDS < ttl <= (THROUGHPUT_INTERVALS + 1) * 60


def test_storing_an_analyzed_report_counts_its_verdict_and_interval(tmp_path: Path):
    settings = WorkerSettings(spool_dir=tmp_path)
    client = fakeredis.FakeRedis(decode_responses=True)
    store = SyncTaskStore(client, Keys(), settings.retention())
    content = b"just some text\n"
    record = {"task_id": 1, "submitted": int(time.time()), "status": "queued", "attempts": 0}
    digests = {name: hashlib.new(name, content).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
    fields: dict[Any, Any] = encode_fields({**record, "file_name": "a.txt", **digests})
    client.hset(Keys().task(1), mapping=fields)
    (tmp_path / "1").write_bytes(content)
    assert run_analysis(1, store, settings) == "done"
    stored = store.get(1)
    assert stored is not None
    code = orjson.loads(stored["tc_report"])[0]["classification"]["classification"]
    name = ["unknown", "goodware", "suspicious", "malicious"][code]
    assert client.hgetall(Keys().verdicts) == {name: "1"}
    interval = int(time.time() // THROUGHPUT_INTERVAL_SECONDS)
    assert {client.get(Keys().done_in_interval(i)) for i in (interval - 1, interval)} >= {"1"}


def test_a_report_stored_for_a_task_deleted_meanwhile_is_not_counted(tmp_path: Path):
    client = fakeredis.FakeRedis(decode_responses=True)
    store = SyncTaskStore(client, Keys(), WorkerSettings(spool_dir=tmp_path).retention())
    now = int(time.time())
    bookkeeping = Bookkeeping(submitted=now, accepted=now - 0.3, finished=now)
    assert not store.finish(1, report_with(3), {}, now, bookkeeping=bookkeeping)  # no such task
    assert client.hgetall(Keys().verdicts) == {"malicious": "0"}
    assert client.get(Keys().done_in_interval(now // THROUGHPUT_INTERVAL_SECONDS)) == "0"
    times = client.hgetall(Keys().time_to_report)
    assert times["le:0.5"] == "0" and float(times["sum"]) == 0


def test_counts_never_queued_are_not_taken_back(tmp_path: Path, monkeypatch):
    """Bookkeeping that could not be queued (a report of an unexpected shape) for a task
    deleted meanwhile: nothing was counted, so nothing is taken back."""
    client = fakeredis.FakeRedis(decode_responses=True)
    store = SyncTaskStore(client, Keys(), WorkerSettings(spool_dir=tmp_path).retention())

    def cannot_queue(*args: Any) -> None:
        raise TypeError("a report of an unexpected shape")

    monkeypatch.setattr(Bookkeeping, "commands", cannot_queue)
    now = int(time.time())
    bookkeeping = Bookkeeping(submitted=now, accepted=now - 1.0, finished=now)
    assert not store.finish(1, report_with(3), {}, now, bookkeeping=bookkeeping)  # no such task
    assert client.hgetall(Keys().verdicts) == {}
    assert client.hgetall(Keys().time_to_report) == {}


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0.0, "le:0.05"),
        (0.05, "le:0.05"),
        (0.0501, "le:0.1"),
        (1.0, "le:1"),
        (899.9, "le:900"),
        (901, "le:+Inf"),
    ],
)
def test_a_time_to_report_goes_to_the_smallest_bucket_holding_it(seconds, bucket):
    assert time_to_report_bucket(seconds) == bucket


@pytest.mark.parametrize(
    ("record", "expected"),
    [({"accepted": "1764900000.125"}, 1764900000.125), ({}, None), ({"accepted": "soon"}, None),
     ({"accepted": "nan"}, None), ({"accepted": "inf"}, None)],
)  # fmt: skip
def test_the_acceptance_time_is_read_from_the_record_when_it_is_a_time(record, expected):
    assert accepted_time(record) == expected


async def test_metrics_export_the_time_to_report_of_done_tasks_as_a_cumulative_histogram(tmp_path: Path):
    """Analyzed for real (identification, YARA...): each task's time from its `accepted` field
    to its stored report lands in one bucket; the API's histogram adds them up."""
    settings = WorkerSettings(spool_dir=tmp_path)
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    store = SyncTaskStore(client, Keys(), settings.retention())
    now = time.time()

    def analyze_queued(task_id: int, waited: float | None) -> None:
        """Analyze a task accepted `waited` seconds ago (None: with no acceptance time)."""
        fields: dict[str, Any] = {
            "task_id": task_id,
            "submitted": int(now),
            "status": "queued",
            "attempts": 0,
        }
        if waited is not None:
            fields["accepted"] = f"{time.time() - waited:.3f}"
        record: dict[Any, Any] = encode_fields(fields)
        client.hset(Keys().task(task_id), mapping=record)
        (tmp_path / str(task_id)).write_bytes(b"some text %d\n" % task_id)
        assert run_analysis(task_id, store, settings) == "done"

    for task_id, waited in ((1, 0.0), (2, 10.0), (3, 2000.0)):
        analyze_queued(task_id, waited)  # each well inside its bucket, even on a loaded machine
    analyze_queued(4, None)  # accepted before acceptance times were recorded: not in the histogram

    reader = fakeredis.aioredis.FakeRedis(server=server, decode_responses=True)
    buckets_and_sum = await TaskStore(reader, Keys(), settings.retention()).time_to_report()
    metrics = ServiceMetrics("worker")
    metrics.stored_histogram("scanhub_time_to_report_seconds", "time to report").set(*buckets_and_sum)
    text = generate_latest(metrics.registry).decode()
    buckets = dict(re.findall(r'^scanhub_time_to_report_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M))
    assert float(buckets["5.0"]) == 1  # the quick one
    assert float(buckets["10.0"]) in (1, 2) and float(buckets["30.0"]) == 2  # the one of 10 s
    assert float(buckets["900.0"]) == 2 and float(buckets["+Inf"]) == 3
    assert "scanhub_time_to_report_seconds_count 3.0" in text
    total = float(re.search(r"^scanhub_time_to_report_seconds_sum (\S+)$", text, re.M)[1])  # type: ignore[index]
    assert 2010.0 <= total < 2010.0 + 3 * (time.time() - now)


def test_a_stored_histogram_needs_its_infinite_bucket():
    histogram = ServiceMetrics("worker").stored_histogram("scanhub_x_seconds", "x")
    with pytest.raises(ValueError, match=r"\+Inf"):
        histogram.set([(1.0, 3)], 1.5)


async def test_the_status_json_needs_a_tasks_token_and_the_page_none(make_worker_api):
    api = await make_worker_api(tasks_tokens=[TOKEN_TASKS])
    assert (await api.client.get("/api/worker/v1/status")).status == 401
    authorized = {"Authorization": f"Token {TOKEN_TASKS}"}
    assert (await api.client.get("/api/worker/v1/status", headers=authorized)).status == 200
    page = await api.client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert 'data-service="worker"' in await page.text()


async def test_a_worker_lets_only_its_cors_origins_read_tasks(make_worker_api):
    api = await make_worker_api(cors_origins=HUB_ORIGIN + "/")
    upload = await api.upload()
    task_path = "/api/tiscale/v1/task/1"
    assert upload.status == 200
    allowed = await api.client.get(task_path, headers={"Origin": HUB_ORIGIN})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == HUB_ORIGIN
    missing = await api.client.get("/api/tiscale/v1/task/999", headers={"Origin": HUB_ORIGIN})
    assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == HUB_ORIGIN
    preflight = await api.client.options(
        task_path,
        headers={"Origin": HUB_ORIGIN, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"},
    )  # fmt: skip
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization"
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET"
    other = await api.client.get(task_path, headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    # Only task reads: an upload from the allowed origin gets no CORS header.
    form_answer = await api.upload(headers={"Origin": HUB_ORIGIN})
    assert "Access-Control-Allow-Origin" not in form_answer.headers


def per_minute(done: list[int]) -> dict[str, Any]:
    return {"interval_seconds": 60, "done": done}


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([], {"verdicts": {}, "throughput": per_minute([])}),
        (
            [
                {"verdicts": {"malicious": 1, "unknown": 2}, "throughput": per_minute([1, 2, 3])},
                {"verdicts": {"malicious": 4}, "throughput": per_minute([5, 6])},
                {"healthy": False},  # a Worker whose Redis is down reports no counts
            ],
            {"verdicts": {"malicious": 5, "unknown": 2}, "throughput": per_minute([1, 7, 9])},
        ),
        (  # a Worker's malformed answer is left out, not a 500
            [
                {"verdicts": ["x"], "throughput": "x"},
                {
                    "verdicts": {"malicious": "3", "unknown": 1},
                    "throughput": {"interval_seconds": 60, "done": [1, None]},
                },
            ],
            {"verdicts": {"unknown": 1}, "throughput": per_minute([1, 0])},
        ),
    ],
)
def test_the_hub_sums_verdicts_and_aligns_intervals_on_the_latest(reports, expected):
    assert cluster_totals(reports) == expected


async def test_the_hub_status_shows_each_worker_with_its_own_report_and_the_sums(make_worker_api, tmp_path):
    first, second = await make_worker_api(), await make_worker_api()
    for api in (first, second):  # a live Celery worker, as its heartbeat says
        await api.redis.set(Keys().celery_heartbeat("celery@test"), "1")
    now = time.time()
    await count_done(first.redis, [report_with(3)], now)
    await count_done(second.redis, [report_with(3), report_with(0)], now)
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    urls = [str(api.client.make_url("")).rstrip("/") for api in (first, second)] + [dead]
    hub = TestClient(TestServer(create_app(HubSettings(worker_urls=urls, spool_dir=tmp_path / "hub"))))
    await hub.start_server()
    try:
        response = await hub.get("/api/hub/v1/status")
        assert response.status == 200
        body = await response.json()
        assert [worker["url"] for worker in body["workers"]] == urls
        assert [worker["healthy"] for worker in body["workers"]] == [True, True, False]
        assert body["workers"][2]["status"] is None and body["workers"][2]["last_error"]
        assert body["workers"][0]["status"]["verdicts"]["malicious"] == 1
        # The queue depth is the one just reported, not the last health check's.
        await first.redis.zadd(Keys().queued_tasks, {"1": 1.0, "2": 2.0})
        again = await (await hub.get("/api/hub/v1/status")).json()
        assert [worker["queue_depth"] for worker in again["workers"]][:2] == [2, 0]
        assert body["verdicts"] == {"malicious": 2, "suspicious": 0, "goodware": 0, "unknown": 1}
        assert body["throughput"]["done"][-1 - intervals_since(now)] == 3
        page = await hub.get("/")
        assert page.status == 200 and 'data-service="hub"' in await page.text()
    finally:
        await hub.close()


async def test_the_hub_asks_each_workers_status_with_its_tasks_token(make_worker_api, tmp_path):
    submit, tasks = "S" * 40, "R" * 40
    worker = await make_worker_api(submit_tokens=[submit], tasks_tokens=[tasks])
    await worker.redis.set(Keys().celery_heartbeat("celery@test"), "1")
    url = str(worker.client.make_url("")).rstrip("/")
    settings = HubSettings(
        worker_urls=[url], worker_tokens=[submit], worker_search_tokens=[tasks], spool_dir=tmp_path / "hub"
    )
    hub = TestClient(TestServer(create_app(settings)))
    await hub.start_server()
    try:
        body = await (await hub.get("/api/hub/v1/status")).json()
        assert body["workers"][0]["status"] is not None
        assert body["workers"][0]["status"]["service"] == "worker"
    finally:
        await hub.close()


async def test_the_infinite_bucket_counts_every_task_even_under_bounds_no_longer_used():
    redis = fakeredis.aioredis.FakeRedis(decode_responses=True)
    # Two tasks under today's 1-s bound, three more under a bound since removed (le:3).
    await redis.hset(Keys().time_to_report, mapping={"le:1": 2, "le:3": 3, "count": 5, "sum": "9.5"})
    buckets, total = await TaskStore(redis, Keys(), WorkerSettings().retention()).time_to_report()
    assert dict(buckets)[1.0] == 2 and dict(buckets)[900.0] == 2
    assert buckets[-1] == (float("inf"), 5) and total == 9.5
