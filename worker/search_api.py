"""GET /api/scanhub/v1/samples/{hash}: the tasks of a sample this node still holds.

A sample is named by its MD5, SHA1 or SHA256 (told apart by length). The answer lists, newest
first, every live task whose file is that sample (`found_as: "file"`) or whose file held it
inside (`found_as: "child"`, a file unpacked from an archive, a mail, a document...).
"""

from __future__ import annotations

from aiohttp import web

from common.auth import token_group
from common.errors import ApiError, json_response
from worker.keys import SETTINGS, STORE
from worker.submission import task_url

routes = web.RouteTableDef()
SEARCH_API = "/api/scanhub/v1"
HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}
# Tasks listed per sample at most (the newest).
MAX_RESULTS = 1000


def parse_hash(text: str) -> tuple[str, str]:
    """(kind, lower-case hex) of an MD5, SHA1 or SHA256; 400 for anything else."""
    digest = text.strip().lower()
    kind = HASH_KINDS.get(len(digest))
    if kind is None or any(character not in "0123456789abcdef" for character in digest):
        raise ApiError(400, "give an MD5, SHA1 or SHA256 as hex (32, 40 or 64 characters)")
    return kind, digest


@routes.get(f"{SEARCH_API}/samples/{{hash}}")
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
