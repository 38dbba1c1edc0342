"""The Hub forwards submissions round-robin, streamed and retried, and answers like a Worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.api import BODY_MEMORY, POOL, SETTINGS, create_app
from hub.settings import HubSettings
from tests.support.fake_worker import DIE, ERROR, REFUSE, REJECT, FakeWorker

UPLOAD = "/api/tiscale/v1/upload"
CLIENT_TOKEN = "C" * 40
ADMIN_TOKEN = "A" * 40
WORKER_TOKENS = ["W" * 40, "X" * 40]


def upload_form(content: bytes = b"hello", filename: str = "sample.txt", **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=filename)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


@pytest.fixture
async def fake_workers() -> AsyncIterator[Callable[[int], Any]]:
    started: list[FakeWorker] = []

    async def start(count: int) -> list[FakeWorker]:
        workers = [await FakeWorker().start() for _ in range(count)]
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        await worker.close()


@pytest.fixture
async def make_hub(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    clients: list[TestClient] = []

    async def make(worker_urls: list[str], **overrides: Any) -> TestClient:
        settings = HubSettings(
            worker_urls=worker_urls,
            spool_dir=tmp_path / "hub-spool",
            health_interval_seconds=overrides.pop("health_interval_seconds", 30),
            **overrides,
        )
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def spool_files(hub: TestClient) -> list[Path]:
    settings = hub.app[SETTINGS]
    return list(settings.spool_dir.iterdir())


async def test_uploads_alternate_between_workers_and_answer_with_the_workers_task_url(fake_workers, make_hub):
    first, second = await fake_workers(2)
    hub = await make_hub([first.url, second.url])
    task_urls = []
    for index in range(10):
        response = await hub.post(UPLOAD, data=upload_form(f"file {index}".encode()))
        assert response.status == 200, await response.text()
        task_urls.append((await response.json())["task_url"])
    assert len(first.received) == len(second.received) == 5
    assert all(url.startswith(first.url) for url in task_urls[0::2])
    assert all(url.startswith(second.url) for url in task_urls[1::2])
    assert spool_files(hub) == []


async def test_the_body_and_client_headers_reach_the_worker_with_the_client_appended(fake_workers, make_hub):
    (worker,) = await fake_workers(1)
    hub = await make_hub([worker.url])
    content = bytes(range(256)) * 4000
    response = await hub.post(
        UPLOAD,
        data=upload_form(content, custom_data='{"case": 1}', user_data='{"password_list": ["x"]}'),
        headers={"X-TiScale-Token": "Token custom", "X-Forwarded-For": "198.51.100.7"},
    )
    assert response.status == 200
    (received,) = worker.received
    assert received.fields == {
        "file": content,
        "custom_data": b'{"case": 1}',
        "user_data": b'{"password_list": ["x"]}',
    }
    assert received.headers["X-TiScale-Token"] == "Token custom"
    assert received.headers["X-Forwarded-For"] == "198.51.100.7, 127.0.0.1"
    assert int(received.headers["Content-Length"]) > len(content)


async def test_the_hub_presents_each_workers_own_token_not_the_clients(fake_workers, make_hub):
    first, second = await fake_workers(2)
    hub = await make_hub([first.url, second.url], submit_tokens=[CLIENT_TOKEN], worker_tokens=WORKER_TOKENS)
    for _ in range(2):
        response = await hub.post(
            UPLOAD, data=upload_form(), headers={"Authorization": f"Token {CLIENT_TOKEN}"}
        )
        assert response.status == 200
    assert first.received[0].headers["Authorization"] == f"Token {WORKER_TOKENS[0]}"
    assert second.received[0].headers["Authorization"] == f"Token {WORKER_TOKENS[1]}"


async def test_hub_client_tokens_missing_is_401_and_wrong_is_403(fake_workers, make_hub):
    (worker,) = await fake_workers(1)
    hub = await make_hub([worker.url], submit_tokens=[CLIENT_TOKEN], admin_tokens=[ADMIN_TOKEN])
    assert (await hub.post(UPLOAD, data=upload_form())).status == 401
    wrong = {"Authorization": f"Token {'Z' * 40}"}
    assert (await hub.post(UPLOAD, data=upload_form(), headers=wrong)).status == 403
    assert (await hub.get("/api/hub/v1/workers")).status == 401
    assert (
        await hub.get("/api/hub/v1/workers", headers={"Authorization": f"Token {ADMIN_TOKEN}"})
    ).status == 200
    assert worker.received == []


async def test_a_worker_refusing_with_503_is_skipped_and_the_file_goes_to_the_next(fake_workers, make_hub):
    refusing, accepting = await fake_workers(2)
    refusing.mode = REFUSE
    hub = await make_hub([refusing.url, accepting.url])
    response = await hub.post(UPLOAD, data=upload_form(b"keep me"))
    assert response.status == 200
    assert (await response.json())["task_url"].startswith(accepting.url)
    assert accepting.received[0].fields["file"] == b"keep me"
    pool = hub.app[POOL]
    assert [worker.healthy for worker in pool.workers] == [False, True]


@pytest.mark.parametrize("size", [3_000, 3_000_000], ids=["held-in-memory", "spooled-to-disk"])
async def test_a_worker_dying_mid_forward_does_not_lose_the_file(fake_workers, make_hub, size):
    dying, accepting = await fake_workers(2)
    dying.mode = DIE
    hub = await make_hub([dying.url, accepting.url])
    content = b"x" * size
    response = await hub.post(UPLOAD, data=upload_form(content))
    assert response.status == 200
    assert (await response.json())["task_url"].startswith(accepting.url)
    assert accepting.received[0].fields["file"] == content
    assert not hub.app[POOL].workers[0].healthy
    assert spool_files(hub) == []
    assert hub.app[BODY_MEMORY].used == 0


async def test_with_the_memory_budget_spent_small_bodies_still_forward_via_the_spool(fake_workers, make_hub):
    slow, other = await fake_workers(2)
    hub = await make_hub([slow.url, other.url], memory_budget_bytes=10_000)
    budget = hub.app[BODY_MEMORY]
    assert budget.take(9_000)  # as if other uploads held most of it
    try:
        response = await hub.post(UPLOAD, data=upload_form(b"y" * 5_000))
        assert response.status == 200
        assert slow.received[0].fields["file"] == b"y" * 5_000
        assert budget.used == 9_000
    finally:
        budget.release(9_000)


async def test_when_every_worker_fails_the_client_gets_503_with_retry_after(fake_workers, make_hub):
    first, second = await fake_workers(2)
    first.mode, second.mode = REFUSE, DIE
    hub = await make_hub([first.url, second.url])
    response = await hub.post(UPLOAD, data=upload_form())
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    body = await response.json()
    assert "task_url" not in body and "send it again" in body["message"]
    assert spool_files(hub) == []


async def test_with_no_healthy_worker_the_hub_answers_503_with_retry_after(fake_workers, make_hub):
    (worker,) = await fake_workers(1)
    worker.health_status = 503
    hub = await make_hub([worker.url])
    response = await hub.post(UPLOAD, data=upload_form())
    assert response.status == 503
    assert "Retry-After" in response.headers
    assert "no healthy Worker" in (await response.json())["message"]
    health = await hub.get("/health")
    assert health.status == 503 and health.headers["Retry-After"]


async def test_a_workers_verdict_on_the_submission_is_relayed_and_not_retried(fake_workers, make_hub):
    rejecting, other = await fake_workers(2)
    rejecting.mode = REJECT
    hub = await make_hub([rejecting.url, other.url])
    response = await hub.post(UPLOAD, data=upload_form())
    assert response.status == 400
    assert await response.json() == {"message": "the upload has no 'file' part"}
    assert other.received == []
    assert hub.app[POOL].workers[0].healthy


async def test_an_upload_over_the_limit_is_413_while_streaming_and_leaves_no_spool_file(
    fake_workers, make_hub
):
    (worker,) = await fake_workers(1)
    hub = await make_hub([worker.url], max_upload_bytes=100_000, max_form_field_bytes=1000)

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"z" * 10_000

    form = aiohttp.FormData()
    form.add_field("file", endless(), filename="big.bin")
    response = await hub.post(UPLOAD, data=form)  # chunked: no Content-Length to refuse early
    assert response.status == 413
    assert "100000 bytes" in (await response.json())["message"]
    assert worker.received == []
    assert spool_files(hub) == []


async def test_a_non_multipart_upload_is_400_like_on_a_worker(fake_workers, make_hub):
    (worker,) = await fake_workers(1)
    hub = await make_hub([worker.url])
    response = await hub.post(UPLOAD, data=b"raw", headers={"Content-Type": "application/octet-stream"})
    assert response.status == 400
    assert "multipart/form-data" in (await response.json())["message"]


async def test_submit_url_goes_through_the_same_forwarding(fake_workers, make_hub):
    first, second = await fake_workers(2)
    hub = await make_hub([first.url, second.url])
    for index in range(2):
        response = await hub.post("/api/tiscale/v1/submit-url", json={"url": f"https://example.com/{index}"})
        assert response.status == 200
    assert first.received[0].json == {"url": "https://example.com/0"}
    assert second.received[0].json == {"url": "https://example.com/1"}
    assert first.received[0].path == "/api/tiscale/v1/submit-url"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tiscale/v1/task/1"),
        ("GET", "/api/tiscale/v1/task/1?full=true"),
        ("GET", "/api/tiscale/v1/task"),
        ("DELETE", "/api/tiscale/v1/task/1"),
    ],
)
async def test_task_requests_to_the_hub_tell_the_client_to_ask_the_worker(
    fake_workers, make_hub, method, path
):
    (worker,) = await fake_workers(1)
    hub = await make_hub([worker.url])
    response = await hub.request(method, path)
    assert response.status == 400
    assert "task_url" in (await response.json())["message"]


async def test_workers_status_shows_health_last_check_queue_depth_and_forwarded_count(fake_workers, make_hub):
    first, second = await fake_workers(2)
    second.health_status, second.queue_depth = 503, 10_000
    first.queue_depth = 3
    hub = await make_hub([first.url, second.url])
    await hub.post(UPLOAD, data=upload_form())
    await hub.post(UPLOAD, data=upload_form())
    body = await (await hub.get("/api/hub/v1/workers")).json()
    by_url = {entry["url"]: entry for entry in body["workers"]}
    assert by_url[first.url]["healthy"] is True
    assert by_url[first.url]["tasks_forwarded"] == 2
    assert by_url[first.url]["queue_depth"] == 3
    assert by_url[first.url]["last_check"] > 0
    assert by_url[second.url]["healthy"] is False
    assert by_url[second.url]["queue_depth"] == 10_000
    assert by_url[second.url]["tasks_forwarded"] == 0
    assert "503" in by_url[second.url]["last_error"]
    health = await (await hub.get("/health")).json()
    assert health["checks"]["workers_healthy"] == 1 and health["status"] == "ok"


async def test_a_worker_back_to_health_returns_to_rotation(fake_workers, make_hub):
    first, second = await fake_workers(2)
    second.health_status = 503
    hub = await make_hub([first.url, second.url], health_interval_seconds=0.05)
    second.health_status = 200
    pool = hub.app[POOL]
    deadline = asyncio.get_running_loop().time() + 5
    while not pool.workers[1].healthy:
        assert asyncio.get_running_loop().time() < deadline, "Worker never came back"
        await asyncio.sleep(0.02)
    for _ in range(4):
        assert (await hub.post(UPLOAD, data=upload_form())).status == 200
    assert len(first.received) == len(second.received) == 2


async def test_hub_in_front_of_a_real_worker_answers_its_errors_unchanged(make_worker_api, make_hub):
    worker_api = await make_worker_api()
    worker_url = str(worker_api.client.make_url("")).rstrip("/")
    hub = await make_hub([worker_url])
    assert hub.app[POOL].workers[0].healthy is False  # a fakeredis Worker has no Celery heartbeat
    hub.app[POOL].workers[0].healthy = True
    cases = [
        upload_form(user_data="{not json"),
        upload_form(user_data="[1]"),
        upload_form(custom_data=json.dumps({"integrity_check_hash": "0" * 40})),
    ]
    no_file = aiohttp.FormData()
    no_file.add_field("custom_data", "{}")
    cases.append(no_file)
    for form in cases:
        through_hub = await hub.post(UPLOAD, data=form)
        form._is_processed = False  # type: ignore[attr-defined]
        direct = await worker_api.client.post(UPLOAD, data=form)
        assert through_hub.status == direct.status == 400
        assert await through_hub.json() == await direct.json()
    accepted = await hub.post(UPLOAD, data=upload_form(b"real", custom_data="{}"))
    assert accepted.status == 200
    task_url = (await accepted.json())["task_url"]
    assert task_url.startswith(worker_url)
    record = await worker_api.store.get(int(task_url.rsplit("/", 1)[1]))
    assert record is not None and json.loads(record["forwarded_for"]) == ["127.0.0.1"]


async def test_hub_openapi_document_lists_its_routes_and_token_groups(fake_workers, make_hub):
    workers = await fake_workers(1)
    hub = await make_hub([workers[0].url])
    document = await (await hub.get("/openapi.json")).json()
    assert document["paths"]["/api/tiscale/v1/upload"]["post"]["security"][0] == {"token": ["submit"]}
    assert document["paths"]["/api/tiscale/v1/submit-url"]["post"]["security"][0] == {"token": ["submit"]}
    assert document["paths"]["/api/hub/v1/workers"]["get"]["security"][0] == {"token": ["admin"]}
    assert "/health" in document["paths"]


def poisonous_multipart() -> tuple[bytes, dict[str, str]]:
    """A part header line longer than aiohttp accepts (it raises LineTooLong, not ValueError)."""
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\nX-Long: ' + b"a" * 70_000
    body += b"\r\n\r\ndata\r\n--b--\r\n"
    return body, {"Content-Type": "multipart/form-data; boundary=b"}


async def test_a_poisonous_upload_is_a_400_and_takes_no_worker_out_of_rotation(make_worker_api, make_hub):
    workers = [await make_worker_api(), await make_worker_api()]
    for api in workers:  # as a live Celery worker would, so both are healthy for the Hub
        await api.redis.set(api.store.keys.celery_heartbeat("node@host"), "1", px=60_000)
    hub = await make_hub([str(api.client.make_url("")).rstrip("/") for api in workers])
    body, headers = poisonous_multipart()
    response = await hub.post(UPLOAD, data=body, headers=headers)
    assert response.status == 400
    assert [worker.healthy for worker in hub.app[POOL].workers] == [True, True]
    assert (await hub.post(UPLOAD, data=upload_form(b"innocent"))).status == 200


async def test_a_worker_answering_500_is_relayed_not_retried_elsewhere(fake_workers, make_hub):
    broken, other = await fake_workers(2)
    broken.mode = ERROR
    hub = await make_hub([broken.url, other.url])
    response = await hub.post(UPLOAD, data=upload_form())
    assert response.status == 500
    assert other.received == []
    assert hub.app[POOL].workers[0].healthy


async def test_the_hubs_metrics_label_workers_by_position_not_by_address(fake_workers, make_hub):
    first, second = await fake_workers(2)
    hub = await make_hub([first.url, second.url])
    assert (await hub.post(UPLOAD, data=upload_form())).status == 200
    metrics = await (await hub.get("/metrics")).text()
    assert 'scanhub_hub_tasks_forwarded{worker="1"} 1.0' in metrics
    assert first.url not in metrics and second.url not in metrics
