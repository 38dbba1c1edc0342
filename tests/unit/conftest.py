"""Unit-layer fixtures: the Worker API in-process over fakeredis, tasks captured, not queued."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from aiohttp.test_utils import TestClient, TestServer

from worker.api import create_app
from worker.settings import WorkerSettings
from worker.store import Keys, TaskStore

TOKEN_SUBMIT = "S" * 40
TOKEN_TASKS = "T" * 40


@dataclass
class WorkerApi:
    client: TestClient
    settings: WorkerSettings
    redis: Any
    queued: list[int] = field(default_factory=list)
    # Tasks the API ended (failed) whose outputs it sent to the outputs worker.
    outputs_sent: list[int] = field(default_factory=list)

    @property
    def store(self) -> TaskStore:
        return TaskStore(self.redis, Keys(self.settings.key_prefix), self.settings.retention())

    def spool_files(self) -> list[str]:
        return sorted(path.name for path in self.settings.spool_dir.iterdir())

    async def upload(self, content: bytes = b"hello", filename: str = "sample.txt", headers=None, **fields):
        from aiohttp import FormData

        form = FormData()
        form.add_field("file", content, filename=filename)
        for name, value in fields.items():
            form.add_field(name, value)
        return await self.client.post("/api/tiscale/v1/upload", data=form, headers=headers or {})


@pytest.fixture
async def make_worker_api(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    clients: list[TestClient] = []

    async def make(send_jobs: Callable[[list[int]], None] | None = None, **overrides: Any) -> WorkerApi:
        settings = WorkerSettings(spool_dir=tmp_path / f"spool{len(clients)}", **overrides)
        redis = fakeredis.aioredis.FakeRedis(decode_responses=True)
        # Epoch 0 (never drawn by a real node) keeps this Redis's task ids 1, 2, 3, ...
        await redis.set(Keys(settings.key_prefix).epoch, 0)
        api = WorkerApi(client=None, settings=settings, redis=redis)  # type: ignore[arg-type]
        app = create_app(
            settings,
            redis_client=redis,
            send_jobs=send_jobs or api.queued.extend,
            send_outputs=api.outputs_sent.append,
        )
        api.client = TestClient(TestServer(app))
        await api.client.start_server()
        clients.append(api.client)
        return api

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def worker_api(make_worker_api) -> WorkerApi:
    return await make_worker_api()
