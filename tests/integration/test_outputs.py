"""Reports out of a real node (Valkey, Celery, the outputs worker) to servers the tests start
on loopback: callback receivers, a Splunk HEC receiver, and moto's S3 server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web

from deploy.processes import free_port, wait_until
from tests.support.client import API, submit, wait_for_task

MARKER_ENGINE = "tests.support.engines:with_markers"
LOOPBACK = "127.0.0.0/8"
FAST_RETRIES = {"output_backoff_seconds": "0.2", "output_backoff_max_seconds": "1"}


@dataclass
class Receiver:
    """An HTTP server that records every POST; `answers` (if any) are given in order."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hang: bool = False
    check: Callable[[web.Request], int | None] | None = None


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def start(host: str = "127.0.0.1", **options: Any) -> Receiver:
        state = Receiver(**options)

        async def record(request: web.Request) -> web.Response:
            if state.hang:
                await asyncio.sleep(3600)
            body = await request.read()
            refused = state.check(request) if state.check else None
            state.received.append(
                {"path": request.path, "headers": dict(request.headers), "json": json.loads(body)}
            )
            status = refused or (state.answers.pop(0) if state.answers else 200)
            return web.json_response({"status": status}, status=status)

        app = web.Application()
        app.router.add_post("/{tail:.*}", record)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
        state.url = f"http://{host}:{port}"
        return state

    yield start
    for runner in runners:
        await runner.cleanup()


async def task_view(session: aiohttp.ClientSession, task_url: str, **query: str) -> dict[str, Any]:
    async with session.get(task_url, params=query) as response:
        assert response.status == 200
        return await response.json()


async def wait_for_output(
    session: aiohttp.ClientSession, task_url: str, output: str, states=("delivered",), timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = await task_view(session, task_url)
        if view.get("outputs", {}).get(output, {}).get("state") in states:
            return view
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{output} of {task_url} not in {states}: {view.get('outputs')}")


async def metrics_text(session: aiohttp.ClientSession, node_url: str) -> str:
    async with session.get(f"{node_url}/metrics") as response:
        return await response.text()


async def test_callbacks_carry_the_requested_report_of_done_and_failed_tasks(worker_nodes, receiver):
    listener = await receiver()
    node = worker_nodes(
        start_outputs=True,
        engine=MARKER_ENGINE,
        outbound_allowed_networks=LOOPBACK,
        callback_url=f"{listener.url}/default",
    )
    async with aiohttp.ClientSession() as session:
        callback = {"url": f"{listener.url}/hook", "report_type": "small", "view": "flat"}
        done_url = await submit(
            session,
            node.url,
            b"#!/bin/sh\necho callback\n",
            filename="run.sh",
            custom_data='{"ticket": 7}',
            user_data=json.dumps({"callback": callback}),
        )
        failed_url = await submit(session, node.url, b"CRASH now", filename="crash.bin")
        done = await wait_for_output(session, done_url, "callback")
        failed = await wait_for_output(session, failed_url, "callback")
        by_path = {item["path"]: item for item in listener.received}
        assert set(by_path) == {"/hook", "/default"}

        # The done task's report, as GET /task shapes it for the same report type and view.
        sent = by_path["/hook"]["json"]
        expected = await task_view(session, done_url, report_type="small", view="flat")
        assert sent["task_id"] == done["task_id"] and sent["status"] == "done"
        assert sent["tc_report"] == expected["tc_report"]
        assert "info_file_file_name" in sent["tc_report"][0]  # flat: nested keys joined
        assert sent["custom_data"] == {"ticket": 7}
        assert by_path["/hook"]["headers"]["X-Scanhub-Task-Id"] == str(done["task_id"])

        # The failed task goes to the node's default receiver, with its error and no report.
        sent = by_path["/default"]["json"]
        assert sent["status"] == "failed" and sent["tc_report"] is None
        assert "crash requested" in sent["error"]

        state = done["outputs"]["callback"]
        assert state["state"] == "delivered" and state["attempts"] == 1 and state["last_status"] == 200
        assert state["delivered_at"] >= done["processed"]
        assert failed["outputs"]["callback"]["url"] == f"{listener.url}/default"
        text = await metrics_text(session, node.url)
        assert 'scanhub_output_deliveries{outcome="delivered",output="callback"} 2.0' in text


async def test_a_receiver_failing_twice_then_answering_gets_three_posts_and_one_delivery(
    worker_nodes, receiver
):
    listener = await receiver(answers=[503, 500])
    node = worker_nodes(start_outputs=True, outbound_allowed_networks=LOOPBACK, **FAST_RETRIES)
    async with aiohttp.ClientSession() as session:
        user_data = json.dumps({"callback": {"url": listener.url}})
        task_url = await submit(session, node.url, b"retry me", user_data=user_data)
        view = await wait_for_output(session, task_url, "callback")
        await asyncio.sleep(1.5)  # longer than any backoff left: nothing more arrives
        assert len(listener.received) == 3
        state = (await task_view(session, task_url))["outputs"]["callback"]
        assert state["state"] == "delivered" and state["attempts"] == 3 and state["last_status"] == 200
        assert view["outputs"]["callback"]["delivered_at"] >= view["processed"]
        text = await metrics_text(session, node.url)
        assert 'scanhub_output_deliveries{outcome="retried",output="callback"} 2.0' in text
        assert 'scanhub_output_deliveries{outcome="delivered",output="callback"} 1.0' in text


async def test_a_receiver_that_never_answers_does_not_delay_analysis(worker_nodes, receiver):
    hanging = await receiver(hang=True)
    node = worker_nodes(
        start_outputs=True, outbound_allowed_networks=LOOPBACK, output_timeout_seconds="20", **FAST_RETRIES
    )
    files = 12

    async def completion_seconds(session: aiohttp.ClientSession, tag: str, user_data: str | None) -> float:
        started = time.monotonic()
        fields = {"user_data": user_data} if user_data else {}
        urls = [await submit(session, node.url, f"{tag} {i}".encode(), **fields) for i in range(files)]
        for url in urls:
            assert (await wait_for_task(session, url))["status"] == "done"
        return time.monotonic() - started

    async with aiohttp.ClientSession() as session:
        await completion_seconds(session, "warm-up", None)
        baseline = await completion_seconds(session, "baseline", None)
        hooked = await completion_seconds(session, "hooked", json.dumps({"callback": {"url": hanging.url}}))
        # Every delivery is still waiting on the receiver, and analysis went on meanwhile.
        last = (await (await session.get(f"{node.url}{API}/task")).json())[-1]
        view = await task_view(session, f"{node.url}{API}/task/{last['task_id']}")
        assert view["outputs"]["callback"]["state"] == "pending"
    assert hooked < baseline * 2 + 1.0, (baseline, hooked)


async def test_a_dead_receiver_is_given_up_and_a_refused_address_is_recorded(worker_nodes, receiver):
    """One node, only 127.0.0.1 allowed: a closed port there is retried then given up; a
    receiver on 127.0.0.2 (loopback too, but not listed) is refused by the outbound policy."""
    node = worker_nodes(
        start_outputs=True, outbound_allowed_networks="127.0.0.1/32", output_attempts="2", **FAST_RETRIES
    )
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    listener = await receiver(host="127.0.0.2")
    async with aiohttp.ClientSession() as session:
        dead_url = await submit(
            session, node.url, b"to nobody", user_data=json.dumps({"callback": {"url": dead}})
        )
        private = json.dumps({"callback": {"url": f"{listener.url}/hook"}})
        refused_url = await submit(session, node.url, b"no ssrf", user_data=private)
        given_up = await wait_for_output(session, dead_url, "callback", states=("failed",))
        refused = await wait_for_output(session, refused_url, "callback", states=("refused",))
    state = given_up["outputs"]["callback"]
    assert state["attempts"] == 2 and state["last_status"] is None
    assert "Connect" in state["last_error"] or "refused" in state["last_error"].lower()
    assert "not a public address" in refused["outputs"]["callback"]["error"]
    assert listener.received == []


async def test_splunk_receives_each_report_as_an_event_with_token_index_and_network(worker_nodes, receiver):
    token = "0d6f8c8e-5a1b-4c1e-9a7e-2f5e3c9b1a77"

    def hec_check(request: web.Request) -> int | None:
        if request.headers.get("Authorization") != f"Splunk {token}":
            return 403
        return None if request.path == "/services/collector/event" else 404

    hec = await receiver(check=hec_check)
    node = worker_nodes(
        start_outputs=True,
        outbound_allowed_networks=LOOPBACK,
        splunk_url=hec.url,
        splunk_token=token,
        splunk_index="malware",
    )
    network = {"src_ip": "10.1.10.42", "src_port": 10621, "dst_ip": "10.1.10.212", "dst_port": 8080}
    async with aiohttp.ClientSession() as session:
        task_url = await submit(
            session, node.url, b"event me", user_data=json.dumps({"network": network}), custom_data='{"a": 1}'
        )
        view = await wait_for_output(session, task_url, "splunk")
        small = await task_view(session, task_url, report_type="small")
    [event] = hec.received
    assert event["json"]["index"] == "malware" and event["json"]["sourcetype"] == "scanhub:report"
    assert event["json"]["time"] == view["processed"]
    payload = event["json"]["event"]
    assert payload["network"] == network
    assert "outputs" not in payload and "file_link" not in payload
    assert payload["task_id"] == view["task_id"] and payload["custom_data"] == {"a": 1}
    assert payload["tc_report"] == small["tc_report"]
    assert view["outputs"]["splunk"]["state"] == "delivered"


@pytest.fixture
def s3_server() -> Iterator[str]:
    """moto's standalone S3 server on loopback, as a site's S3-compatible store."""
    port = free_port()
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), 30, what="moto's S3 server")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=1).read()
    except Exception as error:
        return getattr(error, "code", None) is not None
    return True


async def test_s3_holds_the_report_and_the_sample_and_file_link_downloads_it(
    worker_nodes, s3_server, monkeypatch
):
    credentials = {"AWS_ACCESS_KEY_ID": "scanhub", "AWS_SECRET_ACCESS_KEY": "scanhub-secret"}
    for name, value in {**credentials, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="reports")
    node = worker_nodes(
        outbound_allowed_networks=LOOPBACK,
        s3_endpoint_url=s3_server,
        s3_bucket="reports",
        s3_store_samples="true",
    )
    content = b"MZ sample kept in S3 " + os.urandom(2000)
    async with aiohttp.ClientSession() as session:
        task_url = await submit(session, node.url, content, filename="kept.exe", custom_data='{"case": 3}')
        view = await wait_for_task(session, task_url)
        assert view["status"] == "done"
        async with session.get(view["file_link"]) as response:
            assert response.status == 200 and await response.read() == content
        large = await task_view(session, task_url, report_type="large")
    state = view["outputs"]["s3"]
    assert state["state"] == "delivered"
    sha256 = large["tc_report"][0]["info"]["file"]["hashes"]
    sha256 = next(item["value"] for item in sha256 if item["name"] == "sha256")
    assert state["sample_key"] == f"samples/{sha256}"
    assert state["report_key"] == f"reports/{sha256}/{view['worker_hostname']}-{view['task_id']}.json"
    stored = json.loads(s3.get_object(Bucket="reports", Key=state["report_key"])["Body"].read())
    assert stored["task_id"] == view["task_id"] and stored["custom_data"] == {"case": 3}
    assert stored["tc_report"] == large["tc_report"]


@pytest.mark.parametrize("store_samples", ["false", "true"])
async def test_an_s3_write_that_fails_leaves_the_task_done_with_the_error_recorded(
    worker_nodes, s3_server, monkeypatch, store_samples
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "scanhub")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "scanhub-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    node = worker_nodes(
        outbound_allowed_networks=LOOPBACK,
        s3_endpoint_url=s3_server,
        s3_bucket="no-such-bucket",
        s3_store_samples=store_samples,
        output_attempts="1",
    )
    async with aiohttp.ClientSession() as session:
        view = await wait_for_task(session, await submit(session, node.url, b"nowhere to go"))
    assert view["status"] == "done" and view["tc_report"] and "file_link" not in view
    assert view["outputs"]["s3"]["state"] == "failed"
    assert "NoSuchBucket" in view["outputs"]["s3"]["error"]
    async with aiohttp.ClientSession() as session, session.get(f"{node.url}/metrics") as response:
        assert 'scanhub_output_deliveries{outcome="failed",output="s3"} 1.0' in await response.text()


async def test_a_submit_url_whose_download_fails_still_calls_back_with_the_failure(worker_nodes, receiver):
    listener = await receiver()
    node = worker_nodes(start_outputs=True, outbound_allowed_networks=LOOPBACK)
    missing = f"{listener.url}/no-such-file"  # the receiver answers GET with 405
    async with aiohttp.ClientSession() as session:
        body = {"url": missing, "user_data": {"callback": {"url": f"{listener.url}/hook"}}}
        async with session.post(f"{node.url}{API}/submit-url", json=body) as response:
            assert response.status == 200
            task_url = (await response.json())["task_url"]
        view = await wait_for_output(session, task_url, "callback")
    assert view["status"] == "failed" and "download failed" in view["error"]
    [sent] = listener.received
    assert sent["json"]["status"] == "failed" and sent["json"]["error"] == view["error"]
