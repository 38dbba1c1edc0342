"""Fuzzing each service from its own OpenAPI document (Schemathesis): whatever a client sends,
no server error (5xx other than a deliberate 503), no traceback in a body, and every error
is JSON."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings

from deploy.processes import free_port
from hub.api import create_app as create_hub
from hub.settings import HubSettings
from tests.support.fake_worker import FakeWorker
from worker.api import create_app as create_worker
from worker.settings import WorkerSettings
from worker.store import Keys

pytestmark = pytest.mark.unit
EXAMPLES_PER_OPERATION = 25


class Served:
    """An aiohttp app on a real port, served from an event loop in its own thread, so that a
    synchronous client (Schemathesis calls with requests) can reach it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def run(self, coroutine: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)  # type: ignore[arg-type]

    def serve(self, make_app: Callable[[], Awaitable[web.Application]]) -> str:
        port = free_port()

        async def start() -> None:
            runner = web.AppRunner(await make_app())
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)

        self.run(start())
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for runner in self.runners:
            self.run(runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    yield server
    server.close()


def worker_app(spool: Path) -> Callable[[], Awaitable[web.Application]]:
    async def make() -> web.Application:
        redis = fakeredis.aioredis.FakeRedis(decode_responses=True)
        await redis.set(Keys().epoch, 0)
        return create_worker(WorkerSettings(spool_dir=spool), redis_client=redis, send_jobs=lambda ids: None)

    return make


def fuzz(base_url: str) -> int:
    """Every operation of the service's document, EXAMPLES_PER_OPERATION cases each."""
    document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid document raises here

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests on every run: CI is repeatable
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=base_url, timeout=10)
            where = f"{case.method} {case.formatted_path} {response.status_code}"
            # 503 is a deliberate answer (unhealthy, overloaded, no TiCloud as the spec says),
            # never a crash; every other 5xx would be one.
            assert response.status_code < 500 or response.status_code == 503, (
                f"{where}: {response.text[:300]}"
            )
            assert "Traceback" not in response.text, where
            if response.status_code >= 400:
                content_type = (response.headers.get("content-type") or [""])[0]
                assert content_type.startswith("application/json"), where
                body = response.json()
                assert "message" in body or case.formatted_path == "/health", where  # health: checks

        call()
    return calls


def test_the_worker_api_answers_anything_its_document_allows_without_a_server_error(served, tmp_path):
    calls = fuzz(served.serve(worker_app(tmp_path / "spool")))
    print(f"\n{calls} generated requests to the Worker API")
    assert calls > 100


def test_the_hub_answers_anything_its_document_allows_without_a_server_error(served, tmp_path):
    worker = FakeWorker()
    served.run(worker.start())

    async def make() -> web.Application:
        return create_hub(HubSettings(worker_urls=worker.url, spool_dir=tmp_path / "hub-spool"))

    try:
        calls = fuzz(served.serve(make))
    finally:
        served.run(worker.close())
    print(f"\n{calls} generated requests to the Hub")
    assert calls > 20
