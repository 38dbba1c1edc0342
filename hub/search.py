"""Search by hash across the cluster: the Hub asks every Worker at once and merges.

Each Worker answers for the tasks it still holds; the Hub lists them all, newest first. A
Worker that does not answer in time (or answers with an error) is named in `partial` with
the reason, and the others' answers still come back: a search never fails because one node
is down.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from common.auth import token_group
from common.errors import json_response
from common.sample_search import SEARCH_PATH, parse_hash
from hub.keys import POOL, SESSION, SETTINGS
from hub.pool import describe, get_worker_json

routes = web.RouteTableDef()


@routes.get(SEARCH_PATH)
@token_group("tasks")
async def search_sample(request: web.Request) -> web.Response:
    """The tasks of one sample (MD5, SHA1 or SHA256) on every Worker, newest first."""
    kind, digest = parse_hash(request.match_info["hash"])
    settings, workers = request.app[SETTINGS], request.app[POOL].workers
    answers = await asyncio.gather(
        *(
            get_worker_json(
                request.app[SESSION],
                f"{worker.url}{SEARCH_PATH.format(hash=digest)}",
                settings.worker_search_token(index),
                settings.worker_response_timeout_seconds,
            )
            for index, worker in enumerate(workers)
        ),
        return_exceptions=True,
    )
    tasks: list[dict[str, Any]] = []
    partial: list[dict[str, str]] = []
    sha256 = digest if kind == "sha256" else None
    for worker, answer in zip(workers, answers, strict=True):
        if isinstance(answer, BaseException):
            partial.append({"worker": worker.url, "error": describe(answer)})
            continue
        sha256 = sha256 or answer.get("sha256")
        tasks.extend({**entry, "worker": worker.url} for entry in answer.get("tasks", []))
    tasks.sort(key=lambda entry: entry.get("submitted", 0), reverse=True)
    return json_response(
        {"hash": digest, "hash_type": kind, "sha256": sha256, "tasks": tasks, "partial": partial}
    )
