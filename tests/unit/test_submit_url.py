"""submit-url: public targets only (SSRF), bounded redirects and size, integrity hash."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

API = "/api/tiscale/v1"
PAYLOAD = b"downloaded sample " * 100


@pytest.fixture
async def origin():
    """A file server on 127.0.0.1 with a few hostile behaviours."""
    seen_headers: list[dict[str, str]] = []

    async def sample(request: web.Request) -> web.Response:
        seen_headers.append(dict(request.headers))
        return web.Response(body=PAYLOAD)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 10_000)
        return response

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(200):
            await response.write(b"x" * 100)
            await asyncio.sleep(0.02)  # ~5 KB/s: a server slowed to starve the download pool
        return response

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"a start, then nothing")
        await asyncio.sleep(30)
        return response

    concurrency = {"now": 0, "most": 0}

    async def counted(request: web.Request) -> web.Response:
        concurrency["now"] += 1
        concurrency["most"] = max(concurrency["most"], concurrency["now"])
        await asyncio.sleep(0.1)
        concurrency["now"] -= 1
        return web.Response(body=PAYLOAD)

    app = web.Application()
    app.router.add_get("/counted", counted)
    app.router.add_get("/drip", drip)
    app.router.add_get("/stall", stall)
    app.router.add_get("/sample.exe", sample)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server.seen_headers = seen_headers  # type: ignore[attr-defined]
    server.concurrency = concurrency  # type: ignore[attr-defined]
    yield server
    await server.close()


async def wait_until_settled(api, task_id: int) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = await api.store.get(task_id)
        if record.get("status") == "failed" or "sha256" in record:
            return record
        await asyncio.sleep(0.02)
    raise TimeoutError(record)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://[::1]/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/x",
        "http://0.0.0.0/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://localhost/x",
        "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 form of 169.254.169.254
        "http://[2002:7f00:1::]/x",  # 6to4 form of 127.0.0.1
        "http://[::127.0.0.1]/x",  # IPv4-compatible form
        "http://[fec0::1]/x",  # deprecated site-local
    ],
)
async def test_submit_url_to_a_non_public_target_is_400(worker_api, url):
    response = await worker_api.client.post(f"{API}/submit-url", json={"url": url})
    assert response.status == 400
    assert "cannot be submitted" in (await response.json())["message"]
    assert worker_api.queued == []
    assert (await worker_api.client.get(f"{API}/task/1")).status == 404


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/", "http:///nohost"]
)
async def test_submit_url_with_another_scheme_or_no_host_is_400(worker_api, url):
    response = await worker_api.client.post(f"{API}/submit-url", json={"url": url})
    assert response.status == 400


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"link": "http://x"}', b'{"url": 5}'])
async def test_submit_url_without_a_url_in_a_json_body_is_400(worker_api, body):
    response = await worker_api.client.post(
        f"{API}/submit-url", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400


async def test_submit_url_downloads_into_the_spool_then_queues_the_task(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    response = await api.client.post(
        f"{API}/submit-url",
        json={
            "url": str(origin.make_url("/sample.exe")),
            "custom_data": {"source": "feed"},
            "custom_header_authorization": {"Custom-Token": "secret-value"},
        },
    )
    assert response.status == 200
    assert (await response.json())["task_url"].endswith(f"{API}/task/1")
    record = await wait_until_settled(api, 1)
    assert record["status"] == "queued"
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert record["file_name"] == "sample.exe"
    assert (api.settings.spool_dir / "1").read_bytes() == PAYLOAD
    assert origin.seen_headers[-1]["Custom-Token"] == "secret-value"
    for _ in range(100):
        if api.queued:
            break
        await asyncio.sleep(0.01)
    assert api.queued == [1]


async def test_redirect_to_a_private_address_fails_the_task(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    url = str(origin.make_url("/redirect").with_query(to="http://169.254.169.254/latest/meta-data/"))
    assert (await api.client.post(f"{API}/submit-url", json={"url": url})).status == 200
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"
    assert "not a public address" in record["error"]
    assert api.queued == []
    assert api.spool_files() == []


async def test_redirect_to_a_host_resolving_to_a_refused_address_fails_the_task(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    # 127.0.0.2 is loopback but outside the allowed network.
    target = f"http://127.0.0.2:{origin.port}/sample.exe"
    url = str(origin.make_url("/redirect").with_query(to=target))
    await api.client.post(f"{API}/submit-url", json={"url": url})
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"


async def test_endless_redirects_fail_the_task(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32", submit_url_max_redirects=3)
    await api.client.post(f"{API}/submit-url", json={"url": str(origin.make_url("/loop"))})
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"
    assert "more than 3 redirects" in record["error"]


async def test_download_over_the_size_limit_fails_the_task_and_leaves_no_file(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32", max_upload_bytes=50_000)
    await api.client.post(f"{API}/submit-url", json={"url": str(origin.make_url("/big"))})
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"
    assert "limit" in record["error"]
    assert api.spool_files() == []


async def test_http_error_from_the_origin_fails_the_task(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    await api.client.post(f"{API}/submit-url", json={"url": str(origin.make_url("/missing"))})
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"
    assert "404" in record["error"]


async def test_hash_mismatch_fails_the_task_and_matching_hash_passes(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    url = str(origin.make_url("/sample.exe"))
    await api.client.post(f"{API}/submit-url", json={"url": url, "hash": "0" * 40})
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"
    assert "integrity check failed" in record["error"]
    await api.client.post(f"{API}/submit-url", json={"url": url, "hash": hashlib.md5(PAYLOAD).hexdigest()})
    assert (await wait_until_settled(api, 2))["status"] == "queued"


@pytest.mark.parametrize(
    "extra",
    [
        {"hash": "xyz"},
        {"custom_header_authorization": {"Bad Header": "x"}},
        {"custom_header_authorization": {"X-A": "a\r\nInjected: 1"}},
        {"custom_header_authorization": {"Host": "internal"}},
        {"user_data": [1, 2]},
    ],
)
async def test_submit_url_with_malformed_options_is_400(make_worker_api, origin, extra):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    body = {"url": str(origin.make_url("/sample.exe")), **extra}
    assert (await api.client.post(f"{API}/submit-url", json=body)).status == 400


async def test_custom_headers_are_not_sent_to_another_origin_after_a_redirect(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.0/8")
    other_origin = f"http://localhost:{origin.port}/sample.exe"  # another host name, same server
    url = str(origin.make_url("/redirect").with_query(to=other_origin))
    body = {"url": url, "custom_header_authorization": {"X-Api-Key": "secret-for-the-first-host"}}
    assert (await api.client.post(f"{API}/submit-url", json=body)).status == 200
    record = await wait_until_settled(api, 1)
    assert record["status"] == "queued", record
    assert "X-Api-Key" not in origin.seen_headers[-1]


async def test_custom_headers_follow_a_redirect_within_the_same_origin(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    url = str(origin.make_url("/redirect").with_query(to="/sample.exe"))
    body = {"url": url, "custom_header_authorization": {"X-Api-Key": "secret"}}
    await api.client.post(f"{API}/submit-url", json=body)
    assert (await wait_until_settled(api, 1))["status"] == "queued"
    assert origin.seen_headers[-1]["X-Api-Key"] == "secret"


async def test_an_unexpected_error_after_the_download_fails_the_task_and_leaves_no_file(
    make_worker_api, origin, monkeypatch
):
    from worker.keys import STORE

    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32")
    app_store = api.client.app[STORE]

    async def broken_update(*args, **kwargs):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(app_store, "update", broken_update)
    await api.client.post(f"{API}/submit-url", json={"url": str(origin.make_url("/sample.exe"))})
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"
    assert "Redis went away" in record["error"]
    assert api.spool_files() == []


@pytest.mark.parametrize(("path", "reason"), [("/drip", "sends too slowly"), ("/stall", "timed out")])
async def test_a_server_too_slow_or_stalled_fails_the_task_instead_of_holding_a_slot(
    make_worker_api, origin, path, reason
):
    api = await make_worker_api(
        submit_url_allowed_networks="127.0.0.1/32",
        submit_url_min_bytes_per_second=50_000,
        submit_url_rate_grace_seconds=0.3,
        submit_url_read_timeout_seconds=0.5,
    )
    await api.client.post(f"{API}/submit-url", json={"url": str(origin.make_url(path))})
    record = await wait_until_settled(api, 1)
    assert record["status"] == "failed"
    assert reason in record["error"]
    assert api.spool_files() == []


async def test_downloads_from_one_origin_wait_for_its_slots(make_worker_api, origin):
    api = await make_worker_api(submit_url_allowed_networks="127.0.0.1/32", submit_url_downloads_per_origin=2)
    for number in range(6):
        url = str(origin.make_url("/counted").with_query(n=number))
        assert (await api.client.post(f"{API}/submit-url", json={"url": url})).status == 200
    for task_id in range(1, 7):
        assert "sha256" in await wait_until_settled(api, task_id)
    assert origin.concurrency["most"] == 2
