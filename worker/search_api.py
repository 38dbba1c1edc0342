"""GET /api/scanhub/v1/samples/{hash}: the tasks of a sample this node still holds.

A sample is named by its MD5, SHA1 or SHA256 (told apart by length). The answer lists, newest
first, every live task whose file is that sample (`found_as: "file"`) or whose file held it
inside (`found_as: "child"`, a file unpacked from an archive, a mail, a document...).
"""

from __future__ import annotations

from aiohttp import web

from common.auth import token_group
from common.errors import json_response
from common.sample_search import SEARCH_PATH, parse_hash
from worker.keys import SETTINGS, STORE
from worker.submission import task_url

routes = web.RouteTableDef()
# Tasks listed per sample at most (the newest).
MAX_RESULTS = 1000


@routes.get(SEARCH_PATH)
@token_group("tasks")
async def search_sample(request: web.Request) -> web.Response:
    """The tasks of one sample (by MD5, SHA1 or SHA256), newest first, with their verdicts."""
    kind, digest = parse_hash(request.match_info["hash"])
    store, settings = request.app[STORE], request.app[SETTINGS]
    sha256 = await store.sha256_of(digest)
    tasks = await store.search(sha256, MAX_RESULTS) if sha256 else []
    for entry in tasks:
        entry["task_url"] = task_url(request, settings, entry["task_id"])
    return json_response({"hash": digest, "hash_type": kind, "sha256": sha256, "tasks": tasks})
