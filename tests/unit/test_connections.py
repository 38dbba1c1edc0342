"""Slow and stalled clients: headers have a deadline, connections a cap, bodies a read timeout."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest
from aiohttp import web

from common.service import CannotListen, cannot_listen, listen
from common.settings import ServiceSettings
from deploy.processes import free_port

pytestmark = pytest.mark.unit
API = "/api/tiscale/v1"


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def serving(**limits):
    app = web.Application()
    app.router.add_get("/", hello)
    settings = ServiceSettings(port=free_port(), **limits)
    runner, server, counters = await listen(app, settings)
    return runner, server, counters, settings.port


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    async with asyncio.timeout(seconds):
        return await reader.read()


async def one_request(port: int) -> bytes:
    """A whole GET / on a new connection, and the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return await closed_within(reader, 5)


async def test_a_connection_that_never_finishes_its_headers_is_closed(tmp_path):
    runner, server, counters, port = await serving(header_timeout_seconds=0.3, keepalive_timeout_seconds=75)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
        await writer.drain()
        assert await closed_within(reader, 5) == b""
        assert counters.timed_out == 1 and counters.open == 0
        # A client that sends its request in time is served on the same server.
        assert b'{"ok": true}' in await one_request(port)
    finally:
        server.close()
        await runner.cleanup()


async def test_past_the_cap_a_new_connection_gets_503_json_with_retry_after(tmp_path):
    runner, server, counters, port = await serving(max_connections=5, header_timeout_seconds=30)
    held = []
    try:
        for _ in range(5):
            held.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0)  # let the server accept them
        reader, _ = await asyncio.open_connection("127.0.0.1", port)
        answer = await closed_within(reader, 5)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in head
        assert "connections" in orjson.loads(body)["message"]
        assert counters.refused == 1
        for _, writer in held:
            writer.close()
        deadline = time.monotonic() + 5
        while counters.open and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert b"200 OK" in await one_request(port)
    finally:
        server.close()
        await runner.cleanup()


@pytest.mark.parametrize("path", ["upload", "submit-url"])
async def test_a_body_shorter_than_its_content_length_is_a_408_not_a_held_connection(make_worker_api, path):
    api = await make_worker_api(body_read_timeout_seconds=0.3)
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    content_type = b"multipart/form-data; boundary=b" if path == "upload" else b"application/json"
    writer.write(
        b"POST " + f"{API}/{path}".encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; "
        b"filename=\"a\"\r\n\r\nonly a little"
    )  # fmt: skip
    await writer.drain()
    async with asyncio.timeout(5):  # the answer comes at once, not when the client gives up
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.read(200)
    assert head.startswith(b"HTTP/1.1 408"), head
    assert b"stalled" in body
    assert api.spool_files() == []


async def test_a_port_in_use_raises_before_the_app_starts_anything():
    """The address is bound first: a service whose port is taken exits at once instead of
    starting background tasks that would then have to be cancelled (one swallowing the
    cancellation hung the process, listening nowhere)."""
    started = []

    async def resources(app: web.Application):
        started.append("resources")
        yield

    app = web.Application()
    app.cleanup_ctx.append(resources)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(CannotListen, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            await listen(app, ServiceSettings(port=port))
    assert started == []


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_port_another_process_listens_on_first_raises_once_the_app_is_cleaned_up(loop):
    """Bound but not yet listening, a port can be bound again by another process (both with
    SO_REUSEADDR); whichever listens second must fail, not serve nowhere (uvloop reports no
    error: its socket is None)."""
    events = []
    port = free_port()
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", port))

        async def resources(app: web.Application):
            events.append("started")
            other.listen()  # the other process listens while this one starts its resources
            yield
            events.append("cleaned up")

        async def scenario():
            app = web.Application()
            app.cleanup_ctx.append(resources)
            with pytest.raises(CannotListen, match=f"cannot listen on 127.0.0.1:{port}: "):
                await listen(app, ServiceSettings(port=port))

        factory = asyncio.new_event_loop
        if loop == "uvloop":
            uvloop = pytest.importorskip("uvloop")
            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(scenario())
    assert events == ["started", "cleaned up"]


def test_an_ipv6_address_and_a_name_that_does_not_resolve_are_named_in_the_error():
    ipv6 = cannot_listen(ServiceSettings(host="::1", port=8081), OSError(98, "x"))
    assert str(ipv6) == "cannot listen on [::1]:8081: Address already in use"
    unknown = socket.gaierror(-2, "Name or service not known")
    name = cannot_listen(ServiceSettings(host="no-such-host.invalid", port=8081), unknown)
    assert str(name) == "cannot listen on no-such-host.invalid:8081: Name or service not known"
