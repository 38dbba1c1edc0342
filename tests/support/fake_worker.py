"""A scriptable stand-in for a Worker API, for the Hub's unit tests: health and answers on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.test_utils import TestServer

ACCEPT, REFUSE, DIE, REJECT, ERROR = "accept", "refuse", "die", "reject", "error500"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    remote: str | None
    fields: dict[str, bytes] = field(default_factory=dict)
    json: Any = None


@dataclass
class FakeWorker:
    """`mode`: accept (200 + task_url), refuse (503), die (drop the connection mid-body),
    reject (400, the submission's fault). `health_status` is what GET /health answers."""

    mode: str = ACCEPT
    health_status: int = 200
    queue_depth: int = 0
    received: list[Received] = field(default_factory=list)
    health_checks: int = 0
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def start(self) -> FakeWorker:
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/health", self.health)
        app.router.add_post("/api/tiscale/v1/upload", self.submission)
        app.router.add_post("/api/tiscale/v1/submit-url", self.submission)
        self.server = TestServer(app)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def health(self, request: web.Request) -> web.Response:
        self.health_checks += 1
        checks = {
            "queue_depth": self.queue_depth,
            "queue": "ok" if self.health_status == 200 else "overloaded",
        }
        body = {"status": "ok" if self.health_status == 200 else "unhealthy", "checks": checks}
        return web.json_response(body, status=self.health_status)

    async def submission(self, request: web.Request) -> web.Response:
        received = Received(request.path, dict(request.headers), request.remote)
        if self.mode == REFUSE:
            return web.json_response({"message": "the Worker is overloaded"}, status=503)
        if self.mode == ERROR:
            return web.json_response({"message": "internal server error"}, status=500)
        if self.mode == DIE:
            await request.content.readexactly(min(1000, request.content_length or 1000))
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("the fake Worker died")
        try:  # a body a real Worker would refuse gets its 400, as from a real Worker
            if request.content_type.startswith("multipart/"):
                reader = await request.multipart()
                while (part := await reader.next()) is not None:
                    if not isinstance(part, BodyPartReader):
                        raise ValueError("nested multipart")
                    received.fields[str(part.name)] = bytes(await part.read())
            else:
                received.json = await request.json()
        except ValueError as error:
            return web.json_response({"message": f"malformed body: {error}"}, status=400)
        if self.mode == REJECT:
            return web.json_response({"message": "the upload has no 'file' part"}, status=400)
        self.received.append(received)
        task_id = len(self.received)
        return web.json_response({"task_url": f"{self.url}/api/tiscale/v1/task/{task_id}"})
