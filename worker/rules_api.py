"""YARA endpoints of the Worker API: ruleset id, per-ruleset sync status, and re-reading the rules now.

Mounted by `worker.api.create_app`; handlers read the node's settings from the app
(`worker.keys.SETTINGS`). The rules live in the directory
`SCANHUB_YARA_RULES_DIR`, which this process and every Celery process of the node read;
Celery processes notice a change on their own within `SCANHUB_YARA_CHECK_INTERVAL_SECONDS`,
and at once after POST /pull/all, which leaves a token in the spool directory for them.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from common.auth import token_group
from common.errors import ApiError, json_response
from common.settings import yes_or_no
from worker.analysis import ruleset
from worker.keys import SETTINGS
from worker.settings import WorkerSettings

routes = web.RouteTableDef()


def _settings(request: web.Request) -> WorkerSettings:
    return request.app[SETTINGS]


async def current(request: web.Request, force: bool = False) -> ruleset.CompiledRuleset:
    settings = _settings(request)
    # Compiling a large ruleset takes a while: keep it off the event loop.
    return await asyncio.to_thread(
        ruleset.current_ruleset, settings.yara_rules_dir, settings.yara_check_interval_seconds, force
    )


@routes.get("/api/tiscale/v1/yara")
@token_group("admin")
async def ruleset_id(request: web.Request) -> web.Response:
    return json_response({"id": (await current(request)).ruleset_id})


@routes.get("/api/tiscale/v2/sync-status")
@token_group("admin")
async def sync_status(request: web.Request) -> web.Response:
    text = request.query.get("errorOnly", "")
    errors_only = yes_or_no(text) if text.strip() else False
    if errors_only is None:
        raise ApiError(400, f"'errorOnly' must be true or false, not {text[:40]!r}")
    return json_response(ruleset.sync_status(await current(request), errors_only=errors_only))


@routes.post("/api/tiscale/v1/pull/all")
@token_group("admin")
async def pull_all(request: web.Request) -> web.Response:
    if not _settings(request).yara_sync_enabled:
        raise ApiError(417, "YARA synchronization is disabled on this Worker")
    compiled = await current(request, force=True)
    # Tell the node's Celery processes too: they re-read before their next file.
    ruleset.request_pull(_settings(request).spool_dir)
    broken = sum(1 for item in compiled.files if item.errors)
    return json_response(
        {
            "message": f"{len(compiled.files)} ruleset(s) read, {broken} with errors",
            "id": compiled.ruleset_id,
            "revision": compiled.revision,
        }
    )
