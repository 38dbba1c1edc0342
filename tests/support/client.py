"""A small async client for the Worker/Hub API, as an existing user's tool would use it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

API = "/api/tiscale/v1"


async def upload(
    session: aiohttp.ClientSession,
    base_url: str,
    content: bytes,
    filename: str = "sample.bin",
    headers: dict[str, str] | None = None,
    **fields: str,
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=filename)
    for name, value in fields.items():
        form.add_field(name, value)
    response = await session.post(f"{base_url}{API}/upload", data=form, headers=headers or {})
    await response.read()
    return response


async def submit(session: aiohttp.ClientSession, base_url: str, content: bytes, **kwargs: Any) -> str:
    response = await upload(session, base_url, content, **kwargs)
    assert response.status == 200, await response.text()
    return str((await response.json())["task_url"])


async def wait_for_task(
    session: aiohttp.ClientSession, task_url: str, timeout: float = 60, until=None
) -> dict[str, Any]:
    """Poll the way existing clients do (`?full=true` appended) until processed (or `until`)."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        async with session.get(f"{task_url}?full=true") as response:
            assert response.status == 200, await response.text()
            view = await response.json()
        if until(view) if until else view.get("processed"):
            return view
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{task_url} not finished after {timeout} s; last view: {view}")
