"""Outputs and the outbound policy, without a network: what is planned, refused, retried."""

from __future__ import annotations

import json

import aiohttp
import pytest

from worker import outbound, outputs
from worker.keys import STORE
from worker.settings import WorkerSettings

API = "/api/tiscale/v1"


def settings(**overrides) -> WorkerSettings:
    return WorkerSettings(**overrides)


def test_no_output_is_planned_on_a_node_with_none_configured():
    assert outputs.planned_outputs(settings(), {}) == {}
    assert outputs.planned_outputs(settings(), {"password_list": ["x"]}) == {}


def test_a_task_callback_overrides_the_node_default_and_a_bare_host_port_is_http():
    node = settings(callback_url="https://hooks.example/scanhub", callback_report_type="small")
    planned = outputs.planned_outputs(node, {})
    assert planned["callback"] == {
        "state": "pending",
        "attempts": 0,
        "url": "https://hooks.example/scanhub",
        "report_type": "small",
        "view": None,
    }
    requested = {"callback": {"url": "example.com:8080", "report_type": "large", "view": "flat"}}
    planned = outputs.planned_outputs(node, requested)["callback"]
    assert (planned["url"], planned["report_type"], planned["view"]) == (
        "http://example.com:8080",
        "large",
        "flat",
    )


def test_callbacks_switched_off_are_recorded_as_disabled_not_dropped():
    planned = outputs.planned_outputs(
        settings(callback_enabled=False), {"callback": {"url": "https://a.example"}}
    )
    assert planned == {"callback": {"state": "disabled", "error": "callbacks are disabled on this node"}}


def test_splunk_is_planned_for_every_task_when_configured():
    planned = outputs.planned_outputs(
        settings(splunk_url="https://splunk.example:8088", splunk_token="t"), {}
    )
    assert planned == {"splunk": {"state": "pending", "attempts": 0}}


def test_the_backoff_doubles_up_to_its_cap():
    node = settings(output_backoff_seconds=2, output_backoff_max_seconds=10)
    assert [outputs.backoff_seconds(node, attempt) for attempt in range(1, 6)] == [2, 4, 8, 10, 10]


def test_output_report_types_must_exist_at_start_up():
    with pytest.raises(ValueError, match="callback_report_type"):
        settings(callback_report_type="huge")
    with pytest.raises(ValueError, match="view"):
        settings(callback_view="sideways")


def test_the_outbound_allowlist_keeps_its_old_name_as_an_alias(monkeypatch):
    monkeypatch.setenv("SCANHUB_SUBMIT_URL_ALLOWED_NETWORKS", "10.20.0.0/16")
    assert WorkerSettings().outbound_allowed_networks == ["10.20.0.0/16"]
    monkeypatch.setenv("SCANHUB_OUTBOUND_ALLOWED_NETWORKS", "192.168.1.0/24,10.0.0.1")
    monkeypatch.delenv("SCANHUB_SUBMIT_URL_ALLOWED_NETWORKS")
    assert WorkerSettings().outbound_allowed_networks == ["192.168.1.0/24", "10.0.0.1/32"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "http://[::ffff:10.0.0.1]/",
        "http://169.254.169.254/",
    ],
)
def test_an_endpoint_on_a_private_address_is_refused_unless_its_network_is_listed(url):
    with pytest.raises(outbound.Refused, match=r"not allowed|not a public"):
        outbound.check_endpoint(url, [])
    allowed = outbound.parse_networks(["127.0.0.0/8", "::1/128", "10.0.0.0/8", "169.254.0.0/16"])
    outbound.check_endpoint(url, allowed)


def test_only_http_urls_leave_the_node():
    for url in ("ftp://files.example/x", "file:///etc/passwd", "gopher://a.example/"):
        with pytest.raises(outbound.Refused, match="http"):
            outbound.check_url(url, [])


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        ("not an object", "must be an object"),
        ({"url": 5}, "url' must be a string"),
        ({"url": "https://a.example", "report_type": "huge"}, "report_type' must be one of"),
        ({"url": "https://a.example", "view": "sideways"}, "view' must be one of"),
        ({"url": "https://a.example/" + "x" * 5000}, "longer than"),
    ],
)
async def test_a_malformed_callback_is_refused_at_upload_with_no_task(worker_api, callback, message):
    response = await worker_api.upload(user_data=json.dumps({"callback": callback}))
    assert response.status == 400
    assert message in (await response.json())["message"]
    assert worker_api.queued == [] and worker_api.spool_files() == []


async def test_a_task_the_api_fails_sends_its_outputs_only_when_it_has_some(worker_api):
    await worker_api.upload(
        b"with a callback", user_data=json.dumps({"callback": {"url": "https://h.example"}})
    )
    await worker_api.upload(b"without")
    store = worker_api.client.app[STORE]
    assert await store.fail(1, "canceled: not processed in time", 1, only_if="queued")
    assert await store.fail(2, "canceled: not processed in time", 1, only_if="queued")
    assert worker_api.outputs_sent == [1]


async def test_search_refuses_what_is_not_an_md5_sha1_or_sha256(worker_api):
    for bad in ("abc", "g" * 40, "0" * 128, "0" * 63):
        response = await worker_api.client.get(f"/api/scanhub/v1/samples/{bad}")
        assert response.status == 400
    response = await worker_api.client.get(f"/api/scanhub/v1/samples/{'a' * 40}")
    assert response.status == 200
    assert await response.json() == {"hash": "a" * 40, "hash_type": "sha1", "sha256": None, "tasks": []}


async def test_an_upload_is_searchable_at_once_while_it_is_queued(worker_api):
    import hashlib

    await worker_api.upload(b"queued sample", filename="q.bin")
    response = await worker_api.client.get(
        f"/api/scanhub/v1/samples/{hashlib.md5(b'queued sample').hexdigest()}"
    )
    [entry] = (await response.json())["tasks"]
    assert entry["status"] == "queued" and entry["processed"] is None and entry["classification"] is None
    assert entry["task_url"].endswith(f"{API}/task/1") and entry["found_as"] == "file"


async def test_a_callback_to_a_name_that_resolves_privately_is_refused_when_connecting():
    node = settings()
    request = outputs.Request("http://localhost:9/hook", {}, b"{}")
    networks = outbound.parse_networks(node.outbound_allowed_networks)
    async with outbound.guarded_session(networks, aiohttp.ClientTimeout(total=5)) as session:
        with pytest.raises(outbound.Refused, match="not allowed"):
            await outputs.post(request, session, networks)


def test_each_thread_keeps_one_client_for_its_deliveries_and_exit_closes_them():
    import threading

    node = settings()
    first, again = outputs.thread_client(node), outputs.thread_client(node)
    assert first is again and not first.session.closed
    other: list[outputs.Client] = []
    thread = threading.Thread(target=lambda: other.append(outputs.thread_client(node)))
    thread.start()
    thread.join()
    assert other[0] is not first and other[0].loop is not first.loop
    outputs.close_clients()
    assert first.session.closed and other[0].session.closed and first.loop.is_closed()


def test_events_and_callbacks_carry_no_delivery_state_and_splunk_no_sample_link():
    import orjson

    node = settings(splunk_url="https://splunk.example:8088", splunk_token="t")
    fields = {
        "task_id": "7",
        "submitted": "1",
        "processed": "2",
        "status": "done",
        "tc_report": "[]",
        "file_link": "https://s3.example/samples/x?X-Amz-Signature=secret",
        "output:callback": orjson.dumps({"url": "https://h.example/?token=secret"}).decode(),
        "user_data": orjson.dumps({"network": {"src_ip": "10.0.0.1"}, "password_list": ["pw"]}).decode(),
    }
    event = orjson.loads(outputs.splunk_request(fields, node).body)["event"]
    assert "outputs" not in event and "file_link" not in event and "password_list" not in str(event)
    assert event["network"] == {"src_ip": "10.0.0.1"}
    callback = orjson.loads(outputs.callback_request(fields, {"url": "https://h.example/"}, node).body)
    assert "outputs" not in callback and callback["file_link"].startswith("https://s3.example/")


def test_a_kept_connection_the_receiver_closed_is_retried_once_at_once(monkeypatch):
    calls: list[str] = []

    async def flaky_post(request, session, networks):
        calls.append(request.url)
        if len(calls) == 1:
            raise aiohttp.ServerDisconnectedError()
        return 200, ""

    monkeypatch.setattr(outputs, "post", flaky_post)
    client = outputs.Client.build(settings())
    try:
        assert client.send(outputs.Request("https://hooks.example/x", {}, b"{}")) == (200, "")
        assert calls == ["https://hooks.example/x"] * 2
        # A second disconnect in a row is the attempt's error, retried later with backoff.
        calls.clear()
        monkeypatch.setattr(
            outputs, "post", lambda *a: (_ for _ in ()).throw(aiohttp.ServerDisconnectedError())
        )
        with pytest.raises(aiohttp.ServerDisconnectedError):
            client.send(outputs.Request("https://hooks.example/x", {}, b"{}"))
    finally:
        client.close()


async def test_outbound_clients_keep_no_cookies():
    async with outbound.guarded_session([], aiohttp.ClientTimeout(total=5)) as session:
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)


def test_the_outputs_client_drops_idle_connections_before_receivers_do():
    client = outputs.Client.build(settings())
    try:
        assert client.session.connector is not None
        assert client.session.connector._keepalive_timeout == 2
    finally:
        client.close()
